"""Sign-in sessions kept on the server, so logout, a password change or a disabled account
ends them even when a copy of the cookie survives."""

from __future__ import annotations

import secrets
from datetime import timedelta
from functools import wraps

from flask import abort, flash, g, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import LoginManager, current_user, login_user, logout_user
from sqlalchemy import delete, select

from portal.audit import add_event
from portal.models import StaffUser, User, UserSession, utcnow
from portal.tokens import token_hash
from processes.logout_delivery.service import sign_out_everywhere
from web.db import get_db

REMEMBER_DAYS = 30
BROWSER_SESSION_HOURS = 12

login_manager = LoginManager()
login_manager.session_protection = None


class SignedIn:
    """The Flask-Login identity: a session row and the account (applicant or staff) behind it."""

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def __init__(self, session_id: str, account: User | StaffUser):
        self.session_id = session_id
        self.account = account

    def get_id(self) -> str:
        return self.session_id

    @property
    def is_staff(self) -> bool:
        return isinstance(self.account, StaffUser)


@login_manager.user_loader
def load_signed_in(session_id: str) -> SignedIn | None:
    db = get_db()
    row = db.get(UserSession, token_hash(session_id))
    if row is None or row.expires_at <= utcnow():
        return None
    if row.staff_id is not None:
        staff = db.get(StaffUser, row.staff_id)
        return SignedIn(session_id, staff) if staff and staff.active else None
    user = db.get(User, row.user_id)
    if user is None or user.status != "active":
        return None
    return SignedIn(session_id, user)


def start_session(account: User | StaffUser, remember: bool) -> None:
    """Writes the session row, then hands its id to Flask-Login (and its remember cookie)."""
    session_id = secrets.token_urlsafe(32)
    lifetime = timedelta(days=REMEMBER_DAYS) if remember else timedelta(hours=BROWSER_SESSION_HOURS)
    db = get_db()
    db.add(
        UserSession(
            id=token_hash(session_id),
            user_id=account.id if isinstance(account, User) else None,
            staff_id=account.id if isinstance(account, StaffUser) else None,
            remember=remember,
            expires_at=utcnow() + lifetime,
        )
    )
    db.commit()
    login_user(SignedIn(session_id, account), remember=remember, duration=lifetime)


def end_session() -> None:
    if current_user.is_authenticated:
        db = get_db()
        account = current_user.account
        db.execute(delete(UserSession).where(UserSession.id == token_hash(current_user.session_id)))
        if current_user.is_staff:
            add_event(db, actor=f"staff:{account.username}", action="staff.logout")
        else:
            sign_out_everywhere(db, account.id)
            add_event(
                db,
                actor=f"user:{account.id}",
                action="logout",
                portal=account.portal,
                user_id=account.id,
            )
        db.commit()
    logout_user()


def end_other_sessions(user_id: int) -> None:
    """After a password change only the session that made it survives; clients sign out."""
    db = get_db()
    keep = token_hash(current_user.session_id)
    db.execute(delete(UserSession).where(UserSession.user_id == user_id, UserSession.id != keep))
    sign_out_everywhere(db, user_id)


def end_all_sessions(user_id: int) -> None:
    """Every session of the account, and every client it signed in to, in the caller's commit."""
    db = get_db()
    db.execute(delete(UserSession).where(UserSession.user_id == user_id))
    sign_out_everywhere(db, user_id)


def portal_login_required(view):
    """An applicant signed in to this portal; staff and other portals' users are sent to login."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if (
            not current_user.is_authenticated
            or current_user.is_staff
            or current_user.account.portal != g.portal.slug
        ):
            flash(_("Inicie sesión para continuar."), "info")
            return redirect(url_for("auth.login", next=request.full_path))
        return view(*args, **kwargs)

    return wrapped


def staff_required(*roles: str):
    """Staff with any of `roles` (admin has them all); anyone else gets 403 or the staff login."""

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                return redirect(url_for("staff.login", next=request.full_path))
            if not current_user.is_staff:
                abort(403)
            staff: StaffUser = current_user.account
            if roles and not any(staff.has_role(role) for role in roles):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def active_user_by_username(portal: str, username: str) -> User | None:
    from sqlalchemy import func

    return get_db().scalar(
        select(User).where(User.portal == portal, func.lower(User.username) == username.lower())
    )
