"""What the web tier calls: record a notice in the caller's transaction; the outbox sends it."""

from __future__ import annotations

import secrets

from sqlalchemy.orm import Session

from portal.models import User, utcnow
from processes.account_notice.vocabulary import WORKFLOW, AccountNotice, NoticeKind
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
