"""The e-mail activities several processes call: a link for a step, a notice, a username
reminder. Links are minted here so the raw token never enters workflow history."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from mail.mailer import Mailer
from mail.once import LinkMessage, already_sent, deliver_once, send_link_once
from portal.audit import add_event
from portal.config import Portal
from portal.models import AccountStatus, StaffUser, User


@dataclass
class LinkEmail:
    """Mint a fresh link for a step, revoking earlier ones, and e-mail it to the account."""

    template: str
    purpose: str
    path: str
    portal: str
    workflow_id: str
    user_id: int
    lifetime_hours: int
    send_key: str
    context: dict[str, str] = field(default_factory=dict)
    """What else the message says (no secret): a time, a browser."""


@dataclass
class LinkSent:
    token_id: int


@dataclass
class NoticeEmail:
    """A message with no secret in it, to the applicant or to a staff address of the portal.

    The workflow names the audience; the address is looked up here, so none is in its history.
    """

    template: str
    portal: str
    workflow_id: str
    send_key: str
    audience: str = "applicant"
    user_id: int | None = None
    context: dict[str, str] = field(default_factory=dict)
    address: str = ""
    locale: str = "es"
    staff_id: int | None = None


@dataclass
class MailSent:
    sent: bool


@dataclass
class UsernameReminder:
    portal: str
    email: str
    send_key: str
    first_name: str = ""
    last_name: str = ""


@dataclass
class ReminderSent:
    """Only a count leaves the activity: the usernames themselves go to the mailbox alone."""

    usernames: int
    sent: bool = False


AudienceResolver = Callable[[Session, NoticeEmail], tuple[str, str]]


class MailActivities:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        mailer: Mailer,
        portals: dict[str, Portal],
        audiences: dict[str, AudienceResolver] | None = None,
    ):
        self.session_factory = session_factory
        self.mailer = mailer
        self.portals = portals
        self.audiences = audiences or {}

    def _recipient(self, session: Session, request: NoticeEmail) -> tuple[str, str]:
        """The address and language for a notice's audience."""
        if request.audience == "staff":
            staff = session.get(StaffUser, request.staff_id) if request.staff_id else None
            return (staff.email, "es") if staff else ("", "es")
        portal = self.portals[request.portal]
        if request.audience == "applicant":
            user = session.get(User, request.user_id) if request.user_id else None
            return (user.email, user.locale) if user else ("", "es")
        if request.audience == "address":
            return request.address, request.locale
        if request.audience == "reviewers":
            return portal.escalation_email or portal.support_email, "es"
        if request.audience == "helpdesk":
            return portal.helpdesk_email or portal.support_email, "es"
        resolver = self.audiences.get(request.audience)
        if resolver is None:
            raise ApplicationError(f"unknown audience {request.audience}", non_retryable=True)
        return resolver(session, request)

    def _context(self, portal: str, user: User | None, extra: dict) -> dict:
        return {
            "portal": portal,
            "portal_info": self.portals.get(portal),
            "user": user,
            "base_url": self.mailer.settings.public_base_url.rstrip("/"),
            **extra,
        }

    @activity.defn
    def send_link(self, request: LinkEmail) -> LinkSent:
        with self.session_factory() as session:

            def compose() -> LinkMessage:
                user = session.get(User, request.user_id)
                if user is None:
                    raise ApplicationError(
                        "account no longer exists", non_retryable=True, type="AccountGone"
                    )
                return LinkMessage(
                    purpose=request.purpose,
                    portal=request.portal,
                    workflow_id=request.workflow_id,
                    lifetime_hours=request.lifetime_hours,
                    path=f"{request.portal}/{request.path}",
                    to=user.email,
                    template=request.template,
                    locale=user.locale,
                    context=self._context(
                        request.portal,
                        user,
                        {**request.context, "hours": str(request.lifetime_hours)},
                    ),
                    user_id=user.id,
                    detail={"user_id": user.id},
                )

            return LinkSent(
                token_id=send_link_once(session, self.mailer, request.send_key, compose)
            )

    @activity.defn
    def send_notice(self, request: NoticeEmail) -> MailSent:
        with self.session_factory() as session:
            # Whether it went out already is deliver_once's first question.
            user = session.get(User, request.user_id) if request.user_id else None
            staff = session.get(StaffUser, request.staff_id) if request.staff_id else None
            to, locale = self._recipient(session, request)
            if not to:
                return MailSent(sent=False)
            extra = {**request.context, "staff": staff} if staff else request.context
            sent = deliver_once(
                session,
                self.mailer,
                request.send_key,
                to=to,
                template=request.template,
                locale=locale,
                context=self._context(request.portal, user, extra),
                portal=request.portal,
                workflow_id=request.workflow_id,
                user_id=request.user_id,
            )
            return MailSent(sent=sent)

    @activity.defn
    def send_username_reminder(self, request: UsernameReminder) -> ReminderSent:
        with self.session_factory() as session:
            if already_sent(session, request.send_key):
                return ReminderSent(usernames=0, sent=True)
            query = (
                select(User)
                .where(User.portal == request.portal)
                .where(func.lower(User.email) == request.email.strip().lower())
                .where(User.status != AccountStatus.UNCONFIRMED)
                .order_by(User.username)
            )
            if request.first_name:
                query = query.where(
                    func.lower(User.first_name) == request.first_name.strip().lower()
                )
            if request.last_name:
                query = query.where(func.lower(User.last_name) == request.last_name.strip().lower())
            users = list(session.scalars(query))
            add_event(
                session,
                actor="anonymous",
                action="recovery.username",
                portal=request.portal,
                workflow_id=activity.info().workflow_id,
                matched=len(users),
            )
            if not users:
                session.commit()
                return ReminderSent(usernames=0)
            deliver_once(
                session,
                self.mailer,
                request.send_key,
                to=users[0].email,
                template="username_reminder",
                locale=users[0].locale,
                context=self._context(
                    request.portal, users[0], {"usernames": [u.username for u in users]}
                ),
                portal=request.portal,
                workflow_id=activity.info().workflow_id,
            )
            return ReminderSent(usernames=len(users), sent=True)
