"""One e-mail change: the new address confirms within the link's lifetime, the change applies,
and the old address may undo it until the undo window (a timer) closes."""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow

from processes.email_change.vocabulary import (
    ChangeConfirmed,
    ChangeReplaced,
    ChangeUndone,
    EmailChangeOutcome,
    EmailChangeStart,
    EmailChangeStatus,
    Mail,
    Signal,
    Step,
)
from temporal.search_attributes import PORTAL, STEP

with workflow.unsafe.imports_passed_through():
    from processes.email_change.activities import (
        ChangeApplying,
        ChangeEnding,
        ChangeMail,
        EmailChangeActivities,
    )
    from temporal.retry_policies import DB_RETRY, MAIL_RETRY


@workflow.defn
class EmailChangeWorkflow:
    """Started by the outbox with its row; `confirm`, `replace` and `undo` are signals the web
    tier owes in the transaction that made them true, so the database settles every race."""

    @workflow.init
    def __init__(self, start: EmailChangeStart) -> None:
        self.start = start
        self.step = Step.SENDING
        self.confirmed = False
        self.replaced = False
        self.undone = False

    @workflow.run
    async def run(self, start: EmailChangeStart) -> EmailChangeOutcome:
        workflow.upsert_search_attributes([PORTAL.value_set(start.portal)])
        self.enter(Step.SENDING, "E-mailing the confirmation link to the new address")
        await self.mail(Mail.CONFIRM, start.link_hours)
        await self.mail(Mail.REQUESTED)
        self.enter(Step.PENDING, "Waiting for the new address to confirm")
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self.confirmed or self.replaced,
                timeout=timedelta(hours=start.link_hours),
                timeout_summary=f"confirmation link lifetime ({start.link_hours} h)",
            )
        if not self.confirmed:
            status = Step.REPLACED if self.replaced else Step.EXPIRED
            ended = await self.end(status)
            if ended != Step.CONFIRMED:
                return self.finish(ended)
        applied = await workflow.execute_activity_method(
            EmailChangeActivities.apply_change,
            ChangeApplying(
                change_id=start.change_id,
                workflow_id=workflow.info().workflow_id,
                undo_days=start.undo_days,
                shared_addresses=start.shared_addresses,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=DB_RETRY,
            summary="apply the new address",
        )
        if applied.status != Step.APPLIED:
            return self.finish(applied.status)
        self.enter(Step.APPLIED, "Applied; the old address may undo it")
        await self.mail(Mail.APPLIED, start.undo_days * 24)
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self.undone,
                timeout=timedelta(days=start.undo_days),
                timeout_summary=f"undo window ({start.undo_days} days)",
            )
        if self.undone:
            return self.finish(Step.UNDONE)
        return self.finish(await self.end(Step.KEPT))

    async def mail(self, template: Mail, lifetime_hours: int = 0) -> None:
        await workflow.execute_activity_method(
            EmailChangeActivities.send_change_mail,
            ChangeMail(
                change_id=self.start.change_id,
                workflow_id=workflow.info().workflow_id,
                template=template,
                send_key=f"{workflow.info().workflow_id}/{template}",
                lifetime_hours=lifetime_hours,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=MAIL_RETRY,
            summary=f"e-mail {template}",
        )

    async def end(self, status: Step) -> Step:
        ended = await workflow.execute_activity_method(
            EmailChangeActivities.end_change,
            ChangeEnding(
                change_id=self.start.change_id,
                workflow_id=workflow.info().workflow_id,
                status=status,
            ),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=DB_RETRY,
            summary=f"end change: {status}",
        )
        return ended.status

    def finish(self, status: Step) -> EmailChangeOutcome:
        self.enter(status, f"Change {status}")
        return EmailChangeOutcome(status=status)

    @workflow.signal(name=Signal.CONFIRM)
    def confirm(self, confirmation: ChangeConfirmed) -> None:
        """Delivered at least once by the outbox relay; a repeat changes nothing."""
        self.confirmed = True

    @workflow.signal(name=Signal.REPLACE)
    def replace(self, replacement: ChangeReplaced) -> None:
        self.replaced = True

    @workflow.signal(name=Signal.UNDO)
    def undo(self, undo: ChangeUndone) -> None:
        self.undone = True

    @workflow.query
    def get_status(self) -> EmailChangeStatus:
        return EmailChangeStatus(step=self.step)

    def enter(self, step: Step, details: str) -> None:
        self.step = step
        workflow.set_current_details(details)
        workflow.upsert_search_attributes([STEP.value_set(step)])
