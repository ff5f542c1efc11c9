"""Attempt counters for every secret check (password, authenticator code, recovery code), at
sign-in and on signed-in pages alike.

Each attempt is counted before its secret is checked, in one atomic upsert committed at once, so
concurrent guesses each take their own number: at most `threshold` secrets are checked before
the lock, the one numbered `threshold` locks when wrong, and the ones past it are refused
unchecked. A right secret gives its number back (`release`) or, with every factor given, clears
the count (`reset`). The same statement is correct on SQLite and PostgreSQL, and the first
failure never meets a UNIQUE error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import bindparam, case, delete, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from portal.models import LoginThrottle, utcnow

STAFF_PORTAL = "staff"
"""Staff accounts count under this portal slug, beside each applicant portal's own."""


@dataclass(frozen=True)
class Attempt:
    """One counted attempt: its place in the count and the policy it is judged by."""

    portal: str
    key: str
    number: int
    threshold: int

    @property
    def refused(self) -> bool:
        """Past the threshold: the account is locked and this secret is not even checked."""
        return self.number > self.threshold

    @property
    def locks_if_wrong(self) -> bool:
        """The attempt that reaches the threshold: if its secret is wrong, it locks (once)."""
        return self.number == self.threshold


def username_key(username: str) -> str:
    return username.strip().lower()


@lru_cache(maxsize=2)
def _claim_statement(dialect: str):
    """The counting upsert, built once per dialect (building it costs more than running it)."""
    table = LoginThrottle.__table__
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    return (
        insert(table)
        .values(portal=bindparam("b_portal"), username_key=bindparam("b_key"), failures=1)
        .on_conflict_do_update(
            index_elements=[table.c.portal, table.c.username_key],
            set_={"failures": table.c.failures + 1},
        )
        .returning(table.c.failures)
    )


def claim(
    session: Session,
    portal: str,
    key: str,
    threshold: int,
    first: Callable[[Connection], bool] | None = None,
) -> Attempt | None:
    """Counts one attempt for (portal, key) and commits it on its own connection at once.

    Call it before writing anything in the caller's transaction (on SQLite the caller's open
    write would make this wait), and before the slow secret check, never after it. `first` is
    another count of the same attempt (the client's) made in the same transaction just before:
    when it says no, this attempt is not counted, its count is committed and None returned.
    """
    engine = session.get_bind().engine
    statement = _claim_statement(engine.dialect.name)
    params = {"b_portal": portal, "b_key": key}
    with engine.begin() as connection:
        if first is not None and not first(connection):
            return None
        number = int(connection.execute(statement, params).scalar_one())
    return Attempt(portal=portal, key=key, number=number, threshold=threshold)


def mark_locked(session: Session, attempt: Attempt) -> None:
    """Stamps the moment of the lock in the caller's transaction (the count already locks)."""
    session.execute(
        update(LoginThrottle)
        .where(LoginThrottle.portal == attempt.portal)
        .where(LoginThrottle.username_key == attempt.key)
        .where(LoginThrottle.locked_at.is_(None))
        .values(locked_at=utcnow())
    )


def release(session: Session, attempt: Attempt) -> None:
    """The secret was right but another step follows: this attempt no longer counts."""
    session.execute(
        update(LoginThrottle)
        .where(LoginThrottle.portal == attempt.portal)
        .where(LoginThrottle.username_key == attempt.key)
        .values(failures=case((LoginThrottle.failures > 0, LoginThrottle.failures - 1), else_=0))
    )


_THROTTLES = LoginThrottle.__table__
_RESET = delete(_THROTTLES).where(
    _THROTTLES.c.portal == bindparam("b_portal"), _THROTTLES.c.username_key == bindparam("b_key")
)


def reset(session: Session, portal: str, key: str) -> None:
    """Every factor given, or an unlock: the count starts again."""
    session.execute(_RESET, {"b_portal": portal, "b_key": key})
