"""The transactional outbox: how the web tier starts a workflow without two writes.

A view that must start a process writes an `OutboxMessage` in the same database transaction as
the rows the process concerns (`enqueue_start`), commits, and answers. The web process then
relays its own rows at once, in the background (`temporal.outbox.prompt`); the relay every
worker runs (`temporal.outbox.relay.OutboxRelay`) polls for whatever is still owed. So:

- a web process killed before its commit leaves nothing (no rows, no start);
- one killed after it leaves rows whose start is still owed, and the relay makes it;
- a relay killed between the start and marking the row starts again, and Temporal's ID rules
  turn the second start into a no-op (`WorkflowAlreadyStartedError`), so nothing is duplicated.

Payloads are the workflow's input as JSON (dataclasses go in through `dataclasses.asdict`): IDs
and policy, never a secret. They reach Temporal through the codec like every other payload.
Login and page views never wait on Temporal; neither does a form that only enqueues.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy.orm import Session

from portal.models import OutboxMessage

OWED = "acceso.outbox.owed"
"""`Session.info` key: the workflow IDs this transaction owes Temporal something for, so the
process can relay them at once after the commit (`temporal.outbox.prompt`)."""


def _owe(session: Session, workflow_id: str) -> None:
    session.info.setdefault(OWED, set()).add(workflow_id)


def _plain(value: Any) -> dict[str, Any]:
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else dict(value)


def enqueue_start(
    session: Session,
    *,
    workflow: str,
    workflow_id: str,
    payload: Any,
    signal: str | None = None,
    signal_payload: Any = None,
    reuse_finished_id: bool = False,
    summary: str = "",
    search_attributes: dict[str, str] | None = None,
) -> OutboxMessage:
    """Adds the start to the caller's transaction; the caller commits.

    `workflow` is the workflow type's name. With `signal`, the relay signals-with-start (a
    request joining a running process). `reuse_finished_id` lets the ID start again once its
    previous run has finished (per-account processes); otherwise an ID starts once, ever.
    """
    message = OutboxMessage(
        workflow=workflow,
        workflow_id=workflow_id,
        payload=_plain(payload),
        signal=signal,
        signal_payload=None if signal_payload is None else _plain(signal_payload),
        reuse_finished_id=reuse_finished_id,
        summary=summary[:200],
        search_attributes=dict(search_attributes or {}),
    )
    session.add(message)
    _owe(session, workflow_id)
    return message


def enqueue_signal(
    session: Session, *, workflow_id: str, signal: str, payload: Any
) -> OutboxMessage:
    """Tells a running process something the caller's transaction just made true (a link was
    redeemed), so the database and the process learn it together; the caller commits.

    A process that has already finished ignores it: the relay drops the row.
    """
    message = OutboxMessage(
        kind="signal",
        workflow="",
        workflow_id=workflow_id,
        payload={},
        signal=signal,
        signal_payload=_plain(payload),
        summary=f"signal {signal}"[:200],
    )
    session.add(message)
    _owe(session, workflow_id)
    return message
