"""One staff invitation: mail the link, then wait for the invitee or for the link to lapse."""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow

from processes.staff_invitation.vocabulary import (
    AcceptInvitation,
    EndInvitation,
    InvitationStatus,
    RevokeInvitation,
    SendInvitationLink,
    StaffInvitationOutcome,
    StaffInvitationStart,
)

with workflow.unsafe.imports_passed_through():
    from processes.staff_invitation.activities import StaffInvitationActivities
    from temporal.retry_policies import DB_RETRY, MAIL_RETRY


@workflow.defn
class StaffInvitationWorkflow:
    """Started through the outbox in the transaction that created the invited account."""

    @workflow.init
    def __init__(self, start: StaffInvitationStart) -> None:
        self.accepted_by: int | None = None
        self.revoked_by = ""
        self.step = "started"

    @workflow.run
    async def run(self, start: StaffInvitationStart) -> StaffInvitationOutcome:
        workflow_id = workflow.info().workflow_id
        if self.revoked_by:
            return self.revoked()
        self.enter("sending", "E-mailing the invitation link")
        await workflow.execute_activity_method(
            StaffInvitationActivities.send_staff_invitation,
            SendInvitationLink(
                invitation_id=start.invitation_id,
                workflow_id=workflow_id,
                lifetime_hours=start.lifetime_hours,
                send_key=f"{workflow_id}/link",
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=MAIL_RETRY,
            summary="e-mail staff invitation link",
        )
        self.enter("pending", "Waiting for the invitee to set a password")
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self.accepted_by is not None or bool(self.revoked_by),
                timeout=timedelta(hours=start.lifetime_hours),
                timeout_summary=f"invitation lifetime ({start.lifetime_hours} h)",
            )
        if self.accepted_by is not None:
            self.enter("accepted", "Accepted: the staff member set a password")
            return StaffInvitationOutcome(status=InvitationStatus.ACCEPTED)
        if self.revoked_by:
            return self.revoked()
        ended = await workflow.execute_activity_method(
            StaffInvitationActivities.end_staff_invitation,
            EndInvitation(
                invitation_id=start.invitation_id,
                workflow_id=workflow_id,
                status=InvitationStatus.EXPIRED,
            ),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=DB_RETRY,
            summary="end lapsed staff invitation",
        )
        self.enter(ended.status, f"Invitation {ended.status}")
        return StaffInvitationOutcome(status=ended.status)

    @workflow.signal
    def accept(self, request: AcceptInvitation) -> None:
        """Sent by the outbox in the transaction that stored the invitee's password."""
        self.accepted_by = request.staff_id

    @workflow.signal
    def revoke(self, request: RevokeInvitation) -> None:
        """Sent by the outbox in the transaction where an admin cancelled the invitation (its
        link was voided there); the process ends without waiting out the lifetime."""
        self.revoked_by = request.revoked_by or "unknown"

    def revoked(self) -> StaffInvitationOutcome:
        self.enter(InvitationStatus.REVOKED, "Revoked by an administrator")
        return StaffInvitationOutcome(status=InvitationStatus.REVOKED)

    def enter(self, step: str, details: str) -> None:
        self.step = step
        workflow.set_current_details(details)
