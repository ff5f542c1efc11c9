"""Password hashing (argon2id at OWASP's minimum) and each portal's password rules."""

from __future__ import annotations

import os
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

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


COMMON_PASSWORDS_FILE = Path(__file__).resolve().parent / "data" / "common_passwords.txt"
MIN_CONTEXT_WORD = 5
"""Names shorter than this (e.g. "plan") are ordinary words, not a guess an attacker starts with."""


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The shipped list of common and breached passwords, read once per process."""
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line for line in lines if line and not line.startswith("#"))


def _folded(text: str) -> str:
    """Lower case without accents, so "Clínica" and "clinica" are the same guess."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def is_common(password: str) -> bool:
    """On the list as typed, or once the digits and symbols people add at the ends are gone."""
    folded = _folded(password)
    core = folded.strip("0123456789!@#$%^&*()_-+=.,;:?¡¿'\" ")
    listed = common_passwords()
    return folded in listed or (len(core) >= 4 and core in listed)


def context_words(*names: str) -> tuple[str, ...]:
    """The words of an organisation's, a portal's or a person's names worth refusing in a password."""
    words = set()
    for name in names:
        for word in re.split(r"[^\w]+", _folded(name or "")):
            if len(word) >= MIN_CONTEXT_WORD:
                words.add(word)
    return tuple(sorted(words))


def password_problems(
    password: str, rules: PasswordRules, context: tuple[str, ...] = (), username: str = ""
) -> list[str]:
    """Which rules the password breaks, as message keys the web tier translates: the portal's
    rules, the blocklist of common passwords, and the names (organisation, portal, username)
    an attacker would try first."""
    problems = []
    folded = _folded(password)
    if is_common(password):
        problems.append("common")
    letters = re.sub(r"[\W_]+", "", folded)
    user = re.sub(r"[\W_]+", "", _folded(username or ""))
    if any(word in letters for word in context) or (len(user) >= 3 and user in letters):
        problems.append("contains_name")
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
