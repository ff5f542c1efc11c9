"""Turns committed outbox rows into workflow starts and signals; every worker runs one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection
from datetime import timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Row, Select, and_, bindparam, not_, or_, select, update
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


OUTBOX = OutboxMessage.__table__
CLAIM = (
    select(*OUTBOX.c)
    .where(OUTBOX.c.id == bindparam("row_id"), OUTBOX.c.relayed_at.is_(None))
    .with_for_update(skip_locked=True)
)
EARLIER = (
    select(OUTBOX.c.id)
    .where(
        OUTBOX.c.workflow_id == bindparam("workflow_id"),
        OUTBOX.c.id < bindparam("row_id"),
        OUTBOX.c.relayed_at.is_(None),
    )
    .limit(1)
)
RELAYED = (
    update(OUTBOX).where(OUTBOX.c.id == bindparam("row_id")).values(relayed_at=bindparam("now"))
)
RELAYED_WITH_NOTE = RELAYED.values(last_error=bindparam("note"))
FAILED = (
    update(OUTBOX)
    .where(OUTBOX.c.id == bindparam("row_id"))
    .values(attempts=OUTBOX.c.attempts + 1, last_error=bindparam("error"))
)
"""Built once per process: building a SQLAlchemy statement costs more than running it, and
a worker's relay polls four times a second and the web's relays every commit that owes."""


SETTLE_SECONDS = 1.0
"""Where rows cannot be locked (SQLite), how long a polling relay leaves a new row to the
prompt relay of the process that committed it: a poll racing that relay sent the same start or
signal a second time, which Temporal refuses or ignores but both sides pay for. Rows no prompt
relay takes (a signal-with-start, a start of a reusable ID) are polled at once as before."""


def settle_seconds(session_factory: sessionmaker[Session]) -> float:
    """A polling relay's `settle_seconds` for this database: none where `SKIP LOCKED` keeps
    two relays off one row."""
    bind = session_factory.kw.get("bind")
    return SETTLE_SECONDS if bind is not None and bind.dialect.name == "sqlite" else 0.0


PROMPT_RELAYED = or_(
    OUTBOX.c.kind == "signal",
    and_(OUTBOX.c.signal.is_(None), OUTBOX.c.reuse_finished_id.is_(False)),
)
"""The rows a prompt relay takes (`_repeatable`): the others are the polls' alone, at once."""


@lru_cache(maxsize=8)
def _pending(batch: int, some: bool, settled: bool) -> Select:
    """The oldest unrelayed rows (IDs and processes), of every process or of `ids` only; with
    `settled`, of the rows a prompt relay takes only those committed before `cutoff`."""
    query = select(OUTBOX.c.id, OUTBOX.c.workflow_id).where(OUTBOX.c.relayed_at.is_(None))
    if some:
        query = query.where(OUTBOX.c.workflow_id.in_(bindparam("ids", expanding=True)))
    if settled:
        settled_or_never_prompt = or_(
            not_(PROMPT_RELAYED), OUTBOX.c.created_at < bindparam("cutoff")
        )
        query = query.where(settled_or_never_prompt)
    return query.order_by(OUTBOX.c.id).limit(batch)


def _repeatable(row: Any) -> bool:
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
    signal's request ID). With `settle_seconds` (SQLite, see `settle_seconds()`), a polling
    pass leaves the rows a prompt relay takes to the process that committed them for that long.
    """

    def __init__(
        self,
        client: Client,
        session_factory: sessionmaker[Session],
        task_queue: str,
        poll_seconds: float = 0.25,
        batch: int = 50,
        settle_seconds: float = 0.0,
    ) -> None:
        self.client = client
        self.session_factory = session_factory
        self.task_queue = task_queue
        self.poll_seconds = poll_seconds
        self.batch = batch
        self.settle_seconds = settle_seconds

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
            if workflow_ids is not None:
                ids = {"ids": list(workflow_ids)}
                pending = session.connection().execute(_pending(self.batch, True, False), ids)
            elif self.settle_seconds:
                cutoff = {"cutoff": utcnow() - timedelta(seconds=self.settle_seconds)}
                pending = session.connection().execute(_pending(self.batch, False, True), cutoff)
            else:
                pending = session.connection().execute(_pending(self.batch, False, False))
            candidates = pending.all()
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
                note = None
                try:
                    note = await self._start(row)
                except WorkflowAlreadyStartedError:
                    pass
                except Exception as error:
                    attempts = row.attempts + 1
                    last_error = f"{type(error).__name__}: {error}"[:500]
                    session.connection().execute(FAILED, {"row_id": row.id, "error": last_error})
                    session.commit()
                    if attempts == 1 or attempts % 20 == 0:
                        log.warning(
                            "outbox: %s of %s %s failed (%d tries): %s",
                            row.kind,
                            row.workflow or row.signal,
                            row.workflow_id,
                            attempts,
                            last_error,
                        )
                    if not _refused(error):
                        return -1
                    held.add(workflow_id)
                    continue
                if note is None:
                    session.connection().execute(RELAYED, {"row_id": row.id, "now": utcnow()})
                else:
                    marked = {"row_id": row.id, "now": utcnow(), "note": note}
                    session.connection().execute(RELAYED_WITH_NOTE, marked)
                session.commit()
                started += 1
        return started

    @staticmethod
    def _claim(session: Session, row_id: int) -> Row | None:
        """The row, locked until the caller's commit, if it is still owed, no other relay holds
        it, and no earlier row of its process is still owed; otherwise None."""
        connection = session.connection()
        row = connection.execute(CLAIM, {"row_id": row_id}).one_or_none()
        if row is None:
            return None
        earlier = connection.execute(
            EARLIER, {"workflow_id": row.workflow_id, "row_id": row.id}
        ).first()
        if earlier is not None:
            session.rollback()
            return None
        return row

    async def _start(self, row: Any) -> str | None:
        """Sends the row (a claimed row, or an `OutboxMessage` alike); what to note on it."""
        if row.kind == "signal":
            return await self._signal(row)
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
        return None

    async def _signal(self, row: Any) -> str | None:
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
            return "process already finished: signal dropped"
        return None
