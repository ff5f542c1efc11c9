"""Counting a wrong secret toward an account's lockout: one atomic upsert, so concurrent
guesses each count on SQLite and PostgreSQL alike."""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from portal.models import LoginThrottle


def count_failure(session: Session, portal: str, username: str) -> int:
    """Adds one failure to the username's count and returns the new count; the caller commits."""
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    table = LoginThrottle.__table__
    statement = (
        insert(table)
        .values(portal=portal, username_key=username.lower(), failures=1)
        .on_conflict_do_update(
            index_elements=[table.c.portal, table.c.username_key],
            set_={"failures": table.c.failures + 1},
        )
        .returning(table.c.failures)
    )
    return int(session.execute(statement).scalar_one())


def is_locked(session: Session, portal: str, username: str, threshold: int) -> bool:
    throttle = session.get(LoginThrottle, (portal, username.lower()))
    return throttle is not None and throttle.failures >= threshold
