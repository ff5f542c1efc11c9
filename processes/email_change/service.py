"""The e-mail change's door for the web tier: each request, click and undo is one database
transaction that also carries what the process must hear (an outbox start or signal), and the
change's `status` column is claimed by conditional updates, so a click racing the link's
expiry, a newer request or the undo window's end wins or loses exactly once."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from portal import lockout
from portal.audit import add_event
from portal.config import Portal
from portal.models import EmailChange, User, UserSession, utcnow
from portal.passwords import verify_password
from portal.tokens import new_reference, revoke_links
from processes import links
from processes.account_notice.service import notify_account_owner, notify_address
from processes.account_notice.vocabulary import NoticeKind
from processes.email_change.activities import address_taken
from processes.email_change.vocabulary import (
    WORKFLOW,
    ChangeConfirmed,
    ChangeReplaced,
    ChangeUndone,
    EmailChangeStart,
    LinkPurpose,
    Requested,
    Signal,
    Step,
)
from processes.links import LinkState
from processes.logout_delivery.service import sign_out_everywhere
from processes.recovery.service import request_password_reset
from processes.transitions import audit_and_signal, claim_row, start_process
from temporal.outbox import enqueue_signal


def email_change_id(portal: Portal, reference: str) -> str:
    return f"email-change/{portal.slug}/{reference}"


@dataclass
class ChangeRequest:
    """One request: the person's own (with their password and the session that asks) or the
    help desk's (with its note on how identity was checked)."""

    new_email: str
    requested_by: str
    password: str | None = None
    note: str = ""
    keep_session: str | None = None


def pending_change(session: Session, user: User) -> EmailChange | None:
    """The change waiting for its confirmation, if any: what the page mentions."""
    return session.scalar(
        select(EmailChange)
        .where(EmailChange.user_id == user.id)
        .where(EmailChange.status == Step.PENDING)
        .order_by(EmailChange.id.desc())
        .limit(1)
    )


def _wrong_password(session: Session, user: User, attempt: lockout.Attempt) -> Requested:
    """Counted (claimed before the check) like a wrong password at sign-in; the attempt that
    reaches the threshold locks, and the lock is told by e-mail."""
    if attempt.locks_if_wrong:
        lockout.mark_locked(session, attempt)
        add_event(
            session,
            actor=f"user:{user.id}",
            action="login.locked",
            portal=attempt.portal,
            user_id=user.id,
        )
        notify_account_owner(session, user, NoticeKind.ACCOUNT_LOCKED)
    session.commit()
    return Requested.LOCKED if attempt.locks_if_wrong else Requested.WRONG_PASSWORD


def _replace_waiting(session: Session, user_id: int, by_change_id: int) -> None:
    """Every change of the account still waiting for its confirmation ends, its link with it."""
    now = utcnow()
    waiting = list(
        session.scalars(
            select(EmailChange)
            .where(EmailChange.user_id == user_id)
            .where(EmailChange.status == Step.PENDING)
            .where(EmailChange.id != by_change_id)
        )
    )
    for change in waiting:
        claimed = claim_row(
            session,
            EmailChange,
            change.id,
            EmailChange.status == Step.PENDING,
            status=Step.REPLACED,
            ended_at=now,
        )
        if not claimed:
            continue
        revoke_links(session, change.workflow_id, LinkPurpose.CONFIRM, now)
        enqueue_signal(
            session,
            workflow_id=change.workflow_id,
            signal=Signal.REPLACE,
            payload=ChangeReplaced(by_change_id=by_change_id),
        )


def request_change(
    session: Session, portal: Portal, user: User, request: ChangeRequest
) -> Requested:
    """Checks the password (counted like any secret check), then starts the change's process
    with its row, replacing any change still waiting. An address another account uses, where
    the portal does not share addresses, is answered the same and that mailbox is told."""
    if request.password is not None:
        attempt = lockout.claim(
            session,
            portal.slug,
            lockout.username_key(user.username),
            portal.policy.login_lockout_threshold,
        )
        if attempt.refused:
            verify_password(None, request.password)
            return Requested.LOCKED
        if not verify_password(user.password_hash, request.password):
            return _wrong_password(session, user, attempt)
        lockout.release(session, attempt)
    if request.new_email.lower() == user.email.lower():
        return Requested.SAME_ADDRESS
    session.scalar(select(User.id).where(User.id == user.id).with_for_update())
    if not portal.policy.shared_email_addresses and address_taken(
        session, portal.slug, request.new_email, user.id
    ):
        _replace_waiting(session, user.id, by_change_id=0)
        notify_address(
            session, portal.slug, request.new_email, user.locale, NoticeKind.EMAIL_ADDRESS_IN_USE
        )
        add_event(
            session,
            actor=request.requested_by,
            action="email_change.address_in_use",
            portal=portal.slug,
            user_id=user.id,
            note=request.note,
        )
        session.commit()
        return Requested.SENT
    reference = new_reference()
    change = EmailChange(
        reference=reference,
        portal=portal.slug,
        workflow_id=email_change_id(portal, reference),
        user_id=user.id,
        old_email=user.email,
        new_email=request.new_email,
        status=Step.PENDING,
        requested_by=request.requested_by,
        note=request.note,
        keep_session=request.keep_session,
    )
    session.add(change)
    session.flush()
    _replace_waiting(session, user.id, by_change_id=change.id)
    add_event(
        session,
        actor=request.requested_by,
        action="email_change.requested",
        portal=portal.slug,
        workflow_id=change.workflow_id,
        user_id=user.id,
        note=request.note,
    )
    start_process(
        session,
        portal,
        workflow=WORKFLOW,
        workflow_id=change.workflow_id,
        payload=EmailChangeStart(
            portal=portal.slug,
            change_id=change.id,
            link_hours=portal.policy.email_change_link_hours,
            undo_days=portal.policy.email_change_undo_days,
            shared_addresses=portal.policy.shared_email_addresses,
        ),
        what="e-mail change",
        reference=reference,
        step=Step.SENDING,
    )
    session.commit()
    return Requested.SENT


Link = links.Link[EmailChange]


def read_link(session: Session, portal: Portal, raw: str, purpose: LinkPurpose) -> Link:
    """What a link's page may say, read without changing anything."""
    return links.read_link(session, portal.slug, raw, purpose, EmailChange)


def confirm(session: Session, portal: Portal, raw: str) -> Link:
    """The new address's button: the link and the change's `pending` are claimed together and
    the process is owed its `confirm` signal; it applies the change (with its audit line)."""
    link = read_link(session, portal, raw, LinkPurpose.CONFIRM)
    if link.state != LinkState.USABLE:
        return link
    if not links.claim(
        session,
        link,
        EmailChange.status == Step.PENDING,
        status=Step.CONFIRMED,
        confirmed_at=utcnow(),
    ):
        session.rollback()
        return read_link(session, portal, raw, LinkPurpose.CONFIRM)
    audit_and_signal(
        session,
        workflow_id=link.row.workflow_id,
        signal=Signal.CONFIRM,
        payload=ChangeConfirmed(token_id=link.token.id),
        actor=f"user:{link.row.user_id}",
        action="email_change.confirmed",
        portal=portal.slug,
        user_id=link.row.user_id,
    )
    return link.done_now()


def undo(session: Session, secret: str, portal: Portal, raw: str) -> Link:
    """The old address's button, inside the undo window: the old address is back, every
    session ends, every client is told, any waiting change ends, and a password reset goes to
    the old address, all in one transaction with the process's `undo` signal."""
    link = read_link(session, portal, raw, LinkPurpose.UNDO)
    if link.state != LinkState.USABLE:
        return link
    now = utcnow()
    change = link.row
    if not links.claim(
        session,
        link,
        EmailChange.status == Step.APPLIED,
        EmailChange.undo_until > now,
        status=Step.UNDONE,
        ended_at=now,
    ):
        session.rollback()
        link = read_link(session, portal, raw, LinkPurpose.UNDO)
        return link if link.state != LinkState.USABLE else links.Link(LinkState.EXPIRED)
    session.execute(update(User).where(User.id == change.user_id).values(email=change.old_email))
    session.execute(delete(UserSession).where(UserSession.user_id == change.user_id))
    sign_out_everywhere(session, change.user_id)
    _replace_waiting(session, change.user_id, by_change_id=change.id)
    audit_and_signal(
        session,
        workflow_id=change.workflow_id,
        signal=Signal.UNDO,
        payload=ChangeUndone(token_id=link.token.id),
        actor=f"user:{change.user_id}",
        action="email_change.undone",
        portal=portal.slug,
        user_id=change.user_id,
        via="undo link to the old address",
        commit=False,
    )
    request_password_reset(session, secret, portal, change.user_id)
    return link.done_now()
