"""Turns committed outbox rows into workflow starts and signals; every worker runs one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import SignalWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from portal.models import OutboxMessage, utcnow

log = logging.getLogger("acceso.outbox")

MAX_BACKOFF_SECONDS = 30.0

# Answers about the row itself; anything else (unavailable, deadline exceeded, a dropped
# connection) means Temporal is away, and the pass stops to back off.
REFUSALS = {
    RPCStatusCode.INVALID_ARGUMENT,
    RPCStatusCode.FAILED_PRECONDITION,
    RPCStatusCode.PERMISSION_DENIED,
    RPCStatusCode.OUT_OF_RANGE,
    RPCStatusCode.UNIMPLEMENTED,
}


def _refused(error: Exception) -> bool:
    if isinstance(error, RPCError):
        return error.status in REFUSALS
    return isinstance(error, (TypeError, ValueError))


def _repeatable(row: OutboxMessage) -> bool:
    """Relayed twice, still one start or one signal (see `OutboxRelay._signal`)."""
    if row.kind == "signal":
        return True
    return not row.signal and not row.reuse_finished_id


class OutboxRelay:
    """Polls for unrelayed rows, oldest first, and starts each one's workflow.

    Several relays (one per worker, and the web process that just committed a row, see
    `temporal.outbox.prompt`) may run at once: on PostgreSQL each claims a row with
    `SKIP LOCKED` for as long as it sends it; anywhere, a row started twice is refused by
    Temporal as already started, and a row signalled twice is one signal (the row's ID is the
    signal's request ID).
    """

    def __init__(
        self,
        client: Client,
        session_factory: sessionmaker[Session],
        task_queue: str,
        poll_seconds: float = 0.25,
        batch: int = 50,
    ) -> None:
        self.client = client
        self.session_factory = session_factory
        self.task_queue = task_queue
        self.poll_seconds = poll_seconds
        self.batch = batch

    async def run(self, stop: asyncio.Event) -> None:
        delay = self.poll_seconds
        while not stop.is_set():
            try:
                relayed = await self.relay_once()
                delay = self.poll_seconds if relayed >= 0 else min(delay * 2, MAX_BACKOFF_SECONDS)
            except Exception:
                log.exception("outbox relay pass failed; trying again")
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)

    async def relay_once(self, workflow_ids: Collection[str] | None = None) -> int:
        """Starts what is pending; the number started, or -1 when Temporal could not be reached.

        Given `workflow_ids` (the prompt relay of the process that just committed them), only
        those processes' rows, and only rows a second relay may repeat harmlessly: a start of
        an ID that starts once, ever, and a plain signal. A signal-with-start or a start of a
        reusable ID could run twice if a polling relay raced it on SQLite, so those rows, and
        the rows behind them, are left to the polling relays as before.

        Each row is claimed in its own transaction, held from its send to its commit: on
        PostgreSQL `FOR UPDATE SKIP LOCKED`, so a second relay passes over a row this one is
        sending (a batch-wide lock would end at this pass's first commit and let it in). A row
        waits while an earlier row of its process is unrelayed, here or in another relay, so a
        signal never overtakes the start it needs.

        A row Temporal refuses outright (a bad search attribute, say) waits with its error and
        is tried again next pass, without holding up the rows behind it; only that process's
        later rows wait behind it."""
        with self.session_factory() as session:
            pending = select(OutboxMessage.id, OutboxMessage.workflow_id).where(
                OutboxMessage.relayed_at.is_(None)
            )
            if workflow_ids is not None:
                pending = pending.where(OutboxMessage.workflow_id.in_(list(workflow_ids)))
            candidates = session.execute(pending.order_by(OutboxMessage.id).limit(self.batch)).all()
        started = 0
        held: set[str] = set()
        for row_id, workflow_id in candidates:
            if workflow_id in held:
                continue
            with self.session_factory() as session:
                row = self._claim(session, row_id)
                if row is not None and workflow_ids is not None and not _repeatable(row):
                    session.rollback()
                    row = None
                if row is None:
                    held.add(workflow_id)
                    continue
                try:
                    await self._start(row)
                except WorkflowAlreadyStartedError:
                    pass
                except Exception as error:
                    row.attempts += 1
                    row.last_error = f"{type(error).__name__}: {error}"[:500]
                    session.commit()
                    if row.attempts == 1 or row.attempts % 20 == 0:
                        log.warning(
                            "outbox: %s of %s %s failed (%d tries): %s",
                            row.kind,
                            row.workflow or row.signal,
                            row.workflow_id,
                            row.attempts,
                            row.last_error,
                        )
                    if not _refused(error):
                        return -1
                    held.add(workflow_id)
                    continue
                row.relayed_at = utcnow()
                session.commit()
                started += 1
        return started

    @staticmethod
    def _claim(session: Session, row_id: int) -> OutboxMessage | None:
        """The row, locked until the caller's commit, if it is still owed, no other relay holds
        it, and no earlier row of its process is still owed; otherwise None."""
        row = session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.id == row_id, OutboxMessage.relayed_at.is_(None))
            .with_for_update(skip_locked=True)
        ).one_or_none()
        if row is None:
            return None
        earlier = session.scalar(
            select(OutboxMessage.id)
            .where(
                OutboxMessage.workflow_id == row.workflow_id,
                OutboxMessage.id < row.id,
                OutboxMessage.relayed_at.is_(None),
            )
            .limit(1)
        )
        if earlier is not None:
            session.rollback()
            return None
        return row

    async def _start(self, row: OutboxMessage) -> None:
        if row.kind == "signal":
            await self._signal(row)
            return
        extra = {}
        if row.signal:
            extra = {
                "start_signal": row.signal,
                "start_signal_args": [row.signal_payload or {}],
            }
        await self.client.start_workflow(
            row.workflow,
            row.payload,
            id=row.workflow_id,
            task_queue=self.task_queue,
            id_reuse_policy=(
                WorkflowIDReusePolicy.ALLOW_DUPLICATE
                if row.reuse_finished_id
                else WorkflowIDReusePolicy.REJECT_DUPLICATE
            ),
            static_summary=row.summary or None,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(SearchAttributeKey.for_keyword(name), str(value))
                    for name, value in row.search_attributes.items()
                ]
            ),
            **extra,
        )

    async def _signal(self, row: OutboxMessage) -> None:
        """The row's ID is the signal's request ID, so Temporal keeps one signal however many
        relays send it (a crash before marking the row, a web process and a worker racing);
        the receiving workflows ignore repeats anyway."""
        request = SignalWorkflowExecutionRequest(
            namespace=self.client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=row.workflow_id),
            signal_name=row.signal,
            identity=self.client.identity,
            request_id=f"outbox-{row.id}",
        )
        request.input.payloads.extend(
            await self.client.data_converter.encode([row.signal_payload or {}])
        )
        try:
            await self.client.workflow_service.signal_workflow_execution(request, retry=True)
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
            row.last_error = "process already finished: signal dropped"
