"""A forgotten-username request: the activity finds the usernames and e-mails them, if any."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.mail import MailActivities, ReminderSent, UsernameReminder
    from workflows.registration import MAIL_RETRY


@dataclass
class UsernameReminderStart:
    """Started for every request; the look-up happens in the activity, so answers never differ."""

    portal: str
    email: str
    first_name: str = ""
    last_name: str = ""


@workflow.defn
class UsernameReminderWorkflow:
    @workflow.run
    async def run(self, start: UsernameReminderStart) -> ReminderSent:
        workflow.set_current_details("Looking up usernames and e-mailing them")
        return await workflow.execute_activity_method(
            MailActivities.send_username_reminder,
            UsernameReminder(
                portal=start.portal,
                email=start.email,
                first_name=start.first_name,
                last_name=start.last_name,
                send_key=f"{workflow.info().workflow_id}/usernames",
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=MAIL_RETRY,
        )
