"""Random tokens for e-mail links and sessions: the raw value goes out, only its hash stays."""

from __future__ import annotations

import hashlib
import secrets
import string
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from portal.models import EmailToken, utcnow


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


def issue_link(
    session: Session,
    *,
    purpose: str,
    portal: str,
    workflow_id: str,
    lifetime_hours: int,
    user_id: int | None = None,
) -> tuple[EmailToken, str]:
    """A new e-mail link for a process step, revoking the step's earlier unused ones.

    Returns the stored row (hash only) and the raw token, which goes into the e-mail and nowhere
    else. The caller commits before sending, so the link works the moment the e-mail arrives.
    """
    now = utcnow()
    session.execute(
        update(EmailToken)
        .where(EmailToken.workflow_id == workflow_id)
        .where(EmailToken.purpose == purpose)
        .where(EmailToken.used_at.is_(None))
        .where(EmailToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    raw = new_token()
    token = EmailToken(
        token_hash=token_hash(raw),
        purpose=purpose,
        portal=portal,
        workflow_id=workflow_id,
        user_id=user_id,
        expires_at=now + timedelta(hours=lifetime_hours),
    )
    session.add(token)
    session.flush()
    return token, raw


def latest_link_id(session: Session, workflow_id: str, purpose: str) -> int:
    """The newest link of a step: what a retried, already-sent activity reports again."""
    return (
        session.scalar(
            select(EmailToken.id)
            .where(EmailToken.workflow_id == workflow_id)
            .where(EmailToken.purpose == purpose)
            .order_by(EmailToken.id.desc())
        )
        or 0
    )
