"""Random tokens for e-mail links and sessions: the raw value goes out, only its hash stays."""

from __future__ import annotations

import hashlib
import secrets
import string


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_reference() -> str:
    """A short opaque reference an applicant can read over the phone; carries no PII."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(10))


def new_temporary_password() -> str:
    """Meets every portal's rules: upper, lower, digit, 14 characters."""
    alphabet = string.ascii_letters + string.digits
    while True:
        candidate = "".join(secrets.choice(alphabet) for _ in range(14))
        if (
            any(c.isupper() for c in candidate)
            and any(c.islower() for c in candidate)
            and any(c.isdigit() for c in candidate)
        ):
            return candidate
