"""One forgotten-password request: confirm by e-mail, then a temporary or a chosen password."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from workflows.search_attributes import PORTAL, STEP

with workflow.unsafe.imports_passed_through():
    from activities.accounts import AccountActivities, ResetConfirmed
    from activities.mail import LinkEmail, MailActivities
    from portal.config import Policy
    from workflows.registration import MAIL_RETRY


@dataclass
class PasswordResetStart:
    """Started for every request, known account or not, so the answer and timing never differ."""

    portal: str
    policy: Policy
    user_id: int | None


@dataclass
class PasswordResetOutcome:
    status: str


@dataclass
class ResetConfirmation:
    token_id: int


@dataclass
class ResetResult:
    applied: bool


@dataclass
class ResetStatus:
    step: str


@workflow.defn
class PasswordResetWorkflow:
    @workflow.init
    def __init__(self, start: PasswordResetStart) -> None:
        self.start = start
        self.step = "started"
        self.token_id = 0
        self.link_expires_at = workflow.now()
        self.confirmed = False
        self.applying = False

    @workflow.run
    async def run(self, start: PasswordResetStart) -> PasswordResetOutcome:
        workflow.upsert_search_attributes([PORTAL.value_set(start.portal)])
        if start.user_id is None:
            workflow.set_current_details("No matching account: nothing sent")
            return PasswordResetOutcome(status="no_account")
        await self.send_reset_link()
        if not await self.wait_for_confirmation():
            workflow.set_current_details("Link expired unused")
            return PasswordResetOutcome(status="expired")
        return PasswordResetOutcome(status="completed")

    # Step 1: ask the account holder to confirm by e-mail.
    async def send_reset_link(self) -> None:
        self.step = "awaiting_confirmation"
        workflow.upsert_search_attributes([STEP.value_set(self.step)])
        workflow.set_current_details("Waiting for the e-mail link to be followed")
        link_mode = self.start.policy.password_reset_mode == "link"
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
                send_key=f"{workflow.info().workflow_id}/link",
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=MAIL_RETRY,
            summary="e-mail password reset link",
        )
        self.token_id = sent.token_id
        self.link_expires_at = workflow.now() + timedelta(hours=self.start.policy.reset_link_hours)

    # Step 2: the link is followed before it expires, or the request lapses.
    async def wait_for_confirmation(self) -> bool:
        try:
            await workflow.wait_condition(
                lambda: self.confirmed,
                timeout=self.link_expires_at - workflow.now(),
                timeout_summary=f"reset link lifetime ({self.start.policy.reset_link_hours} h)",
            )
        except TimeoutError:
            self.step = "expired"
            workflow.upsert_search_attributes([STEP.value_set(self.step)])
            return False
        self.step = "completed"
        workflow.upsert_search_attributes([STEP.value_set(self.step)])
        workflow.set_current_details("Password reset applied")
        return True

    @workflow.update
    async def confirm_reset(self, confirmation: ResetConfirmation) -> ResetResult:
        await workflow.wait_condition(lambda: self.token_id >= confirmation.token_id)
        if self.confirmed or self.applying:
            raise ApplicationError("reset already used", type="AlreadyUsed")
        if confirmation.token_id != self.token_id or workflow.now() >= self.link_expires_at:
            raise ApplicationError("link expired", type="LinkExpired")
        self.applying = True
        result = await workflow.execute_activity_method(
            AccountActivities.apply_reset,
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
        if self.confirmed or self.step in ("expired", "completed"):
            raise ApplicationError("reset already used", type="AlreadyUsed")

    @workflow.query
    def get_status(self) -> ResetStatus:
        return ResetStatus(step=self.step)
