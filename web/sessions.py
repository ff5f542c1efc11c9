"""Sign-in sessions kept on the server, so logout, a password change or a disabled account
ends them even when a copy of the cookie survives."""

from __future__ import annotations

import secrets
from datetime import timedelta
from functools import wraps

from flask import Flask, abort, current_app, flash, g, redirect, request, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_babel import gettext as _
from flask_login import LoginManager, current_user, login_user, logout_user
from sqlalchemy import bindparam, delete, func, insert, select

from portal.audit import add_event
from portal.models import AccountStatus, SecondFactor, StaffUser, User, UserSession, utcnow
from portal.oidc import session_sid
from portal.tokens import token_hash
from processes.logout_delivery.service import sign_out_everywhere, sign_out_session
from web.db import get_db

REMEMBER_DAYS = 30
BROWSER_SESSION_HOURS = 12
LAST_SEEN_GRANULARITY = timedelta(seconds=30)
"""A session's last_seen_at is written at most this often, so page views stay reads."""

login_manager = LoginManager()
login_manager.session_protection = None

SESSIONLESS_ENDPOINTS = frozenset(
    {
        "oidc.token",
        "oidc.userinfo",
        "oidc.introspect",
        "oidc.revoke",
        "oidc.keys",
        "oidc.discovery",
        "oidc.smart_configuration",
        "health.healthz",
        "health.readyz",
        "metrics.metrics",
        "security.csp_report",
    }
)
"""Endpoints that answer from their own credentials (Basic auth, a bearer token) or from none,
never from a browser's sign-in: the hooks that load the signed-in account skip them."""


def sessionless() -> bool:
    return request.endpoint in SESSIONLESS_ENDPOINTS


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie session, with its serializer made once per secret key instead of
    once per request, nothing to verify when the request carries no session cookie, and nothing
    to write (nor a `Vary: Cookie`) on an endpoint that never answers from a browser's session,
    which Flask-Login's remember-me hook would otherwise mark as read on every response."""

    def get_signing_serializer(self, app: Flask):
        secret = (app.secret_key, tuple(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        cached = app.extensions.get("acceso.session_serializer")
        if cached is None or cached[0] != secret:
            cached = (secret, super().get_signing_serializer(app))
            app.extensions["acceso.session_serializer"] = cached
        return cached[1]

    def save_session(self, app: Flask, session, response) -> None:
        if not session.modified and (sessionless() or not session and not session.accessed):
            return
        super().save_session(app, session, response)

    def open_session(self, app: Flask, request):
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)


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


def idle_limit(row: UserSession, account: User | StaffUser) -> timedelta | None:
    """Staff: the deployment's knob; applicants: their portal's, unless "keep me signed in"."""
    if isinstance(account, StaffUser):
        return timedelta(minutes=current_app.config["SETTINGS"].staff_idle_minutes)
    if row.remember:
        return None
    portal = current_app.extensions["acceso.portals"].get(account.portal)
    return timedelta(minutes=portal.policy.idle_minutes) if portal else None


@login_manager.user_loader
def load_signed_in(session_id: str) -> SignedIn | None:
    db = get_db()
    row = db.get(UserSession, token_hash(session_id))
    now = utcnow()
    if row is None or row.expires_at <= now:
        return None
    if row.staff_id is not None:
        account = db.get(StaffUser, row.staff_id)
        if account is None or not account.active:
            return None
    else:
        account = db.get(User, row.user_id)
        if account is None or account.status != AccountStatus.ACTIVE:
            return None
    limit = idle_limit(row, account)
    if limit is not None and now - row.last_seen_at > limit:
        db.delete(row)
        db.commit()
        g.ended_idle = True
        return None
    if now - row.last_seen_at > LAST_SEEN_GRANULARITY:
        row.last_seen_at = now
        db.commit()
    g.session_row = row
    g.idle_limit = limit
    return SignedIn(session_id, account)


def keep_alive() -> int | None:
    """Marks the current session as seen now; returns the seconds it may now stay idle."""
    row: UserSession | None = g.get("session_row")
    if row is None:
        return None
    row.last_seen_at = utcnow()
    get_db().commit()
    limit = g.get("idle_limit")
    return int(limit.total_seconds()) if limit else None


_NEW_SESSION = insert(UserSession.__table__)
"""A Core insert: the row is only written here, never read back in this request."""


def start_session(
    account: User | StaffUser, remember: bool, device_hash: str | None = None
) -> None:
    """Writes the session row, then hands its id to Flask-Login (and its remember cookie)."""
    session_id = secrets.token_urlsafe(32)
    lifetime = timedelta(days=REMEMBER_DAYS) if remember else timedelta(hours=BROWSER_SESSION_HOURS)
    if isinstance(account, StaffUser):
        remember = False
        lifetime = timedelta(hours=current_app.config["SETTINGS"].staff_session_hours)
    db = get_db()
    now = utcnow()
    db.execute(
        _NEW_SESSION,
        {
            "id": token_hash(session_id),
            "user_id": account.id if isinstance(account, User) else None,
            "staff_id": account.id if isinstance(account, StaffUser) else None,
            "remember": remember,
            "created_at": now,
            "last_seen_at": now,
            "expires_at": now + lifetime,
            "user_agent": (request.headers.get("User-Agent") or "")[:400],
            "device_hash": device_hash,
        },
    )
    db.commit()
    login_user(SignedIn(session_id, account), remember=remember, duration=lifetime)


def end_session() -> None:
    if current_user.is_authenticated:
        db = get_db()
        account = current_user.account
        row_id = token_hash(current_user.session_id)
        db.execute(delete(UserSession).where(UserSession.id == row_id))
        if current_user.is_staff:
            add_event(db, actor=f"staff:{account.username}", action="staff.logout")
        else:
            sign_out_session(db, account.id, session_sid(row_id))
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
    """After a password change only the session that made it survives; clients sign out, and
    health apps' offline access too if the portal's policy says so."""
    db = get_db()
    keep = token_hash(current_user.session_id)
    db.execute(delete(UserSession).where(UserSession.user_id == user_id, UserSession.id != keep))
    sign_out_everywhere(
        db, user_id, keep_offline=not g.portal.policy.password_reset_ends_offline_access
    )


def current_session_row_id() -> str | None:
    """The row id of the session making this request, or None when nobody is signed in."""
    if not current_user.is_authenticated:
        return None
    return token_hash(current_user.session_id)


def end_one_session(row: UserSession) -> None:
    """Its next request finds no row and is signed out; the applications it signed in to are
    told by back-channel logout, as when that browser signs out itself. The caller commits."""
    db = get_db()
    db.delete(row)
    if row.user_id is not None:
        sign_out_session(db, row.user_id, session_sid(row.id))


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
            if g.get("ended_idle"):
                flash(_("Su sesión terminó por inactividad. Inicie sesión de nuevo."), "info")
            else:
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
                if g.get("ended_idle"):
                    flash(_("Su sesión terminó por inactividad. Inicie sesión de nuevo."), "info")
                return redirect(url_for("staff.login", next=request.full_path))
            if not current_user.is_staff:
                abort(403)
            staff: StaffUser = current_user.account
            if roles and not any(staff.has_role(role) for role in roles):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


_BY_USERNAME = select(User).where(
    User.portal == bindparam("portal"), func.lower(User.username) == bindparam("username")
)
_BY_USERNAME_WITH_FACTOR = (
    select(User, SecondFactor.id)
    .outerjoin(SecondFactor, SecondFactor.user_id == User.id)
    .where(User.portal == bindparam("portal"), func.lower(User.username) == bindparam("username"))
)
"""Built once: sign-in runs it on every attempt."""


def active_user_by_username(portal: str, username: str) -> User | None:
    return get_db().scalar(_BY_USERNAME, {"portal": portal, "username": username.lower()})


def user_signing_in(portal: str, username: str) -> tuple[User | None, bool]:
    """The account by username and, in the same query, whether it has an authenticator."""
    found = (
        get_db()
        .execute(_BY_USERNAME_WITH_FACTOR, {"portal": portal, "username": username.lower()})
        .first()
    )
    return (found[0], found[1] is not None) if found else (None, False)
