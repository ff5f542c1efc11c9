"""Accepting and revoking an invitation are each one database transaction that also owes the
invitation's process its signal (outbox): the invitation row's `pending` status is the one
thing both race for, so exactly one of accept, revoke and expiry wins."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.audit import add_event
from portal.models import AccountStatus, EmailToken, Invitation, User, utcnow
from processes.invitation.vocabulary import Acceptance, InvitationAcceptance, RevokeRequest, Step
from processes.outbox import enqueue_signal


def _claim(session: Session, invitation: Invitation, status: Step, actor: str) -> bool:
    now = utcnow()
    return bool(
        session.execute(
            update(Invitation)
            .where(Invitation.id == invitation.id)
            .where(Invitation.status == Step.PENDING)
            .values(status=status, ended_at=now, ended_by=actor)
        ).rowcount
    )


def accept(session: Session, token: EmailToken, invitation: Invitation, user: User) -> Acceptance:
    """The invitee's account goes live with the office in the same transaction that consumes
    the link."""
    now = utcnow()
    user.status = AccountStatus.ACTIVE
    user.activated_at = now
    user.office_id = invitation.office_id
    user.role = "provider_employee"
    session.add(user)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        return Acceptance.USERNAME_TAKEN
    consumed = session.execute(
        update(EmailToken)
        .where(EmailToken.id == token.id)
        .where(EmailToken.used_at.is_(None))
        .where(EmailToken.revoked_at.is_(None))
        .where(EmailToken.expires_at > now)
        .values(used_at=now, user_id=user.id)
    ).rowcount
    if not consumed or not _claim(session, invitation, Step.ACCEPTED, f"user:{user.id}"):
        session.rollback()
        return Acceptance.GONE
    session.execute(
        update(Invitation).where(Invitation.id == invitation.id).values(user_id=user.id)
    )
    add_event(
        session,
        actor=f"user:{user.id}",
        action="invitation.accepted",
        portal=invitation.portal,
        workflow_id=invitation.workflow_id,
        user_id=user.id,
        invitation_id=invitation.id,
        office_id=invitation.office_id,
    )
    enqueue_signal(
        session,
        workflow_id=invitation.workflow_id,
        signal="accept",
        payload=InvitationAcceptance(token_id=token.id, user_id=user.id),
    )
    session.commit()
    return Acceptance.ACCEPTED


def revoke(session: Session, invitation: Invitation, actor: str, actor_user_id: int) -> bool:
    """False when the invitation was no longer pending (accepted or ended meanwhile)."""
    if not _claim(session, invitation, Step.REVOKED, actor):
        session.rollback()
        return False
    session.execute(
        update(EmailToken)
        .where(EmailToken.workflow_id == invitation.workflow_id)
        .where(EmailToken.used_at.is_(None))
        .where(EmailToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    add_event(
        session,
        actor=actor,
        action="invitation.revoked",
        portal=invitation.portal,
        workflow_id=invitation.workflow_id,
        user_id=actor_user_id,
        invitation_id=invitation.id,
        office_id=invitation.office_id,
    )
    enqueue_signal(
        session,
        workflow_id=invitation.workflow_id,
        signal="revoke",
        payload=RevokeRequest(revoked_by=actor),
    )
    session.commit()
    return True
