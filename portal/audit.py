"""Audit events are written in the same transaction as the change they describe."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from sqlalchemy.orm import Session

from portal.models import AuditEvent

ACTING: ContextVar[dict[str, str] | None] = ContextVar("acceso_acting", default=None)
"""Who acts for whom in the current request (a proxy acting for someone): every audit line
written meanwhile names both people, whatever code writes it."""


def add_event(
    session: Session,
    *,
    actor: str,
    action: str,
    portal: str = "",
    workflow_id: str | None = None,
    user_id: int | None = None,
    **detail: Any,
) -> None:
    acting = ACTING.get()
    if acting:
        detail = {**acting, **detail}
    session.add(
        AuditEvent(
            actor=actor,
            action=action,
            portal=portal,
            workflow_id=workflow_id,
            user_id=user_id,
            detail=detail,
        )
    )
