"""The staff invitation's side effects: mint and mail the link, and end a lapsed invitation."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from mail.mailer import Mailer
from mail.once import LinkMessage, send_link_once
from portal.audit import add_event
from portal.models import EmailToken, StaffInvitation, StaffUser, utcnow
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
        """Lapsed or revoked: the link stops working and the account that never started goes.

        Only a still-pending invitation changes, so an acceptance that won the race stands.
        """
        with self.session_factory() as session:
            now = utcnow()
            ended = session.execute(
                update(StaffInvitation)
                .where(StaffInvitation.id == request.invitation_id)
                .where(StaffInvitation.status == InvitationStatus.PENDING)
                .values(status=request.status, ended_at=now)
            ).rowcount
            invitation = session.get(StaffInvitation, request.invitation_id)
            if not ended:
                session.commit()
                return InvitationEnded(status=invitation.status if invitation else "gone")
            session.execute(
                update(EmailToken)
                .where(EmailToken.workflow_id == request.workflow_id)
                .where(EmailToken.used_at.is_(None))
                .where(EmailToken.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            staff = session.get(StaffUser, invitation.staff_id) if invitation.staff_id else None
            username = staff.username if staff else ""
            if staff is not None and not staff.password_hash:
                session.delete(staff)
            add_event(
                session,
                actor="system",
                action=f"staff.invitation_{request.status}",
                workflow_id=request.workflow_id,
                username=username,
            )
            session.commit()
            return InvitationEnded(status=request.status)
