"""Recovery's two processes: a forgotten password (confirm by e-mail, then a temporary or a
chosen password) and a forgotten username (look up the address's usernames and e-mail them, at
most once per cooldown)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from processes.recovery.vocabulary import (
    PasswordResetOutcome,
    PasswordResetStart,
    ReminderRequest,
    ResetConfirmation,
    ResetMode,
    ResetRequested,
    ResetResult,
    ResetStatus,
    ResetStep,
    UsernameReminderStart,
)
from temporal.search_attributes import PORTAL, STEP

with workflow.unsafe.imports_passed_through():
    from mail.activities import (
        LinkEmail,
        MailActivities,
        ReminderSent,
        UsernameReminder,
    )
    from processes.recovery.activities import RecoveryActivities, ResetConfirmed
    from temporal.retry_policies import MAIL_RETRY


@workflow.defn
class PasswordResetWorkflow:
    @workflow.init
    def __init__(self, start: PasswordResetStart) -> None:
        self.start = start
        self.step = ResetStep.STARTED
        self.token_id = 0
        self.link_expires_at = workflow.now()
        self.confirmed = False
        self.applying = False
        self.links_sent = 0
        self.last_sent_at = workflow.now()
        self.requested_again = False
        self.requests = 0

    @workflow.run
    async def run(self, start: PasswordResetStart) -> PasswordResetOutcome:
        workflow.upsert_search_attributes([PORTAL.value_set(start.portal)])
        if start.user_id is None:
            workflow.set_current_details("No matching account: nothing sent")
            return PasswordResetOutcome(status=ResetStep.NO_ACCOUNT)
        await self.send_reset_link()
        self.requested_again = False
        if not await self.wait_for_confirmation():
            workflow.set_current_details("Link expired unused")
            return PasswordResetOutcome(status=ResetStep.EXPIRED)
        return PasswordResetOutcome(status=ResetStep.COMPLETED)

    # Step 1: ask the account holder to confirm by e-mail.
    async def send_reset_link(self) -> None:
        self.step = ResetStep.AWAITING_CONFIRMATION
        if workflow.info().typed_search_attributes.get(STEP) != self.step:
            workflow.upsert_search_attributes([STEP.value_set(self.step)])
        workflow.set_current_details("Waiting for the e-mail link to be followed")
        link_mode = self.start.policy.password_reset_mode == ResetMode.LINK
        sent = await workflow.execute_activity_method(
            MailActivities.send_link,
            LinkEmail(
                template="reset_link" if link_mode else "reset_confirm",
                purpose="password_reset",
                path="reset",
                portal=self.start.portal,
                workflow_id=workflow.info().workflow_id,
                user_id=self.start.user_id,
                lifetime_hours=self.start.policy.reset_link_hours,
                send_key=f"{workflow.info().workflow_id}/{workflow.info().run_id}/{self.links_sent}",
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=MAIL_RETRY,
            summary="e-mail password reset link",
        )
        self.token_id = sent.token_id
        self.links_sent += 1
        self.last_sent_at = workflow.now()
        self.link_expires_at = workflow.now() + timedelta(hours=self.start.policy.reset_link_hours)

    # Step 2: the link is followed before it expires, or the request lapses. A new request
    # meanwhile gets a fresh link, but not more often than the policy allows.
    async def wait_for_confirmation(self) -> bool:
        while True:
            try:
                await workflow.wait_condition(
                    lambda: self.confirmed or self.requested_again,
                    timeout=self.link_expires_at - workflow.now(),
                    timeout_summary=f"reset link lifetime ({self.start.policy.reset_link_hours} h)",
                )
            except TimeoutError:
                self.step = ResetStep.EXPIRED
                workflow.upsert_search_attributes([STEP.value_set(self.step)])
                return False
            if self.confirmed:
                break
            self.requested_again = False
            if self.may_send_again():
                await self.send_reset_link()
        self.step = ResetStep.COMPLETED
        workflow.upsert_search_attributes([STEP.value_set(self.step)])
        workflow.set_current_details("Password reset applied")
        return True

    def may_send_again(self) -> bool:
        policy = self.start.policy
        spacing = timedelta(minutes=policy.reset_link_resend_minutes)
        return (
            not self.applying
            and self.links_sent < policy.max_reset_links
            and workflow.now() - self.last_sent_at >= spacing
        )

    @workflow.signal
    def request_again(self, request: ResetRequested) -> None:
        self.requests += 1
        self.requested_again = True

    @workflow.update
    async def confirm_reset(self, confirmation: ResetConfirmation) -> ResetResult:
        await workflow.wait_condition(lambda: self.token_id >= confirmation.token_id)
        if self.confirmed or self.applying:
            raise ApplicationError("reset already used", type="AlreadyUsed")
        if confirmation.token_id != self.token_id or workflow.now() >= self.link_expires_at:
            raise ApplicationError("link expired", type="LinkExpired")
        self.applying = True
        result = await workflow.execute_activity_method(
            RecoveryActivities.apply_reset,
            ResetConfirmed(
                workflow_id=workflow.info().workflow_id,
                portal=self.start.portal,
                token_id=confirmation.token_id,
                user_id=self.start.user_id,
                mode=self.start.policy.password_reset_mode,
                temporary_password_hours=self.start.policy.temporary_password_hours,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=MAIL_RETRY,
            summary="apply password reset: " + self.start.policy.password_reset_mode,
        )
        self.confirmed = result.applied
        return ResetResult(applied=result.applied)

    @confirm_reset.validator
    def validate_confirm_reset(self, confirmation: ResetConfirmation) -> None:
        if self.confirmed or self.step in (ResetStep.EXPIRED, ResetStep.COMPLETED):
            raise ApplicationError("reset already used", type="AlreadyUsed")

    @workflow.query
    def get_status(self) -> ResetStatus:
        return ResetStatus(step=self.step, links_sent=self.links_sent, requests=self.requests)


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
