"""Audit events are written in the same transaction as the change they describe."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from portal.models import AuditEvent


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
