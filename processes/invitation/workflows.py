"""One office employee's invitation: e-mail a link, then wait for acceptance, revocation or expiry."""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow

from processes.invitation.vocabulary import (
    InvitationAcceptance,
    InvitationOutcome,
    InvitationStart,
    InvitationStatus,
    RevokeRequest,
    Step,
)
from temporal.search_attributes import PORTAL, STEP

with workflow.unsafe.imports_passed_through():
    from processes.invitation.activities import (
        InvitationActivities,
        InvitationEnded,
        InvitationMail,
    )
    from temporal.retry_policies import DB_RETRY, MAIL_RETRY


@workflow.defn
class InvitationWorkflow:
    @workflow.init
    def __init__(self, start: InvitationStart) -> None:
        self.start = start
        self.step = "started"
        self.token_id = 0
        self.expires_at = workflow.now() + timedelta(days=start.invitation_days)
        self.accepted_by: int | None = None
        self.revoked_by: str | None = None

    @workflow.run
    async def run(self, start: InvitationStart) -> InvitationOutcome:
        workflow.upsert_search_attributes([PORTAL.value_set(start.portal)])
        await self.send_link()
        self.enter(Step.PENDING, "Waiting for the invitee to accept")
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self.accepted_by is not None or self.revoked_by is not None,
                timeout=self.expires_at - workflow.now(),
                timeout_summary=f"invitation lifetime ({start.invitation_days} days)",
            )
        if self.accepted_by is not None:
            return self.accepted(self.accepted_by)
        status = Step.REVOKED if self.revoked_by is not None else Step.EXPIRED
        # The database settles an acceptance racing the deadline: it may say "accepted".
        ended = await workflow.execute_activity_method(
            InvitationActivities.end_invitation,
            InvitationEnded(
                invitation_id=start.invitation_id,
                workflow_id=workflow.info().workflow_id,
                status=status,
                actor=self.revoked_by or "system",
            ),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=DB_RETRY,
            summary=f"end invitation: {status}",
        )
        if ended.status == Step.ACCEPTED:
            return self.accepted(ended.user_id)
        self.enter(ended.status, f"Invitation {ended.status}")
        return InvitationOutcome(status=ended.status)

    def accepted(self, user_id: int | None) -> InvitationOutcome:
        self.enter(Step.ACCEPTED, "Accepted: the employee's account is active")
        return InvitationOutcome(status=Step.ACCEPTED, user_id=user_id)

    async def send_link(self) -> None:
        self.enter(Step.SENDING, "E-mailing the invitation link")
        sent = await workflow.execute_activity_method(
            InvitationActivities.send_invitation,
            InvitationMail(
                invitation_id=self.start.invitation_id,
                workflow_id=workflow.info().workflow_id,
                lifetime_hours=self.start.invitation_days * 24,
                send_key=f"{workflow.info().workflow_id}/link",
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=MAIL_RETRY,
            summary="e-mail invitation link",
        )
        self.token_id = sent.token_id

    @workflow.signal
    def accept(self, acceptance: InvitationAcceptance) -> None:
        """Delivered at least once by the outbox relay; a repeat changes nothing."""
        if self.accepted_by is None and self.revoked_by is None:
            self.accepted_by = acceptance.user_id

    @workflow.signal
    def revoke(self, request: RevokeRequest) -> None:
        """From the employees page, `temporal workflow signal` or the Temporal UI alike."""
        if self.accepted_by is None and self.revoked_by is None:
            self.revoked_by = request.revoked_by or "unknown"

    @workflow.query
    def get_status(self) -> InvitationStatus:
        return InvitationStatus(step=self.step, expires_at=self.expires_at.isoformat())

    def enter(self, step: Step, details: str) -> None:
        self.step = step
        workflow.set_current_details(details)
        workflow.upsert_search_attributes([STEP.value_set(step)])
