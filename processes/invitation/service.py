"""An office's employees: inviting, accepting and revoking an invitation are each one database
transaction that also owes the invitation's process its start or signal (outbox): the invitation
row's `pending` status is the one thing accept and revoke race for, so exactly one of accept,
revoke and expiry wins. Turning an employee's access off or on lives here too."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.audit import add_event
from portal.config import Portal
from portal.models import AccountStatus, EmailToken, Invitation, Role, User, UserSession, utcnow
from portal.tokens import claim_link, revoke_links
from processes.invitation.vocabulary import (
    WORKFLOW,
    Acceptance,
    InvitationAcceptance,
    InvitationStart,
    RevokeRequest,
    Signal,
    Step,
)
from processes.logout_delivery.service import sign_out_everywhere
from processes.transitions import audit_and_signal, claim_row
from temporal.outbox import enqueue_start


def invitation_id(portal: Portal) -> str:
    """Opaque: the invitee's name and address stay in the database, never in the id."""
    return f"invitation/{portal.slug}/{secrets.token_hex(8)}"


def actor(user: User) -> str:
    return f"user:{user.id}"


def invite(
    session: Session, portal: Portal, primary: User, email: str, first_name: str, last_name: str
) -> bool:
    """The invitation's row, its audit line and its owed start commit together; False (nothing
    written) when the office already has a pending invitation for that address."""
    already = session.scalar(
        select(Invitation.id)
        .where(Invitation.office_id == primary.office_id)
        .where(Invitation.status == Step.PENDING)
        .where(func.lower(Invitation.email) == email.lower())
    )
    if already is not None:
        return False
    workflow_id = invitation_id(portal)
    invitation = Invitation(
        portal=portal.slug,
        office_id=primary.office_id,
        invited_by=primary.id,
        email=email,
        first_name=first_name,
        last_name=last_name,
        workflow_id=workflow_id,
        expires_at=utcnow() + timedelta(days=portal.policy.invitation_days),
    )
    session.add(invitation)
    session.flush()
    add_event(
        session,
        actor=actor(primary),
        action="invitation.sent",
        portal=portal.slug,
        workflow_id=workflow_id,
        user_id=primary.id,
        invitation_id=invitation.id,
        office_id=primary.office_id,
    )
    enqueue_start(
        session,
        workflow=WORKFLOW,
        workflow_id=workflow_id,
        payload=InvitationStart(
            portal=portal.slug,
            invitation_id=invitation.id,
            invitation_days=portal.policy.invitation_days,
            invited_by=actor(primary),
        ),
        summary=f"{portal.name.source}: employee invitation",
    )
    session.commit()
    return True


def set_access(session: Session, primary: User, employee: User, enabled: bool) -> None:
    """Turns an employee's access on or off; turning it off ends their sessions (and signs them
    out of every client) in the same commit. Nothing changes if it already was so."""
    before, after = (
        (AccountStatus.DISABLED, AccountStatus.ACTIVE)
        if enabled
        else (AccountStatus.ACTIVE, AccountStatus.DISABLED)
    )
    if employee.status != before:
        return
    employee.status = after
    if not enabled:
        session.execute(delete(UserSession).where(UserSession.user_id == employee.id))
        sign_out_everywhere(session, employee.id)
    add_event(
        session,
        actor=actor(primary),
        action="employee.enabled" if enabled else "employee.disabled",
        portal=employee.portal,
        user_id=employee.id,
        office_id=primary.office_id,
    )
    session.commit()


def _claim(session: Session, invitation: Invitation, status: Step, actor: str) -> bool:
    return claim_row(
        session,
        Invitation,
        invitation.id,
        Invitation.status == Step.PENDING,
        status=status,
        ended_at=utcnow(),
        ended_by=actor,
    )


def accept(session: Session, token: EmailToken, invitation: Invitation, user: User) -> Acceptance:
    """The invitee's account goes live with the office in the same transaction that consumes
    the link."""
    now = utcnow()
    user.status = AccountStatus.ACTIVE
    user.activated_at = now
    user.office_id = invitation.office_id
    user.role = Role.PROVIDER_EMPLOYEE
    session.add(user)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        return Acceptance.USERNAME_TAKEN
    if not claim_link(session, token.id, user_id=user.id) or not _claim(
        session, invitation, Step.ACCEPTED, f"user:{user.id}"
    ):
        session.rollback()
        return Acceptance.GONE
    session.execute(
        update(Invitation).where(Invitation.id == invitation.id).values(user_id=user.id)
    )
    audit_and_signal(
        session,
        workflow_id=invitation.workflow_id,
        signal=Signal.ACCEPT,
        payload=InvitationAcceptance(token_id=token.id, user_id=user.id),
        actor=f"user:{user.id}",
        action="invitation.accepted",
        portal=invitation.portal,
        user_id=user.id,
        invitation_id=invitation.id,
        office_id=invitation.office_id,
    )
    return Acceptance.ACCEPTED


def revoke(session: Session, invitation: Invitation, actor: str, actor_user_id: int) -> bool:
    """False when the invitation was no longer pending (accepted or ended meanwhile)."""
    if not _claim(session, invitation, Step.REVOKED, actor):
        session.rollback()
        return False
    revoke_links(session, invitation.workflow_id)
    audit_and_signal(
        session,
        workflow_id=invitation.workflow_id,
        signal=Signal.REVOKE,
        payload=RevokeRequest(revoked_by=actor),
        actor=actor,
        action="invitation.revoked",
        portal=invitation.portal,
        user_id=actor_user_id,
        invitation_id=invitation.id,
        office_id=invitation.office_id,
    )
    return True
