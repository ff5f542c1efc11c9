"""Forgotten-username requests on the time-skipping server, the look-up mocked: requests are
handled in turn until one sends, and the cooldown after a send ignores the rest."""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio import activity
from temporalio.worker import Worker

from mail.activities import ReminderSent, UsernameReminder
from processes.recovery.vocabulary import ReminderRequest, UsernameReminderStart
from processes.recovery.workflows import UsernameReminderWorkflow
from tests.fixtures.waiting import wait_until_async


async def test_a_mistyped_request_blocks_nobody_and_a_sent_one_cools_down(time_skipping_env):
    looked_up: list[UsernameReminder] = []

    @activity.defn(name="send_username_reminder")
    async def send_username_reminder(request: UsernameReminder) -> ReminderSent:
        looked_up.append(request)
        found = request.first_name == "Marta"
        return ReminderSent(usernames=int(found), sent=found)

    queue = f"reminder-{uuid.uuid4().hex[:8]}"
    client = time_skipping_env.client
    workflow_id = f"username-reminder/provider/{uuid.uuid4().hex[:12]}"

    async def request(first_name: str):
        return await client.start_workflow(
            UsernameReminderWorkflow.run,
            UsernameReminderStart(portal="provider", email="m@x.example", cooldown_minutes=15),
            id=workflow_id,
            task_queue=queue,
            start_signal="remind",
            start_signal_args=[ReminderRequest(first_name=first_name, last_name="Rivera")],
        )

    async with Worker(
        client,
        task_queue=queue,
        workflows=[UsernameReminderWorkflow],
        activities=[send_username_reminder],
    ):
        await request("Martha")
        await request("Marta")
        await wait_until_async(lambda: len(looked_up) == 2, what="both requests handled")
        await request("Marta")
        await time_skipping_env.sleep(timedelta(minutes=10))
        during_cooldown = await request("Marta")
        result = await during_cooldown.result()
    assert result.sent
    assert [r.first_name for r in looked_up] == ["Martha", "Marta"]
    assert len({r.send_key for r in looked_up}) == 2
