"""The staff invitation's side effects: mint and mail the link, and end a lapsed invitation."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from mail.once import LinkMessage, MailingActivities, send_link_once
from portal.models import StaffInvitation, StaffUser
from processes.staff_invitation.service import end_pending
from processes.staff_invitation.vocabulary import (
    LINK_PORTAL,
    LINK_PURPOSE,
    EndInvitation,
    InvitationEnded,
    InvitationLinkSent,
    InvitationStatus,
    SendInvitationLink,
)


class StaffInvitationActivities(MailingActivities):
    @activity.defn
    def send_staff_invitation(self, request: SendInvitationLink) -> InvitationLinkSent:
        """The raw token is derived here for the e-mail only; the database keeps its hash, and a
        retried send repeats the same link."""
        with self.session_factory() as session:

            def compose() -> LinkMessage:
                invitation = session.get(StaffInvitation, request.invitation_id)
                staff = session.get(StaffUser, invitation.staff_id) if invitation else None
                if invitation is None or staff is None:
                    raise ApplicationError(
                        "invitation no longer exists", non_retryable=True, type="InvitationGone"
                    )
                return LinkMessage(
                    purpose=LINK_PURPOSE,
                    portal=LINK_PORTAL,
                    workflow_id=request.workflow_id,
                    lifetime_hours=request.lifetime_hours,
                    path="staff/invitation",
                    to=invitation.email,
                    template="staff_invitation",
                    locale="es",
                    context={
                        "portal": "",
                        "staff": staff,
                        "days": str(max(request.lifetime_hours // 24, 1)),
                    },
                    audit_portal="",
                    detail={"invitation_id": invitation.id},
                )

            return InvitationLinkSent(
                token_id=send_link_once(session, self.mailer, request.send_key, compose)
            )

    @activity.defn
    def end_staff_invitation(self, request: EndInvitation) -> InvitationEnded:
        """A lapsed invitation ends (service.end_pending); one accepted or revoked first stands."""
        with self.session_factory() as session:
            status = InvitationStatus(request.status)
            if not end_pending(session, request.invitation_id, status, actor="system"):
                invitation = session.get(StaffInvitation, request.invitation_id)
                session.commit()
                return InvitationEnded(status=invitation.status if invitation else "gone")
            session.commit()
            return InvitationEnded(status=request.status)
