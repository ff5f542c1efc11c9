"""What the web tier calls: record a notice in the caller's transaction; the outbox sends it."""

from __future__ import annotations

import secrets

from sqlalchemy.orm import Session

from portal.models import StaffUser, User, utcnow
from processes.account_notice.vocabulary import (
    SIGN_IN_NOTICE_WORKFLOW,
    WORKFLOW,
    AccountNotice,
    NewDeviceNotice,
    NoticeKind,
)
from temporal.outbox import enqueue_start


def notify_account_owner(session: Session, user: User, kind: NoticeKind, **context: str) -> None:
    """The e-mail names what changed and when; the caller's commit makes it certain."""
    occurred_at = utcnow().strftime("%Y-%m-%d %H:%M UTC")
    enqueue_start(
        session,
        workflow=WORKFLOW,
        workflow_id=f"account-notice/{user.portal}/{secrets.token_hex(10)}",
        payload=AccountNotice(
            portal=user.portal,
            user_id=user.id,
            kind=str(kind),
            occurred_at=occurred_at,
            context=context,
        ),
        summary=f"notice: {kind}",
    )


def notify_staff(session: Session, staff: StaffUser, kind: NoticeKind, **context: str) -> None:
    """A staff member hears of a change to their sign-in as applicants do, at their address."""
    enqueue_start(
        session,
        workflow=WORKFLOW,
        workflow_id=f"account-notice/staff/{secrets.token_hex(10)}",
        payload=AccountNotice(
            portal="staff",
            user_id=None,
            staff_id=staff.id,
            kind=str(kind),
            occurred_at=utcnow().strftime("%Y-%m-%d %H:%M UTC"),
            context=context,
        ),
        summary=f"notice: staff {kind}",
    )


def notify_address(
    session: Session, portal: str, email: str, locale: str, kind: NoticeKind, **context: str
) -> None:
    """For an address with no account to speak of: what the screen could not say."""
    enqueue_start(
        session,
        workflow=WORKFLOW,
        workflow_id=f"account-notice/{portal}/{secrets.token_hex(10)}",
        payload=AccountNotice(
            portal=portal,
            user_id=None,
            kind=str(kind),
            occurred_at=utcnow().strftime("%Y-%m-%d %H:%M UTC"),
            context=context,
            email=email,
            locale=locale,
        ),
        summary=f"notice: {kind}",
    )


def notify_new_device(
    session: Session,
    user: User,
    *,
    workflow_id: str,
    browser: str,
    system: str,
    link_hours: int,
) -> None:
    """The "Nuevo inicio de sesión" e-mail with its "this was not me" link; the caller commits,
    so the sign-in that owes it never waits on Temporal."""
    enqueue_start(
        session,
        workflow=SIGN_IN_NOTICE_WORKFLOW,
        workflow_id=workflow_id,
        payload=NewDeviceNotice(
            portal=user.portal,
            user_id=user.id,
            occurred_at=utcnow().strftime("%Y-%m-%d %H:%M UTC"),
            browser=browser,
            system=system,
            link_hours=link_hours,
        ),
        summary=f"notice: {NoticeKind.NEW_DEVICE_SIGN_IN}",
    )
