"""Staff administration for admins: list, invite, change roles and portals, disable and enable,
reset a second factor, unlock. Each action is refused outside the admin's portals, audited with
who did it, and never leaves the console without an active admin."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import and_, func, select
from wtforms import PasswordField, SelectMultipleField, StringField
from wtforms.validators import EqualTo, Length, Regexp, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from portal import two_factor
from portal.models import (
    STAFF_MIN_PASSWORD_LENGTH,
    LoginThrottle,
    Passkey,
    SecondFactor,
    StaffInvitation,
    StaffRole,
    StaffUser,
)
from portal.passwords import hash_password
from processes.account_admin import service as admin
from processes.account_admin.service import Changed
from processes.staff_invitation import service as invitations
from processes.staff_invitation.vocabulary import InvitationStatus
from web import once, second_factor
from web.db import get_db
from web.forms import CheckedForm, EmailAddress, required, strip
from web.sessions import staff_required
from web.staff import CONSOLE_PAGES, PUBLIC_ENDPOINTS, STAFF_LOCKOUT, bp

CONSOLE_PAGES.append(("staff.admin_staff", _l("Personal de la consola"), StaffRole.ADMIN))
PUBLIC_ENDPOINTS.add("staff.accept_invitation")

ROLE_LABELS = {
    StaffRole.ADMIN: _l("Administración"),
    StaffRole.REVIEWER: _l("Revisión de proveedores"),
    StaffRole.SUPPORT: _l("Mesa de ayuda"),
    StaffRole.OPERATOR: _l("Operación"),
}


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class AccessForm(CheckedForm):
    roles = MultiCheckboxField(_l("Funciones"), choices=[])
    portals = MultiCheckboxField(
        _l("Portales"),
        choices=[],
        description=_l("Sin ninguno marcado, ve todos los portales."),
    )

    def setup(self, admin: StaffUser) -> None:
        self.roles.choices = [(role, ROLE_LABELS[role]) for role in StaffRole]
        self.portals.choices = [
            (slug, portal.name)
            for slug, portal in current_app.extensions["acceso.portals"].items()
            if admin.sees_portal(slug)
        ]

    def validate_roles(self, field):
        if not field.data:
            raise ValidationError(_l("Elija al menos una función."))

    def validate_portals(self, field):
        admin: StaffUser = current_user.account
        if admin.portal_set and not field.data:
            raise ValidationError(_l("Elija al menos uno de los portales que usted administra."))


class InviteForm(AccessForm, once.SubmitOnceForm):
    username = StringField(
        _l("Usuario"),
        filters=[strip],
        validators=[
            required(),
            Regexp(
                r"^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$",
                message=_l("Entre 2 y 64 letras sin acentos, números, punto, guion o guion bajo."),
            ),
        ],
    )
    full_name = StringField(_l("Nombre completo"), filters=[strip], validators=[required()])
    email = StringField(
        _l("Correo electrónico"), filters=[strip], validators=[required(), EmailAddress()]
    )


class ActionForm(CheckedForm):
    """Buttons that change one staff member: only the CSRF token travels."""


class AcceptForm(CheckedForm):
    password = PasswordField(
        _l("Contraseña"),
        validators=[
            required(),
            Length(
                min=STAFF_MIN_PASSWORD_LENGTH,
                message=_l("Al menos %(n)s caracteres.", n=STAFF_MIN_PASSWORD_LENGTH),
            ),
        ],
    )
    password_confirm = PasswordField(
        _l("Repetir contraseña"),
        validators=[required(), EqualTo("password", message=_l("Las contraseñas no coinciden."))],
    )


def _actor() -> str:
    return f"staff:{current_user.account.username}"


def manages(admin: StaffUser, staff: StaffUser) -> bool:
    """An admin of every portal manages everyone; one of some portals, only staff within them."""
    if not admin.portal_set:
        return True
    return bool(staff.portal_set) and staff.portal_set <= admin.portal_set


def _managed(staff_id: int) -> StaffUser:
    staff = get_db().get(StaffUser, staff_id)
    if staff is None:
        abort(404)
    if not manages(current_user.account, staff):
        abort(403)
    return staff


@bp.get("/admin/")
@staff_required(StaffRole.ADMIN)
def admin_staff():
    """One query for the whole list, whatever its length."""
    db = get_db()
    passkeys = (
        select(Passkey.staff_id, func.count(Passkey.id).label("n"))
        .group_by(Passkey.staff_id)
        .subquery()
    )
    rows = db.execute(
        select(
            StaffUser,
            SecondFactor.id.is_not(None).label("totp"),
            func.coalesce(passkeys.c.n, 0).label("passkeys"),
            LoginThrottle.failures,
        )
        .outerjoin(SecondFactor, SecondFactor.staff_id == StaffUser.id)
        .outerjoin(passkeys, passkeys.c.staff_id == StaffUser.id)
        .outerjoin(
            LoginThrottle,
            and_(
                LoginThrottle.portal == "staff",
                LoginThrottle.username_key == func.lower(StaffUser.username),
            ),
        )
        .order_by(func.lower(StaffUser.username))
    ).all()
    admin: StaffUser = current_user.account
    return render_template(
        "staff/admin_list.html",
        rows=[row for row in rows if manages(admin, row[0])],
        lockout=STAFF_LOCKOUT,
        role_labels=ROLE_LABELS,
    )


@bp.route("/admin/invite", methods=["GET", "POST"])
@staff_required(StaffRole.ADMIN)
def admin_invite():
    form = InviteForm()
    form.setup(current_user.account)
    if earlier := once.earlier():
        return redirect(earlier)
    if form.validate_on_submit():
        db = get_db()
        taken = db.scalar(
            select(StaffUser.id).where(func.lower(StaffUser.username) == form.username.data.lower())
        )
        if taken:
            form.username.errors.append(_("Ese usuario ya existe."))
        else:
            invitations.invite(
                db,
                actor=_actor(),
                username=form.username.data,
                full_name=form.full_name.data,
                email=form.email.data,
                roles=form.roles.data,
                portals=form.portals.data,
            )
            once.remember(db, url_for("staff.admin_staff"))
            db.commit()
            flash(
                _("Enviamos la invitación a %(email)s.", email=form.email.data),
                "success",
            )
            return redirect(url_for("staff.admin_staff"))
    return render_template("staff/admin_invite.html", form=form)


@bp.route("/admin/<int:staff_id>", methods=["GET", "POST"])
@staff_required(StaffRole.ADMIN)
def admin_member(staff_id: int):
    staff = _managed(staff_id)
    db = get_db()
    form = AccessForm(roles=sorted(staff.role_set), portals=sorted(staff.portal_set))
    form.setup(current_user.account)
    if form.validate_on_submit():
        changed = admin.change_access(
            db, staff, _actor(), list(form.roles.data), list(form.portals.data)
        )
        if changed == Changed.LAST_ADMIN:
            form.roles.errors.append(_("Es la última cuenta de administración activa."))
        else:
            flash(_("Guardamos las funciones y los portales."), "success")
            return redirect(url_for("staff.admin_member", staff_id=staff.id))
    invitation = db.scalar(
        select(StaffInvitation)
        .where(StaffInvitation.staff_id == staff.id)
        .order_by(StaffInvitation.id.desc())
    )
    throttle = db.get(LoginThrottle, ("staff", staff.username.lower()))
    return render_template(
        "staff/admin_member.html",
        staff=staff,
        form=form,
        action=ActionForm(),
        invitation=invitation,
        pending=invitation is not None and invitation.status == InvitationStatus.PENDING,
        has_totp=two_factor.factor_of(db, staff) is not None,
        passkeys=len(db.scalars(select(Passkey.id).where(Passkey.staff_id == staff.id)).all()),
        locked=throttle is not None and throttle.failures >= STAFF_LOCKOUT,
    )


def _act(staff_id: int, change) -> object:
    """Runs one change on a managed staff member after the CSRF check, then back to the page;
    the change commits (or not) itself."""
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)
    staff = _managed(staff_id)
    message = change(get_db(), staff)
    if message:
        flash(message[0], message[1])
    return redirect(url_for("staff.admin_member", staff_id=staff.id))


@bp.post("/admin/<int:staff_id>/disable")
@staff_required(StaffRole.ADMIN)
def admin_disable(staff_id: int):
    def change(db, staff: StaffUser):
        changed = admin.disable_staff(db, staff, _actor())
        if changed == Changed.ALREADY:
            return _("La cuenta ya estaba desactivada."), "info"
        if changed == Changed.LAST_ADMIN:
            return _("No se puede desactivar la última cuenta de administración activa."), "error"
        return _("Desactivamos la cuenta y cerramos sus sesiones."), "success"

    return _act(staff_id, change)


@bp.post("/admin/<int:staff_id>/enable")
@staff_required(StaffRole.ADMIN)
def admin_enable(staff_id: int):
    def change(db, staff: StaffUser):
        changed = admin.enable_staff(db, staff, _actor())
        if changed == Changed.ALREADY:
            return _("La cuenta ya estaba activa."), "info"
        if changed == Changed.NOT_ACCEPTED:
            return _("La invitación aún no fue aceptada."), "error"
        return _("Activamos la cuenta."), "success"

    return _act(staff_id, change)


@bp.post("/admin/<int:staff_id>/reset-factor")
@staff_required(StaffRole.ADMIN)
def admin_reset_factor(staff_id: int):
    def change(db, staff: StaffUser):
        if not admin.reset_staff_factor(db, staff, _actor()):
            return _("La cuenta no tenía un segundo factor."), "info"
        return (
            _("Quitamos el segundo factor: lo activará de nuevo al iniciar sesión."),
            "success",
        )

    return _act(staff_id, change)


@bp.post("/admin/<int:staff_id>/unlock")
@staff_required(StaffRole.ADMIN)
def admin_unlock(staff_id: int):
    def change(db, staff: StaffUser):
        if not admin.unlock_staff(db, staff, _actor()):
            return _("La cuenta no estaba bloqueada."), "info"
        return _("Desbloqueamos la cuenta."), "success"

    return _act(staff_id, change)


@bp.post("/admin/<int:staff_id>/cancel-invitation")
@staff_required("admin")
def admin_cancel_invitation(staff_id: int):
    """The invitation's link stops working now and its process ends; the account that never
    started goes with it, so the list returns rather than to a page that no longer exists."""
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)
    staff = _managed(staff_id)
    db = get_db()
    invitation = invitations.pending_invitation(db, staff)
    if invitation is None or not invitations.revoke(db, invitation, actor=_actor()):
        db.rollback()
        flash(_("La invitación ya no estaba pendiente."), "info")
        return redirect(url_for("staff.admin_member", staff_id=staff_id))
    db.commit()
    flash(_("Cancelamos la invitación de %(username)s.", username=staff.username), "success")
    return redirect(url_for("staff.admin_staff"))


@bp.route("/invitation/<token>", methods=["GET", "POST"])
def accept_invitation(token: str):
    """The e-mailed link shows the form; only its POST consumes the link."""
    db = get_db()
    found = invitations.link_for(db, token)
    if found is None:
        return render_template("staff/invitation_invalid.html"), 404
    link, invitation, staff = found
    form = AcceptForm()
    if form.validate_on_submit():
        if invitations.accept(db, link, invitation, staff, hash_password(form.password.data)):
            db.commit()
            second_factor.begin("staff", staff.id, next="")
            flash(_("Su contraseña está lista. Ahora active la verificación en dos pasos."), "info")
            return redirect(url_for("staff.enrol"))
        db.rollback()
        return render_template("staff/invitation_invalid.html"), 404
    return render_template("staff/invitation_accept.html", form=form, staff=staff)
