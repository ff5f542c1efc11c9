"""The web tier's single Temporal client, living on its own event loop thread.

Flask views are synchronous and the Temporal client is asyncio and not thread-safe, so one loop
per process owns the client; it starts on first use, which is after a gunicorn fork.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TypeVar

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from portal.settings import Settings
from temporal.client import connect

T = TypeVar("T")


class TemporalBridge:
    def __init__(self, settings: Settings, timeout: float = 15.0):
        self.settings = settings
        self.timeout = timeout
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Client | None = None

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._pid != os.getpid() or self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="temporal-bridge", daemon=True
                )
                thread.start()
                self._loop, self._client, self._pid = loop, None, os.getpid()
            return self._loop

    async def _get_client(self) -> Client:
        if self._client is None:
            self._client = await connect(self.settings)
        return self._client

    def call(self, action: Callable[[Client], Awaitable[T]], timeout: float | None = None) -> T:
        """Run `action(client)` on the bridge's loop and wait for its answer."""
        loop = self._ensure_loop()

        async def run() -> T:
            return await action(await self._get_client())

        future = asyncio.run_coroutine_threadsafe(run(), loop)
        return future.result(timeout or self.timeout)

    def submit(self, action: Callable[[Client], Awaitable[T]]) -> concurrent.futures.Future[T]:
        """Run `action(client)` on the bridge's loop without waiting: for work whose outcome
        the request does not answer for (relaying what it just committed)."""
        loop = self._ensure_loop()

        async def run() -> T:
            return await action(await self._get_client())

        return asyncio.run_coroutine_threadsafe(run(), loop)

    def close(self) -> None:
        """Stops the loop; background work still running (a relay of rows just committed) is
        cancelled first, so its database session rolls back now and the workers' relays send
        those rows."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        if loop.is_running() and self._pid == os.getpid():

            async def cancel_the_rest() -> None:
                rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                for task in rest:
                    task.cancel()
                await asyncio.gather(*rest, return_exceptions=True)

            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(cancel_the_rest(), loop).result(self.timeout)
        loop.call_soon_threadsafe(loop.stop)


class Refusal(StrEnum):
    """Why Temporal said no when the workflow itself gave no kind (its validators name theirs
    in the process's vocabulary, as the ApplicationError type)."""

    REFUSED = "refused"
    CLOSED = "closed"


class ProcessRefused(Exception):
    """The workflow refused the request (its validator said no); `kind` says why."""

    def __init__(self, kind: str, message: str = ""):
        super().__init__(message or kind)
        self.kind = kind


class ProcessUnavailable(Exception):
    """Temporal could not be reached; the form keeps its data and asks to retry."""


def ask(bridge: TemporalBridge, action: Callable[[Client], Awaitable[T]]) -> T:
    """One synchronous conversation with a workflow, its failures turned into the two answers a
    service gives its caller: refused (with the validator's kind) or unavailable."""
    try:
        return bridge.call(action)
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        kind = cause.type if isinstance(cause, ApplicationError) and cause.type else Refusal.REFUSED
        raise ProcessRefused(kind, str(cause)) from error
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise ProcessRefused(Refusal.CLOSED, "the process has already finished") from error
        raise ProcessUnavailable(str(error)) from error
    except (TimeoutError, ConnectionError, RuntimeError) as error:
        raise ProcessUnavailable(str(error)) from error
