"""Sign-in and sign-out: the hot path, answered from the database alone, never from Temporal."""

from __future__ import annotations

from flask import flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, PasswordField, StringField

from portal.audit import add_event
from portal.models import LoginThrottle, utcnow
from portal.passwords import hash_password, needs_rehash, verify_password
from web.db import get_db
from web.forms import required, strip
from web.portals import portal_blueprint
from web.sessions import active_user_by_username, end_session, start_session

bp = portal_blueprint("auth", __name__)


class LoginForm(FlaskForm):
    username = StringField(_l("Usuario"), filters=[strip], validators=[required()])
    password = PasswordField(_l("Contraseña"), validators=[required()])
    remember_me = BooleanField(_l("Mantener sesión iniciada"))


class ResendForm(FlaskForm):
    username = HiddenField(filters=[strip], validators=[required()])


STATUS_MESSAGES = {
    "unconfirmed": _l(
        "Su cuenta aún no está activada. Siga el enlace del correo electrónico que le enviamos "
        "al crear su usuario; si no lo encuentra o venció, pida uno nuevo aquí abajo."
    ),
    "pending_review": _l(
        "Su solicitud está pendiente de aprobación. Recibirá un correo electrónico con la "
        "respuesta dentro de las próximas 24 horas."
    ),
    "denied": _l(
        "Su solicitud de registro fue denegada. Revise el correo electrónico que le enviamos "
        "con el motivo o comuníquese con nosotros."
    ),
    "disabled": _l("Su acceso fue desactivado. Comuníquese con el administrador de su oficina."),
}
LOCKED_MESSAGE = _l(
    "Su usuario está bloqueado por múltiples intentos fallidos. Para desbloquearlo use la opción "
    "“Recuperar contraseña”."
)
BAD_CREDENTIALS = _l("Usuario o contraseña incorrectos.")
AFTER_PASSWORD_CHANGE = "after_password_change"
"""Where a forced change of a temporary password goes next (an application waiting on sign-in)."""


def _throttle(key: str) -> LoginThrottle:
    db = get_db()
    throttle = db.get(LoginThrottle, (g.portal.slug, key))
    if throttle is None:
        throttle = LoginThrottle(portal=g.portal.slug, username_key=key, failures=0)
        db.add(throttle)
    return throttle


def _safe_next(target: str | None) -> str | None:
    """Only same-site paths, so the login page cannot be used to send people elsewhere."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    status = None
    if not form.is_submitted() and request.args.get("login_hint"):
        form.username.data = request.args["login_hint"][:64]
    if form.validate_on_submit():
        db = get_db()
        key = form.username.data.lower()
        throttle = db.get(LoginThrottle, (g.portal.slug, key))
        threshold = g.portal.policy.login_lockout_threshold
        if throttle is not None and throttle.failures >= threshold:
            form.form_errors.append(LOCKED_MESSAGE)
            return render_template("auth/login.html", form=form), 200
        user = active_user_by_username(g.portal.slug, form.username.data)
        if not verify_password(user.password_hash if user else None, form.password.data):
            throttle = _throttle(key)
            throttle.failures += 1
            if throttle.failures >= threshold:
                throttle.locked_at = utcnow()
                add_event(
                    db,
                    actor="anonymous",
                    action="login.locked",
                    portal=g.portal.slug,
                    user_id=user.id if user else None,
                )
                form.form_errors.append(LOCKED_MESSAGE)
            else:
                form.form_errors.append(BAD_CREDENTIALS)
            db.commit()
            return render_template("auth/login.html", form=form), 200
        if throttle is not None:
            db.delete(throttle)
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
        if user.status != "active":
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
        if user.must_change_password:
            user.password_expires_at = utcnow()
        add_event(
            db, actor=f"user:{user.id}", action="login", portal=g.portal.slug, user_id=user.id
        )
        start_session(user, remember=form.remember_me.data)
        if user.must_change_password:
            if _safe_next(request.args.get("next")):
                session[AFTER_PASSWORD_CHANGE] = _safe_next(request.args.get("next"))
            return redirect(url_for("account.change_password"))
        return redirect(_safe_next(request.args.get("next")) or url_for("main.home"))
    return render_template("auth/login.html", form=form, status=status)


@bp.post("/logout")
def logout():
    end_session()
    flash(_("Cerró su sesión."), "info")
    return redirect(url_for("auth.login"))
