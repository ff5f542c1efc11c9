"""Forgotten-username requests for one address: look up its usernames and e-mail them, at most
once per cooldown."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.mail import MailActivities, ReminderSent, UsernameReminder
    from workflows.registration import MAIL_RETRY


@dataclass
class UsernameReminderStart:
    """Started (or joined, by signal-with-start) for every request, known address or not, so
    answers never differ; the look-up happens in the activity."""

    portal: str
    email: str
    cooldown_minutes: int = 15


@dataclass
class ReminderRequest:
    """One request; the provider portal also asks for the names on the account."""

    first_name: str = ""
    last_name: str = ""


@workflow.defn
class UsernameReminderWorkflow:
    """Requests are handled in turn until one sends an e-mail; then, for the cooldown, further
    requests are ignored, so nobody can flood the address. A request that matched nothing
    (a mistyped name) blocks nobody."""

    @workflow.init
    def __init__(self, start: UsernameReminderStart) -> None:
        self.pending: list[ReminderRequest] = []
        self.cooling_down = False
        self.handled = 0

    @workflow.run
    async def run(self, start: UsernameReminderStart) -> ReminderSent:
        result = ReminderSent(usernames=0)
        await workflow.wait_condition(lambda: bool(self.pending), timeout=timedelta(minutes=1))
        while self.pending:
            result = await self.send(start, self.pending.pop(0))
            if result.sent:
                await self.cool_down(start)
                break
        workflow.set_current_details("Done" if result.sent else "Nothing matched: nothing sent")
        return result

    async def send(self, start: UsernameReminderStart, request: ReminderRequest) -> ReminderSent:
        self.handled += 1
        workflow.set_current_details("Looking up usernames and e-mailing them")
        return await workflow.execute_activity_method(
            MailActivities.send_username_reminder,
            UsernameReminder(
                portal=start.portal,
                email=start.email,
                first_name=request.first_name,
                last_name=request.last_name,
                send_key=f"{workflow.info().workflow_id}/{workflow.info().run_id}/{self.handled}",
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=MAIL_RETRY,
            summary="look up usernames and e-mail them",
        )

    async def cool_down(self, start: UsernameReminderStart) -> None:
        self.cooling_down = True
        self.pending.clear()
        workflow.set_current_details("Cooling down: further requests for this address are ignored")
        await workflow.sleep(
            timedelta(minutes=start.cooldown_minutes),
            summary=f"cooldown ({start.cooldown_minutes} min)",
        )

    @workflow.signal
    def remind(self, request: ReminderRequest) -> None:
        if not self.cooling_down:
            self.pending.append(request)
