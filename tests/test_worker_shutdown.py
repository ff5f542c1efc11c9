"""A worker stopped mid-activity hands the work to another worker: nothing is lost on a deploy."""

from __future__ import annotations

import asyncio
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from worker import SHUTDOWN_GRACE


@workflow.defn(sandboxed=False)
class ShutdownProbeWorkflow:
    """Test-only: one activity with short timeouts, so a lost attempt is retried quickly."""

    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity(
            "shutdown_probe_step",
            start_to_close_timeout=timedelta(seconds=5),
            heartbeat_timeout=timedelta(seconds=2),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=100), maximum_attempts=5
            ),
            summary="test step",
        )


class ProbeActivities:
    """The same activity on two workers; `name` tells which one finished it."""

    def __init__(self, name: str, stop_after_start: bool):
        self.name = name
        self.stop_after_start = stop_after_start
        self.started = threading.Event()

    @activity.defn(name="shutdown_probe_step")
    def step(self) -> str:
        self.started.set()
        if self.stop_after_start:
            # Busy until this worker is told to stop; then give the attempt back to the server.
            while not activity.is_worker_shutdown():
                activity.heartbeat("working")
                activity.wait_for_worker_shutdown_sync(0.2)
            raise ApplicationError("worker stopping; another worker will retry this step")
        return f"{self.name} attempt {activity.info().attempt}"


def make_worker(client, queue: str, activities: ProbeActivities) -> Worker:
    return Worker(
        client,
        task_queue=queue,
        workflows=[ShutdownProbeWorkflow],
        activities=[activities.step],
        activity_executor=ThreadPoolExecutor(4),
        graceful_shutdown_timeout=SHUTDOWN_GRACE,
    )


def wait_for(event: threading.Event, what: str, timeout: float = 20) -> None:
    if not event.wait(timeout):
        raise AssertionError(f"timed out waiting for {what}")


def test_stopping_a_worker_mid_activity_lets_another_worker_finish_it(dev_server, background_loop):
    client = dev_server.client
    queue = f"shutdown-{uuid.uuid4().hex[:8]}"
    first = ProbeActivities("first", stop_after_start=True)
    second = ProbeActivities("second", stop_after_start=False)
    worker_a = make_worker(client, queue, first)
    run_a = asyncio.run_coroutine_threadsafe(worker_a.run(), background_loop.loop)

    handle = background_loop.run(
        client.start_workflow(
            ShutdownProbeWorkflow.run, id=f"shutdown-probe-{uuid.uuid4().hex[:8]}", task_queue=queue
        )
    )
    wait_for(first.started, "the activity to start on the first worker")

    # A second process would have its own connection; one connection allows one worker per queue.
    other_process = background_loop.run(
        Client.connect(
            client.service_client.config.target_host,
            namespace=client.namespace,
            data_converter=client.data_converter,
        )
    )
    worker_b = make_worker(other_process, queue, second)
    run_b = asyncio.run_coroutine_threadsafe(worker_b.run(), background_loop.loop)
    try:
        background_loop.run(worker_a.shutdown(), timeout=30)
        run_a.result(10)
        result = background_loop.run(handle.result(), timeout=30)
    finally:
        background_loop.run(worker_b.shutdown(), timeout=30)
        run_b.result(10)

    assert result == "second attempt 2"
    assert second.started.is_set()
