"""Invitation activities: the office employee's link is minted and mailed here, and accepting,
revoking or expiring it changes the database here, each with its audit event."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import activity
from temporalio.exceptions import ApplicationError

from mail.once import LinkMessage, MailingActivities, send_link_once
from portal.audit import add_event
from portal.models import Invitation, User, utcnow
from portal.tokens import revoke_links
from processes.invitation.vocabulary import Step
from processes.transitions import claim_row

INVITATION_PURPOSE = "invitation"


@dataclass
class InvitationMail:
    """Mint the invitation link (stored hashed) and e-mail it to the invitee."""

    invitation_id: int
    workflow_id: str
    lifetime_hours: int
    send_key: str


@dataclass
class InvitationMailed:
    token_id: int


@dataclass
class InvitationEnded:
    invitation_id: int
    workflow_id: str
    status: Step
    actor: str


@dataclass
class InvitationState:
    status: Step
    user_id: int | None = None


class InvitationActivities(MailingActivities):
    @activity.defn
    def send_invitation(self, request: InvitationMail) -> InvitationMailed:
        with self.session_factory() as session:

            def compose() -> LinkMessage:
                invitation = session.get(Invitation, request.invitation_id)
                if invitation is None:
                    raise ApplicationError(
                        "invitation no longer exists", non_retryable=True, type="InvitationGone"
                    )
                inviter = (
                    session.get(User, invitation.invited_by) if invitation.invited_by else None
                )
                return LinkMessage(
                    purpose=INVITATION_PURPOSE,
                    portal=invitation.portal,
                    workflow_id=request.workflow_id,
                    lifetime_hours=request.lifetime_hours,
                    path=f"{invitation.portal}/invitation",
                    to=invitation.email,
                    template="invitation",
                    locale=inviter.locale if inviter else "es",
                    context={
                        "portal": invitation.portal,
                        "invitation": invitation,
                        "office": invitation.office,
                        "inviter": inviter,
                        "days": str(max(request.lifetime_hours // 24, 1)),
                    },
                    detail={"invitation_id": invitation.id},
                )

            return InvitationMailed(
                token_id=send_link_once(session, self.mailer, request.send_key, compose)
            )

    @activity.defn
    def end_invitation(self, request: InvitationEnded) -> InvitationState:
        """Revoked or expired, unless the web tier accepted (or revoked) it first: the pending
        status is claimed by exactly one of them, and the answer says which."""
        with self.session_factory() as session:
            now = utcnow()
            claimed = claim_row(
                session,
                Invitation,
                request.invitation_id,
                Invitation.status == Step.PENDING,
                status=request.status,
                ended_at=now,
                ended_by=request.actor,
            )
            invitation = session.get(Invitation, request.invitation_id)
            if invitation is None:
                session.commit()
                return InvitationState(status=Step.GONE)
            if invitation.status != Step.ACCEPTED:
                revoke_links(session, request.workflow_id, now=now)
            if claimed:
                add_event(
                    session,
                    actor=request.actor,
                    action=f"invitation.{request.status}",
                    portal=invitation.portal,
                    workflow_id=request.workflow_id,
                    invitation_id=invitation.id,
                    office_id=invitation.office_id,
                )
            session.commit()
            return InvitationState(status=invitation.status, user_id=invitation.user_id)
