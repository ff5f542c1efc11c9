"""Forgotten username or password: same answer on screen whether or not any account matches."""

from __future__ import annotations

from flask import current_app, flash, g, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from wtforms import StringField

from portal.models import AccountStatus, EmailToken, User, utcnow
from portal.passwords import hash_password
from portal.tokens import token_hash
from processes.recovery import service
from processes.recovery.vocabulary import ResetMode
from temporal.bridge import ProcessRefused, ProcessUnavailable
from web.db import get_bridge, get_db
from web.forms import CheckedForm, email_field, new_password_fields, required, strip, username_field
from web.portals import portal_blueprint

bp = portal_blueprint("recovery", __name__)


class UsernameRecoveryForm(CheckedForm):
    email = email_field(_l("Correo electrónico"))


class ProviderUsernameRecoveryForm(UsernameRecoveryForm):
    first_name = StringField(_l("Nombre"), filters=[strip], validators=[required()])
    last_name = StringField(_l("Apellido"), filters=[strip], validators=[required()])


class PasswordRecoveryForm(CheckedForm):
    email = email_field(_l("Correo electrónico"))
    username = username_field(_l("Usuario"))


class UsernameOnlyRecoveryForm(CheckedForm):
    username = username_field(_l("Usuario"))


class ConfirmResetForm(CheckedForm):
    """The reset link's page: opening it (as mail scanners do) changes nothing."""


class NewPasswordForm(CheckedForm):
    password, password_confirm = new_password_fields(
        _l("Nueva contraseña"), _l("Repetir contraseña")
    )


def _unavailable(template: str, form):
    form.form_errors.append(
        _("No pudimos procesar su pedido ahora. Intente de nuevo en unos minutos.")
    )
    return render_template(template, form=form), 503


@bp.route("/recover/username", methods=["GET", "POST"])
def username():
    provider = g.portal.flow == "provider"
    form = ProviderUsernameRecoveryForm() if provider else UsernameRecoveryForm()
    if form.validate_on_submit():
        service.request_username_reminder(
            get_db(),
            current_app.config["SECRET_KEY"],
            g.portal,
            form.email.data,
            first_name=form.first_name.data if provider else "",
            last_name=form.last_name.data if provider else "",
        )
        flash(
            _(
                "Si hay usuarios asociados a ese correo electrónico, recibirá un correo con "
                "ellos en unos minutos."
            ),
            "info",
        )
        return redirect(url_for("auth.login"))
    return render_template("recovery/username.html", form=form)


def _matching_user(form) -> User | None:
    query = select(User).where(
        User.portal == g.portal.slug, func.lower(User.username) == form.username.data.lower()
    )
    if hasattr(form, "email"):
        query = query.where(func.lower(User.email) == form.email.data.lower())
    return get_db().scalar(query)


@bp.route("/recover/password", methods=["GET", "POST"])
def password():
    by_username_only = g.portal.policy.password_reset_mode == ResetMode.LINK
    form = UsernameOnlyRecoveryForm() if by_username_only else PasswordRecoveryForm()
    if form.validate_on_submit():
        user = _matching_user(form)
        eligible = user is not None and user.status == AccountStatus.ACTIVE
        service.request_password_reset(
            get_db(),
            current_app.config["SECRET_KEY"],
            g.portal,
            user.id if eligible else None,
        )
        flash(
            _(
                "Si los datos corresponden a un usuario, recibirá un correo para confirmar que "
                "desea cambiar su contraseña."
            ),
            "info",
        )
        return redirect(url_for("auth.login"))
    return render_template("recovery/password.html", form=form)


def _reset_token(token: str) -> EmailToken | None:
    row = get_db().scalar(select(EmailToken).where(EmailToken.token_hash == token_hash(token)))
    if row is None or row.portal != g.portal.slug or row.purpose != "password_reset":
        return None
    return row


def _reset_done(link_mode: bool):
    if link_mode:
        flash(_("Su contraseña fue cambiada. Ya puede iniciar sesión."), "success")
    else:
        flash(
            _(
                "Le enviamos por correo una contraseña temporal. Úsela para iniciar sesión; "
                "se le pedirá elegir una nueva."
            ),
            "success",
        )
    return redirect(url_for("auth.login"))


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset(token: str):
    """The link in the reset e-mail shows a page; only its POST asks the process for a temporary
    password, or sets the new one typed there (link mode)."""
    row = _reset_token(token)
    # Only an applied reset marks its link used: a press retried after a timeout (or from a
    # second tab) gets the first press's answer, and nothing is applied twice.
    applied_before = (
        row is not None
        and row.used_at is not None
        and row.revoked_at is None
        and utcnow() < row.expires_at
    )
    if row is None or not (row.usable(utcnow()) or applied_before):
        return render_template("recovery/link_invalid.html"), 410
    link_mode = g.portal.policy.password_reset_mode == ResetMode.LINK
    owner = get_db().get(User, row.user_id) if row.user_id else None
    g.password_username = owner.username if owner else ""
    form = NewPasswordForm() if link_mode else ConfirmResetForm()
    if not form.validate_on_submit():
        if applied_before:
            return render_template("recovery/link_invalid.html"), 410
        page = "recovery/new_password.html" if link_mode else "recovery/confirm_reset.html"
        return render_template(page, form=form)
    if applied_before:
        return _reset_done(link_mode)
    try:
        applied = service.confirm_reset(
            get_db(),
            get_bridge(),
            row,
            hash_password(form.password.data) if link_mode else None,
        )
    except ProcessRefused:
        return render_template("recovery/link_invalid.html"), 410
    except ProcessUnavailable:
        return render_template("registration/try_later.html"), 503
    if not applied:
        return render_template("recovery/link_invalid.html"), 410
    return _reset_done(link_mode)
