"""The staff invitation's side effects: mint and mail the link, and end a lapsed invitation."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.mail import deliver_once, sent_link
from portal.mailer import Mailer
from portal.models import StaffInvitation, StaffUser
from portal.tokens import link_for_send
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


class StaffInvitationActivities:
    def __init__(self, session_factory: sessionmaker[Session], mailer: Mailer):
        self.session_factory = session_factory
        self.mailer = mailer

    @activity.defn
    def send_staff_invitation(self, request: SendInvitationLink) -> InvitationLinkSent:
        """The raw token is derived here for the e-mail only; the database keeps its hash, and a
        retried send repeats the same link."""
        with self.session_factory() as session:
            if (sent := sent_link(session, request.send_key)) is not None:
                return InvitationLinkSent(token_id=sent)
            invitation = session.get(StaffInvitation, request.invitation_id)
            staff = session.get(StaffUser, invitation.staff_id) if invitation else None
            if invitation is None or staff is None:
                raise ApplicationError(
                    "invitation no longer exists", non_retryable=True, type="InvitationGone"
                )
            token, raw = link_for_send(
                session,
                secret=self.mailer.settings.secret_key,
                send_key=request.send_key,
                purpose=LINK_PURPOSE,
                portal=LINK_PORTAL,
                workflow_id=request.workflow_id,
                lifetime_hours=request.lifetime_hours,
            )
            base_url = self.mailer.settings.public_base_url.rstrip("/")
            deliver_once(
                session,
                self.mailer,
                request.send_key,
                to=invitation.email,
                template="staff_invitation",
                locale="es",
                context={
                    "portal": "",
                    "staff": staff,
                    "link": f"{base_url}/staff/invitation/{raw}",
                    "days": str(max(request.lifetime_hours // 24, 1)),
                    "base_url": base_url,
                },
                portal="",
                workflow_id=request.workflow_id,
                invitation_id=invitation.id,
            )
            return InvitationLinkSent(token_id=token.id)

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
