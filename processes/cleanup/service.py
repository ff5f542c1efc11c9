"""The schedule that starts a sweep every hour, made once by whichever worker starts first."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)

from processes.cleanup.vocabulary import SCHEDULE_ID, CleanupRequest

EVERY = timedelta(hours=1)


async def ensure_cleanup_schedule(client: Client, task_queue: str) -> bool:
    """True when this call made the schedule; an operator's pause or edit in the UI is kept."""
    try:
        await client.create_schedule(
            SCHEDULE_ID,
            Schedule(
                action=ScheduleActionStartWorkflow(
                    "CleanupWorkflow",
                    CleanupRequest(),
                    id="cleanup/expired-rows/run",
                    task_queue=task_queue,
                ),
                spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=EVERY)]),
                policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
            ),
        )
    except ScheduleAlreadyRunningError:
        return False
    return True
