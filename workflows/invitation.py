"""One office employee's invitation: e-mail a link, then wait for acceptance, revocation or expiry."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from workflows.search_attributes import PORTAL, STEP

with workflow.unsafe.imports_passed_through():
    from activities.invitations import (
        InvitationAccepted,
        InvitationActivities,
        InvitationEnded,
        InvitationMail,
    )
    from workflows.registration import DB_RETRY, MAIL_RETRY


@dataclass
class InvitationStart:
    """Carries ids and the policy's lifetime only; names and addresses stay in the database."""

    portal: str
    invitation_id: int
    invitation_days: int
    invited_by: str


@dataclass
class InvitationOutcome:
    status: str
    user_id: int | None = None


@dataclass
class InvitationAcceptance:
    """The invitee's account is stored (password hashed, status `invited`); here is its id."""

    token_id: int
    user_id: int


@dataclass
class AcceptanceResult:
    status: str


@dataclass
class RevokeRequest:
    revoked_by: str


@dataclass
class InvitationStatus:
    step: str
    expires_at: str


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
        self.accepting = False

    @workflow.run
    async def run(self, start: InvitationStart) -> InvitationOutcome:
        workflow.upsert_search_attributes([PORTAL.value_set(start.portal)])
        await self.send_link()
        self.enter("pending", "Waiting for the invitee to accept")
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self.accepted_by is not None or self.revoked_by is not None,
                timeout=self.expires_at - workflow.now(),
                timeout_summary=f"invitation lifetime ({start.invitation_days} days)",
            )
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self.accepted_by is not None:
            self.enter("accepted", "Accepted: the employee's account is active")
            return InvitationOutcome(status="accepted", user_id=self.accepted_by)
        status = "revoked" if self.revoked_by is not None else "expired"
        await workflow.execute_activity_method(
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
        self.enter(status, f"Invitation {status}")
        return InvitationOutcome(status=status)

    async def send_link(self) -> None:
        self.enter("sending", "E-mailing the invitation link")
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

    @workflow.update
    async def accept(self, acceptance: InvitationAcceptance) -> AcceptanceResult:
        """A link followed before the workflow recorded it waits for it; a second click is
        refused while the first is being applied."""
        await workflow.wait_condition(lambda: self.token_id >= acceptance.token_id)
        if acceptance.token_id != self.token_id:
            raise ApplicationError("link replaced", type="Expired")
        if self.accepted_by is not None or self.accepting:
            raise ApplicationError("invitation already accepted", type="NotPending")
        self.accepting = True
        result = await workflow.execute_activity_method(
            InvitationActivities.accept_invitation,
            InvitationAccepted(
                invitation_id=self.start.invitation_id,
                workflow_id=workflow.info().workflow_id,
                token_id=acceptance.token_id,
                user_id=acceptance.user_id,
            ),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=DB_RETRY,
            summary="activate the employee's account",
        )
        self.accepted_by = acceptance.user_id
        return AcceptanceResult(status=result.status)

    @accept.validator
    def validate_accept(self, acceptance: InvitationAcceptance) -> None:
        if self.revoked_by is not None:
            raise ApplicationError("invitation revoked", type="Revoked")
        if self.accepted_by is not None or self.step in ("accepted", "revoked", "expired"):
            raise ApplicationError(f"invitation is {self.step}", type="NotPending")
        if workflow.now() >= self.expires_at:
            raise ApplicationError("invitation expired", type="Expired")

    @workflow.signal
    def revoke(self, request: RevokeRequest) -> None:
        """From the employees page, `temporal workflow signal` or the Temporal UI alike."""
        if self.accepted_by is None and self.revoked_by is None:
            self.revoked_by = request.revoked_by or "unknown"

    @workflow.query
    def get_status(self) -> InvitationStatus:
        return InvitationStatus(step=self.step, expires_at=self.expires_at.isoformat())

    def enter(self, step: str, details: str) -> None:
        self.step = step
        workflow.set_current_details(details)
        workflow.upsert_search_attributes([STEP.value_set(step)])
