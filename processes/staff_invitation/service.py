"""What the console calls: create the invited account and its invitation, and accept it, each in
the caller's transaction with its outbox row, so the database and the process never disagree."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.audit import add_event
from portal.models import EmailToken, StaffInvitation, StaffUser, utcnow
from portal.tokens import revoke_links, token_hash
from processes.staff_invitation.vocabulary import (
    LINK_PURPOSE,
    WORKFLOW,
    AcceptInvitation,
    InvitationStatus,
    RevokeInvitation,
    Signal,
    StaffInvitationStart,
)
from processes.transitions import claim_row
from temporal.outbox import enqueue_signal, enqueue_start

LIFETIME_HOURS = 72


def invite(
    session: Session,
    *,
    actor: str,
    username: str,
    full_name: str,
    email: str,
    roles: list[str],
    portals: list[str],
    lifetime_hours: int = LIFETIME_HOURS,
) -> StaffInvitation:
    """An inactive account without a password, its invitation and the start of its process."""
    staff = StaffUser(
        username=username,
        full_name=full_name,
        email=email,
        password_hash="",
        roles=",".join(roles),
        portals=",".join(portals),
        active=False,
    )
    session.add(staff)
    session.flush()
    workflow_id = f"staff-invitation/{secrets.token_hex(10)}"
    invitation = StaffInvitation(
        staff_id=staff.id,
        email=email,
        workflow_id=workflow_id,
        invited_by=actor,
        expires_at=utcnow() + timedelta(hours=lifetime_hours),
    )
    session.add(invitation)
    session.flush()
    enqueue_start(
        session,
        workflow=WORKFLOW,
        workflow_id=workflow_id,
        payload=StaffInvitationStart(
            invitation_id=invitation.id, lifetime_hours=lifetime_hours, invited_by=actor
        ),
        summary="staff invitation",
    )
    add_event(
        session,
        actor=actor,
        action="staff.invited",
        workflow_id=workflow_id,
        username=username,
        roles=staff.roles,
        portals=staff.portals,
    )
    return invitation


def link_for(session: Session, raw: str) -> tuple[EmailToken, StaffInvitation, StaffUser] | None:
    """The invitation behind a link, if the link is still good and the invitation pending."""
    token = session.scalar(
        select(EmailToken).where(
            EmailToken.token_hash == token_hash(raw), EmailToken.purpose == LINK_PURPOSE
        )
    )
    if token is None or not token.usable(utcnow()):
        return None
    invitation = session.scalar(
        select(StaffInvitation).where(StaffInvitation.workflow_id == token.workflow_id)
    )
    if invitation is None or invitation.status != InvitationStatus.PENDING:
        return None
    staff = session.get(StaffUser, invitation.staff_id) if invitation.staff_id else None
    if staff is None:
        return None
    return token, invitation, staff


def accept(
    session: Session, token: EmailToken, invitation: StaffInvitation, staff: StaffUser, pw_hash: str
) -> bool:
    """Consumes the link and stores the password; False when the invitation ended meanwhile."""
    now = utcnow()
    taken = claim_row(
        session,
        StaffInvitation,
        invitation.id,
        StaffInvitation.status == InvitationStatus.PENDING,
        status=InvitationStatus.ACCEPTED,
        ended_at=now,
    )
    if not taken:
        return False
    token.used_at = now
    staff.password_hash = pw_hash
    staff.active = True
    enqueue_start(
        session,
        workflow=WORKFLOW,
        workflow_id=invitation.workflow_id,
        payload=StaffInvitationStart(invitation_id=invitation.id, lifetime_hours=0, invited_by=""),
        signal=Signal.ACCEPT,
        signal_payload=AcceptInvitation(staff_id=staff.id),
        summary="staff invitation accepted",
    )
    add_event(
        session,
        actor=f"staff:{staff.username}",
        action="staff.invitation_accepted",
        workflow_id=invitation.workflow_id,
        username=staff.username,
    )
    return True


def end_pending(session: Session, invitation_id: int, status: InvitationStatus, actor: str) -> bool:
    """Lapsed or revoked: the link stops working and the account that never started goes.

    Only a still-pending invitation changes, so an acceptance that won the race stands; says
    whether this call ended it. The caller commits.
    """
    now = utcnow()
    ended = claim_row(
        session,
        StaffInvitation,
        invitation_id,
        StaffInvitation.status == InvitationStatus.PENDING,
        status=status,
        ended_at=now,
    )
    if not ended:
        return False
    invitation = session.get(StaffInvitation, invitation_id)
    revoke_links(session, invitation.workflow_id, now=now)
    staff = session.get(StaffUser, invitation.staff_id) if invitation.staff_id else None
    username = staff.username if staff else ""
    if staff is not None and not staff.password_hash:
        session.delete(staff)
    add_event(
        session,
        actor=actor,
        action=f"staff.invitation_{status}",
        workflow_id=invitation.workflow_id,
        username=username,
    )
    return True


def pending_invitation(session: Session, staff: StaffUser) -> StaffInvitation | None:
    """The invitation a console admin may still cancel for this account, if any."""
    return session.scalar(
        select(StaffInvitation).where(
            StaffInvitation.staff_id == staff.id,
            StaffInvitation.status == InvitationStatus.PENDING,
        )
    )


def revoke(session: Session, invitation: StaffInvitation, actor: str) -> bool:
    """An admin cancels a pending invitation: the link stops working in this transaction, and
    the process hears of it through the outbox; False if it was accepted or lapsed first."""
    workflow_id = invitation.workflow_id
    if not end_pending(session, invitation.id, InvitationStatus.REVOKED, actor):
        return False
    enqueue_signal(
        session,
        workflow_id=workflow_id,
        signal=Signal.REVOKE,
        payload=RevokeInvitation(revoked_by=actor),
    )
    return True
