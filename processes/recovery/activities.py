"""Recovery's side effects: applying a confirmed password reset to the account."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete
from temporalio import activity

from mail.once import MailingActivities, already_sent, deliver_once
from portal.audit import add_event
from portal.config import load_portals
from portal.models import EmailToken, LoginThrottle, User, UserSession, utcnow
from portal.passwords import hash_password
from portal.tokens import derived_temporary_password
from processes.logout_delivery.service import sign_out_everywhere
from processes.recovery.vocabulary import ResetMode


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


class RecoveryActivities(MailingActivities):
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
                request.mode != ResetMode.TEMPORARY_PASSWORD or already_sent(session, send_key)
            ):
                return ResetApplied(user_id=user.id, applied=True)
            token.used_at = token.used_at or now
            if request.mode == ResetMode.TEMPORARY_PASSWORD:
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
            if request.mode == ResetMode.TEMPORARY_PASSWORD:
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
