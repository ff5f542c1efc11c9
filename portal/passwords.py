"""Password hashing (argon2id at OWASP's minimum) and each portal's password rules."""

from __future__ import annotations

import os
import re
import unicodedata

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from portal.config import PasswordRules

_hasher = PasswordHasher(
    time_cost=int(os.environ.get("ACCESO_ARGON2_TIME_COST", "2")),
    memory_cost=int(os.environ.get("ACCESO_ARGON2_MEMORY_KIB", str(19 * 1024))),
    parallelism=1,
    type=Type.ID,
)
_DUMMY_HASH = _hasher.hash("timing-equaliser")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Always spends one verification, even without a hash, so timing does not tell who exists."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def normalise_answer(answer: str) -> str:
    """Secret answers compare ignoring case, accents' composition and repeated spaces."""
    folded = unicodedata.normalize("NFKC", answer).casefold()
    return " ".join(folded.split())


def hash_answer(answer: str) -> str:
    return _hasher.hash(normalise_answer(answer))


def verify_answer(answer_hash: str, answer: str) -> bool:
    return verify_password(answer_hash, normalise_answer(answer))


def password_problems(password: str, rules: PasswordRules) -> list[str]:
    """Which rules the password breaks, as message keys the web tier translates."""
    problems = []
    if len(password) < rules.min_length:
        problems.append("too_short")
    if rules.require_upper and not re.search(r"[A-ZÁÉÍÓÚÑÜ]", password):
        problems.append("needs_upper")
    if rules.require_lower and not re.search(r"[a-záéíóúñü]", password):
        problems.append("needs_lower")
    if rules.require_digit and not re.search(r"\d", password):
        problems.append("needs_digit")
    if rules.require_symbol and not re.search(r"[^\w\s]", password):
        problems.append("needs_symbol")
    return problems
