"""Audit events for workflow moments that change nothing else (a decision ignored, a timer lapsed)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from portal.audit import add_event


@dataclass
class AuditEntry:
    actor: str
    action: str
    portal: str
    workflow_id: str
    user_id: int | None = None
    detail: dict[str, str] = field(default_factory=dict)


class AuditActivities:
    def __init__(self, session_factory: sessionmaker[Session]):
        self.session_factory = session_factory

    @activity.defn
    def record_event(self, entry: AuditEntry) -> None:
        with self.session_factory() as session:
            add_event(
                session,
                actor=entry.actor,
                action=entry.action,
                portal=entry.portal,
                workflow_id=entry.workflow_id,
                user_id=entry.user_id,
                **entry.detail,
            )
            session.commit()
