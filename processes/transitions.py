"""Every change the web tier asks of a running process ends the same way, so it is written once:
the change's audit line and the signal owed to the process go into the change's transaction,
which then commits; a crash after the commit still delivers the signal (the outbox relay) and
one before it leaves nothing done."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from portal.audit import add_event
from portal.config import Portal
from temporal import search_attributes
from temporal.outbox import enqueue_signal, enqueue_start


def audit_and_signal(
    session: Session,
    *,
    workflow_id: str,
    signal: str,
    payload: Any,
    actor: str,
    action: str,
    portal: str,
    user_id: int | None = None,
    commit: bool = True,
    **detail: Any,
) -> None:
    """Adds the audit line and the owed signal to the caller's transaction and commits it
    (unless `commit` is False: the caller has more to add)."""
    add_event(
        session,
        actor=actor,
        action=action,
        portal=portal,
        workflow_id=workflow_id,
        user_id=user_id,
        **detail,
    )
    enqueue_signal(session, workflow_id=workflow_id, signal=signal, payload=payload)
    if commit:
        session.commit()


def claim_row(session: Session, model: type, row_id: int, *where: Any, **values: Any) -> bool:
    """A conditional update of one process row: it changes to `values` only while `where` still
    holds of it, in one statement, so of a click, a timer and a staff decision racing for the
    same row exactly one wins, on SQLite and PostgreSQL alike. The caller decides what losing
    means (usually a rollback)."""
    return bool(
        session.execute(
            update(model).where(model.id == row_id).where(*where).values(**values)
        ).rowcount
    )


def start_process(
    session: Session,
    portal: Portal,
    *,
    workflow: str,
    workflow_id: str,
    payload: Any,
    what: str,
    reference: str,
    step: str,
    reuse_finished_id: bool = False,
) -> None:
    """A portal's process, owed through the outbox in the caller's transaction; its summary and
    search attributes name the portal, the opaque reference and the first step (never PII), so
    an operator finds it in the Temporal UI."""
    enqueue_start(
        session,
        workflow=workflow,
        workflow_id=workflow_id,
        payload=payload,
        reuse_finished_id=reuse_finished_id,
        summary=f"{portal.name.source}: {what} {reference}",
        search_attributes={
            search_attributes.PORTAL.name: portal.slug,
            search_attributes.REFERENCE.name: reference,
            search_attributes.STEP.name: step,
        },
    )
