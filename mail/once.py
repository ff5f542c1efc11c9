"""Every e-mail of every process goes out once per logical message, and every e-mailed link is
minted, stored hashed and sent through one helper, so a retry repeats the same link."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mail.mailer import Mailer
from portal.audit import add_event
from portal.config import Portal
from portal.models import EmailToken, SentMail
from portal.tokens import link_for_send


class MailingActivities:
    """What every process's e-mailing activities are built from: the database, the mailer and
    the portals (an e-mail names its portal); the worker hands the same ones to each process."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        mailer: Mailer | None = None,
        portals: dict[str, Portal] | None = None,
    ):
        self.session_factory = session_factory
        self.mailer = mailer
        self.portals = portals or {}


def already_sent(session: Session, send_key: str) -> bool:
    return session.get(SentMail, send_key) is not None


def sent_link(session: Session, send_key: str) -> int | None:
    """The token ID of a link e-mail the SMTP server already accepted, or None: send it now."""
    if not already_sent(session, send_key):
        return None
    return session.scalar(select(EmailToken.id).where(EmailToken.send_key == send_key)) or 0


def deliver_once(
    session: Session,
    mailer: Mailer,
    send_key: str,
    *,
    to: str,
    template: str,
    locale: str,
    context: dict,
    portal: str,
    workflow_id: str,
    **detail,
) -> bool:
    """Every e-mail of every process goes out through here, once per logical message.

    What the message needs (its link, a temporary password's hash) is committed first, so the
    link works the moment the e-mail arrives; the send is recorded after the SMTP server's
    answer, so a retry after that sends nothing. A crash between the two repeats the e-mail,
    and because links and temporary passwords are derived again from the stored row, the
    repeat carries the same one. Returns whether a message was sent now.
    """
    if already_sent(session, send_key):
        return False
    session.commit()
    mailer.send(to, template, locale, context, send_key)
    session.add(SentMail(key=send_key))
    add_event(
        session,
        actor="system",
        action=f"email.{template}",
        portal=portal,
        workflow_id=workflow_id,
        **detail,
    )
    session.commit()
    return True


@dataclass
class LinkMessage:
    """One e-mail of a process: the link's token row (purpose, portal, process, lifetime,
    account; no purpose, no link) and the page it opens, `<base URL>/<path>/<raw token>`; the
    message around it; its audit line (under `audit_portal` when that differs from the token's).
    `expires_at` ends a link at a moment the process set instead of after `lifetime_hours`."""

    purpose: str | None
    portal: str
    workflow_id: str
    lifetime_hours: int
    path: str
    to: str
    template: str
    locale: str
    context: dict
    user_id: int | None = None
    audit_portal: str | None = None
    detail: dict = field(default_factory=dict)
    expires_at: datetime | None = None


@dataclass
class Sent:
    """What `send_once` did: the link's token ID (0 without a link) and whether the message went
    out in this call (False: already sent, or nothing to send)."""

    token_id: int = 0
    now: bool = False


def send_once(
    session: Session, mailer: Mailer, send_key: str, compose: Callable[[], LinkMessage | None]
) -> Sent:
    """Mint a link and send it once: an e-mail the SMTP server already accepted is not sent
    again (its link's token ID is returned); otherwise `compose` builds the message (it may
    refuse, raising, or return None when there is no one to send it to, before anything is
    minted), the link is minted or found again for this send key, and the message goes out
    through `deliver_once`."""
    if (sent := sent_link(session, send_key)) is not None:
        return Sent(token_id=sent)
    message = compose()
    if message is None:
        return Sent()
    base_url = mailer.settings.public_base_url.rstrip("/")
    context = {"base_url": base_url, **message.context}
    token_id = 0
    if message.purpose is not None:
        token, raw = link_for_send(
            session,
            secret=mailer.settings.secret_key,
            send_key=send_key,
            purpose=message.purpose,
            portal=message.portal,
            workflow_id=message.workflow_id,
            lifetime_hours=message.lifetime_hours,
            user_id=message.user_id,
        )
        if message.expires_at is not None:
            token.expires_at = message.expires_at
        token_id = token.id
        context["link"] = f"{base_url}/{message.path}/{raw}"
    now = deliver_once(
        session,
        mailer,
        send_key,
        to=message.to,
        template=message.template,
        locale=message.locale,
        context=context,
        portal=message.portal if message.audit_portal is None else message.audit_portal,
        workflow_id=message.workflow_id,
        **message.detail,
    )
    return Sent(token_id=token_id, now=now)


def send_link_once(
    session: Session, mailer: Mailer, send_key: str, compose: Callable[[], LinkMessage]
) -> int:
    """`send_once` for a message that always carries a link: returns the link's token ID."""
    return send_once(session, mailer, send_key, compose).token_id
