"""Office employees (provider portal): the primary registrant invites, disables, re-enables and
revokes; an invitee accepts the e-mailed link and gets an account tied to the same office."""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select
from wtforms import StringField
from wtforms.validators import Length

from portal.models import EmailToken, Invitation, Office, Role, User, utcnow
from portal.passwords import hash_password
from portal.tokens import token_hash
from processes.invitation import service as invitation_service
from processes.invitation.vocabulary import Acceptance, Step
from web.account import bp
from web.db import get_db
from web.forms import CheckedForm, email_field, new_password_fields, required, strip, username_field
from web.sessions import active_user_by_username, portal_login_required


class InviteForm(CheckedForm):
    first_name = StringField(
        _l("Nombre"),
        filters=[strip],
        validators=[required(), Length(max=100, message=_l("Como máximo 100 caracteres."))],
    )
    last_name = StringField(
        _l("Apellidos"),
        filters=[strip],
        validators=[required(), Length(max=100, message=_l("Como máximo 100 caracteres."))],
    )
    email = email_field(_l("Correo electrónico"))


class ActionForm(CheckedForm):
    """Only the CSRF token, for the disable, enable and revoke buttons."""


class AcceptForm(CheckedForm):
    username = username_field(_l("Usuario"))
    password, password_confirm = new_password_fields(_l("Contraseña"), _l("Repetir contraseña"))


def _primary() -> User:
    """The signed-in primary registrant of a provider office; employees get 403."""
    if g.portal.flow != "provider":
        abort(404)
    user: User = current_user.account
    if user.role != Role.PROVIDER_PRIMARY or user.office_id is None:
        abort(403)
    return user


@bp.route("/account/employees", methods=["GET", "POST"])
@portal_login_required
def employees():
    primary = _primary()
    form = InviteForm()
    db = get_db()
    if form.validate_on_submit() and _invite(primary, form):
        flash(
            _("Enviamos la invitación a %(email)s.", email=form.email.data),
            "success",
        )
        return redirect(url_for("account.employees"))
    office = db.get(Office, primary.office_id)
    staff = db.scalars(
        select(User)
        .where(User.office_id == primary.office_id)
        .where(User.role == Role.PROVIDER_EMPLOYEE)
        .order_by(User.last_name, User.first_name)
    ).all()
    invitations = db.scalars(
        select(Invitation)
        .where(Invitation.office_id == primary.office_id)
        .where(Invitation.status == Step.PENDING)
        .order_by(Invitation.created_at.desc())
    ).all()
    return render_template(
        "account/employees.html",
        form=form,
        action_form=ActionForm(),
        office=office,
        employees=staff,
        invitations=invitations,
    )


def _invite(primary: User, form: InviteForm) -> bool:
    invited = invitation_service.invite(
        get_db(), g.portal, primary, form.email.data, form.first_name.data, form.last_name.data
    )
    if not invited:
        form.email.errors.append(_("Ya hay una invitación pendiente para ese correo electrónico."))
    return invited


def _employee(primary: User, user_id: int) -> User:
    user = get_db().get(User, user_id)
    if user is None or user.office_id != primary.office_id or user.role != Role.PROVIDER_EMPLOYEE:
        abort(404)
    return user


def _set_access(user_id: int, enabled: bool) -> User:
    """Turns an employee's access on or off; turning it off ends their sessions at once."""
    primary = _primary()
    if not ActionForm().validate_on_submit():
        abort(400)
    employee = _employee(primary, user_id)
    invitation_service.set_access(get_db(), primary, employee, enabled)
    return employee


@bp.post("/account/employees/<int:user_id>/disable")
@portal_login_required
def disable_employee(user_id: int):
    employee = _set_access(user_id, enabled=False)
    flash(_("Se desactivó el acceso de %(name)s.", name=employee.display_name), "success")
    return redirect(url_for("account.employees"))


@bp.post("/account/employees/<int:user_id>/enable")
@portal_login_required
def enable_employee(user_id: int):
    employee = _set_access(user_id, enabled=True)
    flash(_("Se reactivó el acceso de %(name)s.", name=employee.display_name), "success")
    return redirect(url_for("account.employees"))


@bp.post("/account/invitations/<int:invitation_id>/revoke")
@portal_login_required
def revoke_invitation(invitation_id: int):
    primary = _primary()
    if not ActionForm().validate_on_submit():
        abort(400)
    db = get_db()
    invitation = db.get(Invitation, invitation_id)
    if invitation is None or invitation.office_id != primary.office_id:
        abort(404)
    if not invitation_service.revoke(db, invitation, invitation_service.actor(primary), primary.id):
        flash(_("Esa invitación ya no está pendiente."), "info")
        return redirect(url_for("account.employees"))
    flash(
        _("Revocamos la invitación de %(email)s: su enlace ya no sirve.", email=invitation.email),
        "success",
    )
    return redirect(url_for("account.employees"))


# The invitee's side: the link from the e-mail.
def _invitation_token(token: str) -> tuple[EmailToken, Invitation] | None:
    db = get_db()
    row = db.scalar(select(EmailToken).where(EmailToken.token_hash == token_hash(token)))
    if row is None or row.portal != g.portal.slug or row.purpose != "invitation":
        return None
    if not row.usable(utcnow()):
        return None
    invitation = db.scalar(select(Invitation).where(Invitation.workflow_id == row.workflow_id))
    if invitation is None or invitation.status != Step.PENDING:
        return None
    return row, invitation


@bp.route("/invitation/<token>", methods=["GET", "POST"])
def accept_invitation(token: str):
    if g.portal.flow != "provider":
        abort(404)
    found = _invitation_token(token)
    if found is None:
        return render_template("account/employees_link_invalid.html"), 410
    row, invitation = found
    form = AcceptForm()
    if form.validate_on_submit():
        if active_user_by_username(g.portal.slug, form.username.data) is not None:
            form.username.errors.append(_("Ese nombre de usuario ya existe. Por favor elija otro."))
        else:
            outcome = _create_employee(row, invitation, form)
            if outcome is not None:
                return outcome
    office = get_db().get(Office, invitation.office_id)
    return render_template(
        "account/employees_accept.html", form=form, invitation=invitation, office=office
    )


def _create_employee(row: EmailToken, invitation: Invitation, form: AcceptForm):
    """The account goes live in the transaction that consumes the link; the invitation's
    process hears of it through the outbox."""
    user = User(
        portal=g.portal.slug,
        username=form.username.data,
        email=invitation.email,
        first_name=invitation.first_name,
        last_name=invitation.last_name,
        password_hash=hash_password(form.password.data),
        locale=str(get_locale() or "es"),
    )
    outcome = invitation_service.accept(get_db(), row, invitation, user)
    if outcome == Acceptance.USERNAME_TAKEN:
        form.username.errors.append(_("Ese nombre de usuario ya existe. Por favor elija otro."))
        return None
    if outcome == Acceptance.GONE:
        return render_template("account/employees_link_invalid.html"), 410
    flash(_("Su usuario está listo. Ya puede iniciar sesión."), "success")
    return redirect(url_for("auth.login"))
