"""Relaying at once: the process that commits an outbox row relays it itself, right after the
commit, instead of leaving it for a worker's next poll.

The start or signal goes out on the Temporal bridge's loop while the request answers, so a
registration's start or a confirmation's signal reaches Temporal within milliseconds. Nothing
here is needed for correctness: a process that dies first leaves its rows to the workers'
polling relays, and a row relayed twice is one start and one signal (see `relay.py`).
"""

from __future__ import annotations

import logging
from concurrent.futures import Future

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from temporal.bridge import TemporalBridge
from temporal.outbox import OWED
from temporal.outbox.relay import OutboxRelay

log = logging.getLogger("acceso.outbox")


def relay_after_commit(session_factory: sessionmaker[Session], bridge: TemporalBridge) -> None:
    """After each commit of `session_factory`'s sessions that owed Temporal something, relay
    those processes' pending rows in the background."""

    def committed(session: Session) -> None:
        owed = session.info.pop(OWED, None)
        if not owed:
            return
        task_queue = bridge.settings.task_queue

        async def run(client: Client) -> int:
            relay = OutboxRelay(client, session_factory, task_queue)
            return await relay.relay_once(workflow_ids=owed)

        bridge.submit(run).add_done_callback(_note_failure)

    def rolled_back(session: Session) -> None:
        session.info.pop(OWED, None)

    event.listen(session_factory, "after_commit", committed)
    event.listen(session_factory, "after_rollback", rolled_back)


def _note_failure(done: Future) -> None:
    if done.cancelled():
        return
    error = done.exception()
    if error is not None:
        log.info("prompt relay failed, the workers' relays will deliver: %s", error)
