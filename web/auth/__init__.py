"""Sign-in and sign-out: the hot path, answered from the database alone, never from Temporal."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import flash, g, jsonify, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, logout_user
from werkzeug.exceptions import TooManyRequests
from wtforms import BooleanField, HiddenField, PasswordField, StringField

from portal import lockout, two_factor
from portal.audit import add_event, write_event
from portal.metrics import count_login
from portal.models import AccountStatus, utcnow
from portal.passwords import hash_password, needs_rehash, verify_password
from processes.account_notice.service import notify_account_owner
from processes.account_notice.vocabulary import NoticeKind
from web import second_factor
from web.db import get_db
from web.devices import device_sign_in
from web.forms import CheckedForm, required, strip
from web.oidc import allow_return_to_client
from web.portals import portal_blueprint
from web.ratelimit import count_owed, settle_owed
from web.sessions import (
    end_all_sessions,
    end_session,
    keep_alive,
    portal_login_required,
    start_session,
    user_signing_in,
)

bp = portal_blueprint("auth", __name__)


class LoginForm(CheckedForm):
    username = StringField(_l("Usuario"), filters=[strip], validators=[required()])
    password = PasswordField(_l("Contraseña"), validators=[required()])
    remember_me = BooleanField(_l("Mantener sesión iniciada"))


class ResendForm(CheckedForm):
    username = HiddenField(filters=[strip], validators=[required()])


STATUS_MESSAGES = {
    AccountStatus.UNCONFIRMED: _l(
        "Su cuenta aún no está activada. Siga el enlace del correo electrónico que le enviamos "
        "al crear su usuario; si no lo encuentra o venció, pida uno nuevo aquí abajo."
    ),
    AccountStatus.PENDING_REVIEW: _l(
        "Su solicitud está pendiente de aprobación. Recibirá un correo electrónico con la "
        "respuesta dentro de las próximas 24 horas."
    ),
    AccountStatus.DENIED: _l(
        "Su solicitud de registro fue denegada. Revise el correo electrónico que le enviamos "
        "con el motivo o comuníquese con nosotros."
    ),
    AccountStatus.DISABLED: _l(
        "Su acceso fue desactivado. Comuníquese con el administrador de su oficina."
    ),
}
BAD_CREDENTIALS = _l("Usuario o contraseña incorrectos.")
LOCKED_MESSAGE = second_factor.LOCKED_MESSAGE
AFTER_PASSWORD_CHANGE = "after_password_change"
"""Where a forced change of a temporary password goes next (an application waiting on sign-in)."""


def _safe_next(target: str | None) -> str | None:
    """Only same-site paths, judged as the browser will read them (tabs and line breaks dropped,
    backslashes as slashes), so the login page cannot be used to send people elsewhere."""
    if not target:
        return None
    seen = "".join(ch for ch in target if ch not in "\t\n\r").replace("\\", "/").strip()
    parts = urlsplit(seen)
    if not seen.startswith("/") or seen.startswith("//") or parts.scheme or parts.netloc:
        return None
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in seen):
        return None
    return seen


def claim_attempt(username: str) -> lockout.Attempt:
    """Counts one try at this portal's account `username` before its secret is checked, with
    the client's try at the sign-in form when it still owes one (one commit for both): over
    the client's limit, a 429 and the account's count untouched, as when the form's POST was
    refused before its view."""
    refusal: list[TooManyRequests] = []

    def count_client(connection) -> bool:
        refused = count_owed(connection)
        if refused is not None:
            refusal.append(refused)
        return refused is None

    attempt = lockout.claim(
        get_db(),
        g.portal.slug,
        lockout.username_key(username),
        g.portal.policy.login_lockout_threshold,
        first=count_client,
    )
    if attempt is None:
        raise refusal[0]
    return attempt


def lock_account(attempt: lockout.Attempt, user) -> None:
    """The screen keeps saying "wrong username or password" (it must not tell a stranger the
    account exists); the owner learns of the lock by e-mail, once, with the way to unlock it.
    Only the attempt numbered at the threshold calls this, so concurrent guesses lock once."""
    db = get_db()
    lockout.mark_locked(db, attempt)
    add_event(
        db,
        actor="anonymous",
        action="login.locked",
        portal=g.portal.slug,
        user_id=user.id if user else None,
    )
    if user is not None:
        notify_account_owner(db, user, NoticeKind.ACCOUNT_LOCKED)


def locked_out(user, attempt: lockout.Attempt | None = None):
    """A signed-in page's secret check hit the lock: as at sign-in the account locks (once, with
    its e-mail; pass the attempt unless the caller's service locked it already), and every
    session of it ends, so a stolen session cannot keep guessing."""
    db = get_db()
    if attempt is not None and attempt.locks_if_wrong:
        lock_account(attempt, user)
    end_all_sessions(user.id)
    db.commit()
    logout_user()
    flash(LOCKED_MESSAGE, "error")
    return redirect(url_for("auth.login"))


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    status = None
    allow_return_to_client(request.args.get("next"))
    if not form.is_submitted() and request.args.get("login_hint"):
        form.username.data = request.args["login_hint"][:64]
    if form.validate_on_submit():
        db = get_db()
        attempt = claim_attempt(form.username.data)
        if attempt.refused:
            verify_password(None, form.password.data)
            form.form_errors.append(BAD_CREDENTIALS)
            count_login(g.portal.slug, "locked")
            return render_template("auth/login.html", form=form), 200
        user, has_factor = user_signing_in(g.portal.slug, form.username.data)
        if not verify_password(user.password_hash if user else None, form.password.data):
            if user is not None:
                add_event(
                    db,
                    actor="anonymous",
                    action="login.failed",
                    portal=g.portal.slug,
                    user_id=user.id,
                )
            if attempt.locks_if_wrong:
                lock_account(attempt, user)
                count_login(g.portal.slug, "locked")
            else:
                count_login(g.portal.slug, "failed")
            form.form_errors.append(BAD_CREDENTIALS)
            db.commit()
            return render_template("auth/login.html", form=form), 200
        needs_factor = has_factor or user.role in g.portal.policy.require_second_factor
        if needs_factor:
            lockout.release(db, attempt)
        else:
            lockout.reset(db, attempt.portal, attempt.key)
        if (
            user.must_change_password
            and user.password_expires_at
            and (user.password_expires_at <= utcnow())
        ):
            db.commit()
            form.form_errors.append(
                _("Su contraseña temporal venció. Pida una nueva con “Recuperar contraseña”.")
            )
            return render_template("auth/login.html", form=form), 200
        if user.status != AccountStatus.ACTIVE:
            db.commit()
            status = user.status
            form.form_errors.append(STATUS_MESSAGES.get(user.status, BAD_CREDENTIALS))
            return render_template(
                "auth/login.html",
                form=form,
                status=status,
                resend=ResendForm(username=user.username),
            ), 200
        if needs_rehash(user.password_hash):
            user.password_hash = hash_password(form.password.data)
        next_url = _safe_next(request.args.get("next")) or ""
        if needs_factor:
            db.commit()
            second_factor.begin(
                "user",
                user.id,
                portal=g.portal.slug,
                remember=bool(form.remember_me.data),
                next=next_url,
            )
            if two_factor.factor_of(db, user) is None:
                return redirect(url_for("auth.enrol"))
            return redirect(url_for("auth.second_step"))
        return redirect(finish_login(user, remember=form.remember_me.data, next_url=next_url))
    settle_owed()
    return render_template("auth/login.html", form=form, status=status)


def finish_login(user, remember: bool, next_url: str) -> str:
    """Every factor given: the session starts; returns where the applicant goes next."""
    db = get_db()
    if user.must_change_password:
        user.password_expires_at = utcnow()
    write_event(db, actor=f"user:{user.id}", action="login", portal=g.portal.slug, user_id=user.id)
    start_session(user, remember=remember, device_hash=device_sign_in(user))
    count_login(g.portal.slug, "ok")
    if user.must_change_password:
        if next_url:
            session[AFTER_PASSWORD_CHANGE] = next_url
        return url_for("account.change_password")
    return next_url or url_for("main.home")


@bp.post("/session/keepalive")
@portal_login_required
def keepalive():
    """The idle warning's "stay signed in": marks the session as seen, changes nothing else."""
    return jsonify(idle_seconds=keep_alive())


@bp.app_context_processor
def idle_warning():
    """What the page's idle-warning script needs: the idle limit and where to say "still here"."""
    if not current_user.is_authenticated or g.get("idle_limit") is None:
        return {"idle": None}
    if current_user.is_staff:
        url = url_for("staff.keepalive")
    else:
        url = url_for("auth.keepalive", portal=current_user.account.portal)
    return {"idle": {"seconds": int(g.idle_limit.total_seconds()), "keepalive_url": url}}


@bp.post("/logout")
def logout():
    end_session()
    flash(_("Cerró su sesión."), "info")
    return redirect(url_for("auth.login"))


from web.auth import signin  # noqa: E402,F401  (the second sign-in step and enrolment)
