"""Audit events are written in the same transaction as the change they describe."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from portal.models import AuditEvent, utcnow

ACTING: ContextVar[dict[str, str] | None] = ContextVar("acceso_acting", default=None)
"""Who acts for whom in the current request (a proxy acting for someone): every audit line
written meanwhile names both people, whatever code writes it."""


def _event(
    actor: str,
    action: str,
    portal: str = "",
    workflow_id: str | None = None,
    user_id: int | None = None,
    **detail: Any,
) -> dict[str, Any]:
    """The row's columns, the acting pair (if any) merged into its detail."""
    acting = ACTING.get()
    return {
        "at": utcnow(),
        "actor": actor,
        "action": action,
        "portal": portal,
        "workflow_id": workflow_id,
        "user_id": user_id,
        "detail": {**acting, **detail} if acting else detail,
    }


def add_event(session: Session, **event: Any) -> None:
    """Adds the event (`_event`'s arguments) to the caller's unit of work."""
    session.add(AuditEvent(**_event(**event)))


_INSERT = insert(AuditEvent.__table__)
"""Built once: the sign-in writes one event per login."""


def write_event(session: Session, **event: Any) -> None:
    """As `add_event`, but the row is inserted now (one Core statement, no unit-of-work flush),
    for hot paths that write and commit at once, like a sign-in. Not for callers that take a
    lock or count an attempt on another connection before their commit: on SQLite this insert
    starts the caller's write."""
    session.execute(_INSERT, _event(**event))
