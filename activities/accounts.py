"""Account activities: every change to an account or a registration's read model happens here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities.mail import already_sent, deliver_once
from portal.audit import add_event
from portal.config import load_portals
from portal.mailer import Mailer
from portal.models import (
    AccountStatus,
    EmailToken,
    LoginThrottle,
    Registration,
    User,
    UserSession,
    utcnow,
)
from portal.passwords import hash_password
from portal.tokens import derived_temporary_password
from processes.logout_delivery.service import sign_out_everywhere
from processes.registration.vocabulary import Step


@dataclass
class StepReached:
    """The read model follows the workflow, so pages never need to ask Temporal."""

    workflow_id: str
    status: Step
    overdue: bool = False


@dataclass
class ConfirmationClosing:
    workflow_id: str


@dataclass
class ConfirmationClosed:
    confirmed: bool


@dataclass
class AccountState:
    user_id: int
    status: AccountStatus


@dataclass
class RegistrationEnded:
    workflow_id: str
    user_id: int | None
    status: Step
    release_account: bool


@dataclass
class ReviewApplied:
    workflow_id: str
    user_id: int
    approved: bool
    reviewer: str
    reason: str


@dataclass
class ResetConfirmed:
    """The applicant followed the reset link; the account gets a temporary or a chosen password."""

    workflow_id: str
    portal: str
    token_id: int
    user_id: int
    mode: str
    temporary_password_hours: int


@dataclass
class ResetApplied:
    user_id: int
    applied: bool


class AccountActivities:
    def __init__(self, session_factory: sessionmaker[Session], mailer: Mailer):
        self.session_factory = session_factory
        self.mailer = mailer

    @activity.defn
    def record_step(self, step: StepReached) -> None:
        with self.session_factory() as session:
            session.execute(
                update(Registration)
                .where(Registration.workflow_id == step.workflow_id)
                .values(status=step.status, overdue=step.overdue, updated_at=utcnow())
            )
            session.commit()

    @activity.defn
    def close_confirmation(self, request: ConfirmationClosing) -> ConfirmationClosed:
        """Revokes the unused confirmation links, then says whether one was redeemed: the
        click's conditional update and this one serialise on the row, so exactly one wins."""
        with self.session_factory() as session:
            session.execute(
                update(EmailToken)
                .where(EmailToken.workflow_id == request.workflow_id)
                .where(EmailToken.purpose == "confirm_email")
                .where(EmailToken.used_at.is_(None))
                .where(EmailToken.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            redeemed = session.scalar(
                select(EmailToken.id)
                .where(EmailToken.workflow_id == request.workflow_id)
                .where(EmailToken.purpose == "confirm_email")
                .where(EmailToken.used_at.is_not(None))
                .limit(1)
            )
            session.commit()
            return ConfirmationClosed(confirmed=redeemed is not None)

    @activity.defn
    def end_registration(self, request: RegistrationEnded) -> None:
        """Expired or closed: revoke its links and, if it never went live, free the username."""
        with self.session_factory() as session:
            now = utcnow()
            session.execute(
                update(EmailToken)
                .where(EmailToken.workflow_id == request.workflow_id)
                .where(EmailToken.used_at.is_(None))
                .values(revoked_at=now)
            )
            # Update first: it waits for a web transaction attaching an account to this row,
            # so the read below sees that account and releases it too.
            session.execute(
                update(Registration)
                .where(Registration.workflow_id == request.workflow_id)
                .values(status=request.status, updated_at=now)
            )
            registration = session.scalar(
                select(Registration).where(Registration.workflow_id == request.workflow_id)
            )
            portal = registration.portal if registration else ""
            user_id = request.user_id or (registration.user_id if registration else None)
            if user_id is not None and request.release_account:
                user = session.get(User, user_id)
                if user is not None and user.status != AccountStatus.ACTIVE:
                    portal = user.portal
                    if registration is not None:
                        registration.user_id = None
                    session.delete(user)
            add_event(
                session,
                actor="system",
                action=f"registration.{request.status}",
                portal=portal,
                workflow_id=request.workflow_id,
                user_id=request.user_id,
            )
            session.commit()

    @activity.defn
    def apply_review(self, request: ReviewApplied) -> AccountState:
        with self.session_factory() as session:
            now = utcnow()
            user = session.get(User, request.user_id)
            status = AccountStatus.ACTIVE if request.approved else AccountStatus.DENIED
            if user is not None and user.status in (
                AccountStatus.PENDING_REVIEW,
                AccountStatus.UNCONFIRMED,
            ):
                user.status = status
                if request.approved:
                    user.activated_at = now
            session.execute(
                update(Registration)
                .where(Registration.workflow_id == request.workflow_id)
                .values(
                    status=Step.APPROVED if request.approved else Step.DENIED,
                    decided_by=request.reviewer,
                    decision_reason=request.reason or None,
                    updated_at=now,
                )
            )
            add_event(
                session,
                actor=request.reviewer,
                action="registration.approved" if request.approved else "registration.denied",
                portal=user.portal if user else "",
                workflow_id=request.workflow_id,
                user_id=request.user_id,
                reason=request.reason,
            )
            session.commit()
            return AccountState(user_id=request.user_id, status=status)

    @activity.defn
    def apply_reset(self, request: ResetConfirmed) -> ResetApplied:
        """Consumes the link; a temporary password is derived from the link's row (so a retry
        mails the same one), stored hashed and mailed through the one send-once path."""
        with self.session_factory() as session:
            now = utcnow()
            token = session.get(EmailToken, request.token_id)
            user = session.get(User, request.user_id)
            if token is None or user is None:
                return ResetApplied(user_id=request.user_id, applied=False)
            send_key = f"{request.workflow_id}/temporary-password/{token.id}"
            if token.used_at is not None and (
                request.mode != "temporary_password" or already_sent(session, send_key)
            ):
                return ResetApplied(user_id=user.id, applied=True)
            token.used_at = token.used_at or now
            if request.mode == "temporary_password":
                temporary = derived_temporary_password(
                    self.mailer.settings.secret_key, token.salt or token.token_hash
                )
                user.password_hash = hash_password(temporary)
                user.must_change_password = True
                user.password_expires_at = now + timedelta(hours=request.temporary_password_hours)
            else:
                if not token.pending_password_hash:
                    return ResetApplied(user_id=user.id, applied=False)
                user.password_hash = token.pending_password_hash
                token.pending_password_hash = None
                user.must_change_password = False
                user.password_expires_at = None
            session.execute(
                delete(LoginThrottle)
                .where(LoginThrottle.portal == user.portal)
                .where(LoginThrottle.username_key == user.username.lower())
            )
            session.execute(delete(UserSession).where(UserSession.user_id == user.id))
            policy = load_portals(self.mailer.settings.portals_file)[user.portal].policy
            sign_out_everywhere(
                session, user.id, keep_offline=not policy.password_reset_ends_offline_access
            )
            add_event(
                session,
                actor=f"user:{user.id}",
                action="password.reset",
                portal=user.portal,
                workflow_id=request.workflow_id,
                user_id=user.id,
                mode=request.mode,
            )
            if request.mode == "temporary_password":
                deliver_once(
                    session,
                    self.mailer,
                    send_key,
                    to=user.email,
                    template="temporary_password",
                    locale=user.locale,
                    context={
                        "portal": user.portal,
                        "user": user,
                        "temporary_password": temporary,
                        "hours": str(request.temporary_password_hours),
                        "base_url": self.mailer.settings.public_base_url.rstrip("/"),
                    },
                    portal=user.portal,
                    workflow_id=request.workflow_id,
                    user_id=user.id,
                )
            session.commit()
            return ResetApplied(user_id=user.id, applied=True)
