"""The registration's door for the web tier: every change is one database transaction that
also carries what the process must hear (an outbox start or signal), so no crash between two
systems can leave a username held without a process, or an account confirmed that its process
never hears of."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.audit import add_event
from portal.config import Portal
from portal.models import AccountStatus, EmailToken, Registration, User, utcnow
from portal.tokens import token_hash
from processes import search_attributes
from processes.outbox import enqueue_signal, enqueue_start
from processes.registration.vocabulary import EmailConfirmed, RegistrationStart, Step


def registration_id(portal: Portal, reference: str) -> str:
    return f"registration/{portal.slug}/{reference}"


def begin(
    session: Session,
    portal: Portal,
    registration: Registration,
    rows: Iterable[object] = (),
    *,
    user: User | None = None,
    action: str = "registration.submitted",
    **audit_detail,
) -> bool:
    """Stores the registration's rows and owes Temporal its start, in the caller's transaction,
    then commits. False when the database's unique username index refused the account (a race
    the form's own check missed); nothing is kept then."""
    session.add_all([*rows, registration] if user is None else [*rows, user, registration])
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        return False
    add_event(
        session,
        actor="applicant",
        action=action,
        portal=portal.slug,
        workflow_id=registration.workflow_id,
        user_id=user.id if user else None,
        **audit_detail,
    )
    enqueue_start(
        session,
        workflow="RegistrationWorkflow",
        workflow_id=registration.workflow_id,
        payload=RegistrationStart(
            portal=portal.slug,
            reference=registration.reference,
            steps=list(portal.steps),
            policy=portal.policy,
            user_id=user.id if user else None,
        ),
        summary=f"{portal.name.source}: registration {registration.reference}",
        search_attributes={
            search_attributes.PORTAL.name: portal.slug,
            search_attributes.REFERENCE.name: registration.reference,
            search_attributes.STEP.name: portal.steps[0],
        },
    )
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return False
    return True


@dataclass
class LinkState:
    """What the confirmation page may say about a link, read without changing anything."""

    status: str  # "usable", "confirmed", "expired", "unknown"
    token: EmailToken | None = None


def confirmation_link(session: Session, portal: Portal, raw: str) -> LinkState:
    token = session.scalar(select(EmailToken).where(EmailToken.token_hash == token_hash(raw)))
    if token is None or token.portal != portal.slug or token.purpose != "confirm_email":
        return LinkState("unknown")
    if token.used_at is not None:
        return LinkState("confirmed", token)
    if not token.usable(utcnow()):
        return LinkState("expired", token)
    return LinkState("usable", token)


def redeem_confirmation(session: Session, portal: Portal, raw: str) -> LinkState:
    """The confirmation click: link, account and read model change in one transaction that also
    owes the workflow its `email_confirmed` signal. Repeated or concurrent clicks are answered
    from the first one's result; the conditional update lets exactly one of them win."""
    state = confirmation_link(session, portal, raw)
    if state.status != "usable":
        return state
    token = state.token
    now = utcnow()
    won = session.execute(
        update(EmailToken)
        .where(EmailToken.id == token.id)
        .where(EmailToken.used_at.is_(None))
        .where(EmailToken.revoked_at.is_(None))
        .where(EmailToken.expires_at > now)
        .values(used_at=now)
    ).rowcount
    if not won:
        session.rollback()
        return confirmation_link(session, portal, raw)
    user = session.get(User, token.user_id) if token.user_id else None
    reviewed = Step.REVIEW in portal.steps
    next_status = AccountStatus.PENDING_REVIEW if reviewed else AccountStatus.ACTIVE
    if user is not None and user.status == AccountStatus.UNCONFIRMED:
        user.status = next_status
        if next_status == AccountStatus.ACTIVE:
            user.activated_at = now
    session.execute(
        update(Registration)
        .where(Registration.workflow_id == token.workflow_id)
        .values(status=Step.PENDING_REVIEW if reviewed else Step.ACTIVE, updated_at=now)
    )
    add_event(
        session,
        actor=f"user:{user.id}" if user else "applicant",
        action="registration.email_confirmed",
        portal=portal.slug,
        workflow_id=token.workflow_id,
        user_id=user.id if user else None,
        status=next_status,
    )
    enqueue_signal(
        session,
        workflow_id=token.workflow_id,
        signal="email_confirmed",
        payload=EmailConfirmed(
            workflow_id=token.workflow_id,
            token_id=token.id,
            user_id=user.id if user else 0,
            next_status=next_status,
        ),
    )
    session.commit()
    return LinkState("confirmed_now", token)
