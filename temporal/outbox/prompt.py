"""Relaying at once: the process that commits an outbox row relays it itself, right after the
commit, instead of leaving it for a worker's next poll.

The start or signal goes out on the Temporal bridge's loop while the request answers, so a
registration's start or a confirmation's signal reaches Temporal within milliseconds. Nothing
here is needed for correctness: a process that dies first leaves its rows to the workers'
polling relays, and a row relayed twice is one start and one signal (see `relay.py`).

One relay runs at a time per process, taking whatever its commits owe meanwhile, so a Temporal
outage holds at most one database connection of the web tier (while that relay waits), never
one per request.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from portal.settings import Settings
from temporal.bridge import TemporalBridge
from temporal.outbox import OWED
from temporal.outbox.relay import OutboxRelay

log = logging.getLogger("acceso.outbox")


class LoopBridge:
    """A worker's own event loop and client in the web's bridge's place, so what its activities
    commit (a logout's deliveries) is relayed at once too, as the web's commits are."""

    def __init__(self, client: Client, loop: asyncio.AbstractEventLoop, settings: Settings):
        self.client, self.loop, self.settings = client, loop, settings

    def submit(self, action: Callable[[Client], Awaitable[Any]]) -> Future:
        return asyncio.run_coroutine_threadsafe(action(self.client), self.loop)


class PromptRelay:
    """Relays the processes its sessions' commits owed Temporal, one pass at a time."""

    def __init__(
        self, session_factory: sessionmaker[Session], bridge: TemporalBridge | LoopBridge
    ) -> None:
        self.session_factory = session_factory
        self.bridge = bridge
        self.lock = threading.Lock()
        self.owed: set[str] = set()
        self.running = False

    def committed(self, session: Session) -> None:
        owed = session.info.pop(OWED, None)
        if not owed:
            return
        with self.lock:
            self.owed |= owed
            if self.running:
                return
            self.running = True
        try:
            self.bridge.submit(self.drain).add_done_callback(self.ended)
        except Exception:
            log.warning("prompt relay not started; the workers' relays will deliver", exc_info=True)
            with self.lock:
                self.owed.clear()
                self.running = False

    async def drain(self, client: Client) -> None:
        relay = OutboxRelay(client, self.session_factory, self.bridge.settings.task_queue)
        while True:
            with self.lock:
                owed, self.owed = self.owed, set()
                if not owed:
                    self.running = False
                    return
            if await relay.relay_once(workflow_ids=owed) < 0:
                raise ConnectionError("Temporal could not be reached")

    def ended(self, done: Future) -> None:
        """A pass that failed (Temporal away, the bridge closed) leaves what is owed to the
        workers' polling relays, and the next commit starts afresh."""
        if not done.cancelled() and done.exception() is None:
            return
        with self.lock:
            self.owed.clear()
            self.running = False
        if not done.cancelled():
            log.info("prompt relay stopped, the workers' relays will deliver: %s", done.exception())


def relay_after_commit(
    session_factory: sessionmaker[Session], bridge: TemporalBridge | LoopBridge
) -> None:
    """After each commit of `session_factory`'s sessions that owed Temporal something, relay
    those processes' pending rows in the background."""
    prompt = PromptRelay(session_factory, bridge)

    def rolled_back(session: Session) -> None:
        session.info.pop(OWED, None)

    event.listen(session_factory, "after_commit", prompt.committed)
    event.listen(session_factory, "after_rollback", rolled_back)
