"""E-mail change activities: both links are minted and mailed here (so no raw token enters
workflow history), and the change is applied, closed or kept here, each with its audit line."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from mail.once import LinkMessage, MailingActivities, send_once
from portal.audit import add_event
from portal.models import LIVE_ACCOUNT, EmailChange, User, UserSession, utcnow
from portal.tokens import revoke_links
from processes.email_change.vocabulary import LinkPurpose, Mail, Step
from processes.logout_delivery.service import sign_out_everywhere
from processes.transitions import claim_row


@dataclass
class ChangeMail:
    """One of a change's e-mails: `template` names it, `lifetime_hours` is its link's (0: none)."""

    change_id: int
    workflow_id: str
    template: Mail
    send_key: str
    lifetime_hours: int = 0


@dataclass
class ChangeMailed:
    token_id: int = 0


@dataclass
class ChangeApplying:
    change_id: int
    workflow_id: str
    undo_days: int
    shared_addresses: bool


@dataclass
class ChangeEnding:
    """Close a change that was waiting (`expired`, `replaced`) or in its undo window (`kept`)."""

    change_id: int
    workflow_id: str
    status: Step


@dataclass
class ChangeState:
    status: Step


TEMPLATES = {
    Mail.CONFIRM: (LinkPurpose.CONFIRM, "new", "account/email/confirm"),
    Mail.REQUESTED: (None, "old", ""),
    Mail.APPLIED: (LinkPurpose.UNDO, "old", "account/email/undo"),
}
"""Each e-mail: the link it carries, which address it goes to, and the link's path."""


def address_taken(session: Session, portal: str, email: str, user_id: int) -> bool:
    """Whether another live account of the portal uses the address."""
    return (
        session.scalar(
            select(User.id)
            .where(User.portal == portal)
            .where(func.lower(User.email) == email.lower())
            .where(User.id != user_id)
            .where(User.status.in_(LIVE_ACCOUNT))
            .limit(1)
        )
        is not None
    )


class EmailChangeActivities(MailingActivities):
    @activity.defn
    def send_change_mail(self, request: ChangeMail) -> ChangeMailed:
        """The new address's confirmation link, or a notice to the old address (with the undo
        link once the change is applied, lasting as long as the undo window); each is sent once
        and repeats the same link."""
        purpose, audience, path = TEMPLATES[request.template]
        with self.session_factory() as session:

            def compose() -> LinkMessage:
                change = session.get(EmailChange, request.change_id)
                user = session.get(User, change.user_id) if change else None
                if change is None or user is None:
                    raise ApplicationError(
                        "change no longer exists", non_retryable=True, type="Gone"
                    )
                return LinkMessage(
                    purpose=purpose,
                    portal=change.portal,
                    workflow_id=request.workflow_id,
                    lifetime_hours=request.lifetime_hours,
                    path=f"{change.portal}/{path}",
                    to=change.new_email if audience == "new" else change.old_email,
                    template=request.template,
                    locale=user.locale,
                    context={
                        "portal": change.portal,
                        "portal_info": self.portals.get(change.portal),
                        "user": user,
                        "change": change,
                        "hours": str(request.lifetime_hours),
                        "days": str(max(request.lifetime_hours // 24, 1)),
                    },
                    user_id=user.id,
                    detail={"user_id": user.id},
                    expires_at=change.undo_until if purpose == LinkPurpose.UNDO else None,
                )

            return ChangeMailed(
                token_id=send_once(session, self.mailer, request.send_key, compose).token_id
            )

    @activity.defn
    def apply_change(self, request: ChangeApplying) -> ChangeState:
        """The confirmed change, in one transaction with its audit line: the account takes the
        new address, every other session ends and every client is told. Claimed from
        `confirmed`, so a retry (or a crash after the commit) never applies it twice."""
        with self.session_factory() as session:
            now = utcnow()
            change = session.get(EmailChange, request.change_id)
            if change is None:
                return ChangeState(status=Step.GONE)
            if change.status != Step.CONFIRMED:
                return ChangeState(status=Step(change.status))
            refused = not request.shared_addresses and address_taken(
                session, change.portal, change.new_email, change.user_id
            )
            status = Step.REFUSED if refused else Step.APPLIED
            claimed = session.execute(
                update(EmailChange)
                .where(EmailChange.id == change.id)
                .where(EmailChange.status == Step.CONFIRMED)
                .values(
                    status=status,
                    applied_at=None if refused else now,
                    undo_until=None if refused else now + timedelta(days=request.undo_days),
                    ended_at=now if refused else None,
                )
            ).rowcount
            if not claimed:
                session.rollback()
                return ChangeState(status=Step(session.get(EmailChange, request.change_id).status))
            if not refused:
                session.execute(
                    update(User).where(User.id == change.user_id).values(email=change.new_email)
                )
                others = delete(UserSession).where(UserSession.user_id == change.user_id)
                if change.keep_session:
                    others = others.where(UserSession.id != change.keep_session)
                session.execute(others)
                sign_out_everywhere(session, change.user_id)
            add_event(
                session,
                actor=change.requested_by,
                action="email_change.applied" if not refused else "email_change.refused",
                portal=change.portal,
                workflow_id=request.workflow_id,
                user_id=change.user_id,
                change=change.reference,
            )
            session.commit()
            return ChangeState(status=status)

    @activity.defn
    def end_change(self, request: ChangeEnding) -> ChangeState:
        """Expired or replaced (from `pending`), or kept once the undo window closes (from
        `applied`), unless the web tier's click claimed it first: the answer says which."""
        source = Step.APPLIED if request.status == Step.KEPT else Step.PENDING
        purpose = LinkPurpose.UNDO if request.status == Step.KEPT else LinkPurpose.CONFIRM
        with self.session_factory() as session:
            now = utcnow()
            claimed = claim_row(
                session,
                EmailChange,
                request.change_id,
                EmailChange.status == source,
                status=request.status,
                ended_at=now,
            )
            revoke_links(session, request.workflow_id, purpose, now)
            change = session.get(EmailChange, request.change_id)
            if change is None:
                session.commit()
                return ChangeState(status=Step.GONE)
            if claimed:
                add_event(
                    session,
                    actor="system",
                    action=f"email_change.{request.status}",
                    portal=change.portal,
                    workflow_id=request.workflow_id,
                    user_id=change.user_id,
                    change=change.reference,
                )
            session.commit()
            return ChangeState(status=Step(change.status))
