"""Changing one's e-mail address: the form (new address twice and the current password), and
the two e-mailed links, the new address's confirmation and the old address's undo."""

from __future__ import annotations

from flask import current_app, flash, g, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import PasswordField
from wtforms.validators import EqualTo

from portal.tokens import token_hash
from processes.email_change import service
from processes.email_change.vocabulary import LinkPurpose, Requested
from processes.links import LinkState
from web.account import bp
from web.auth import locked_out
from web.db import get_db
from web.forms import CheckedForm, email_field, required
from web.sessions import portal_login_required

SAME_ADDRESS = _l("Esa ya es su dirección de correo electrónico. Escriba otra.")
WRONG_PASSWORD = _l("La contraseña actual no es correcta.")


class ChangeEmailForm(CheckedForm):
    new_email = email_field(_l("Nueva dirección de correo electrónico"))
    new_email_confirm = email_field(_l("Repetir la nueva dirección"))
    current_password = PasswordField(_l("Contraseña actual"), validators=[required()])

    def validate_new_email_confirm(self, field):
        EqualTo("new_email", message=_l("Las direcciones no coinciden."))(self, field)


class LinkForm(CheckedForm):
    """Only the POST from the link's page acts: mail scanners fetch links, people press buttons."""


@bp.route("/account/email", methods=["GET", "POST"])
@portal_login_required
def change_email():
    user = current_user.account
    db = get_db()
    form = ChangeEmailForm()
    if form.validate_on_submit():
        answer = service.request_change(
            db,
            g.portal,
            user,
            service.ChangeRequest(
                new_email=form.new_email.data,
                requested_by=f"user:{user.id}",
                password=form.current_password.data,
                keep_session=token_hash(current_user.session_id),
            ),
        )
        if answer == Requested.SENT:
            flash(
                _(
                    "Le enviamos un enlace a %(email)s. Sígalo dentro de %(hours)s horas para "
                    "terminar el cambio; hasta entonces su dirección sigue siendo la actual.",
                    email=form.new_email.data,
                    hours=g.portal.policy.email_change_link_hours,
                ),
                "success",
            )
            return redirect(url_for("account.change_email"))
        if answer == Requested.SAME_ADDRESS:
            form.new_email.errors.append(SAME_ADDRESS)
        elif answer == Requested.LOCKED:
            return locked_out(user)
        else:
            form.current_password.errors.append(WRONG_PASSWORD)
    return render_template(
        "account/email.html", form=form, user=user, pending=service.pending_change(db, user)
    )


def _link_page(link: service.Link, purpose: LinkPurpose, form: LinkForm):
    if link.state == LinkState.UNKNOWN:
        return render_template("account/email_link.html", state=link.state), 404
    if link.state in (LinkState.EXPIRED, LinkState.USED):
        return render_template("account/email_link.html", state=link.state, purpose=purpose), 410
    return render_template(
        "account/email_link.html", state=link.state, purpose=purpose, form=form, change=link.row
    )


@bp.route("/account/email/confirm/<token>", methods=["GET", "POST"])
def confirm_email_change(token: str):
    """The new address's link: its page shows one button; only that POST confirms."""
    db = get_db()
    form = LinkForm()
    if form.validate_on_submit():
        link = service.confirm(db, g.portal, token)
        if link.state == LinkState.DONE_NOW:
            flash(
                _(
                    "Confirmamos su nueva dirección de correo electrónico. En unos instantes será "
                    "la dirección de su usuario; le avisamos también a la dirección anterior."
                ),
                "success",
            )
            return redirect(url_for("main.home"))
    else:
        link = service.read_link(db, g.portal, token, LinkPurpose.CONFIRM)
    return _link_page(link, LinkPurpose.CONFIRM, form)


@bp.route("/account/email/undo/<token>", methods=["GET", "POST"])
def undo_email_change(token: str):
    """The old address's link: undo restores it, ends every session and sends a password reset."""
    db = get_db()
    form = LinkForm()
    if form.validate_on_submit():
        link = service.undo(db, current_app.config["SECRET_KEY"], g.portal, token)
        if link.state == LinkState.DONE_NOW:
            flash(
                _(
                    "Deshicimos el cambio: su dirección de correo electrónico volvió a ser la "
                    "anterior y cerramos todas las sesiones. Le enviamos a esa dirección un "
                    "correo para elegir una nueva contraseña."
                ),
                "success",
            )
            return redirect(url_for("auth.login"))
    else:
        link = service.read_link(db, g.portal, token, LinkPurpose.UNDO)
    return _link_page(link, LinkPurpose.UNDO, form)
