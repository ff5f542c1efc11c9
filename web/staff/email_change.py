"""The help desk changes the e-mail address of someone who lost their mailbox: identity checked
by other means (the required note says how), and the new address must still confirm."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms.validators import EqualTo

from portal.models import User
from processes.email_change import service
from processes.email_change.vocabulary import Requested
from web.account.email import SAME_ADDRESS
from web.db import get_db
from web.forms import CheckedForm, email_field, staff_text
from web.sessions import staff_required
from web.staff import bp, visible_portals


class StaffEmailForm(CheckedForm):
    new_email = email_field(_l("Nueva dirección de correo electrónico"))
    new_email_confirm = email_field(_l("Repetir la nueva dirección"))
    note = staff_text(
        _l("Nota"), _l("Cómo verificó la identidad de la persona: queda en la auditoría.")
    )

    def validate_new_email_confirm(self, field):
        EqualTo("new_email", message=_l("Las direcciones no coinciden."))(self, field)


@bp.route("/accounts/<int:user_id>/email", methods=["GET", "POST"])
@staff_required("support")
def change_account_email(user_id: int):
    db = get_db()
    user = db.get(User, user_id)
    if user is None or user.portal not in visible_portals(current_user.account):
        abort(404)
    form = StaffEmailForm()
    if form.validate_on_submit():
        portal = current_app.extensions["acceso.portals"][user.portal]
        answer = service.request_change(
            db,
            portal,
            user,
            service.ChangeRequest(
                new_email=form.new_email.data,
                requested_by=f"staff:{current_user.account.username}",
                note=form.note.data,
            ),
        )
        if answer == Requested.SENT:
            flash(
                _(
                    "Enviamos un enlace de confirmación a %(email)s. El cambio se hace cuando la "
                    "persona lo siga; avisamos también a la dirección anterior.",
                    email=form.new_email.data,
                ),
                "success",
            )
            return redirect(url_for("staff.change_account_email", user_id=user.id))
        form.new_email.errors.append(SAME_ADDRESS)
    return render_template(
        "staff/account_email.html",
        form=form,
        user=user,
        pending=service.pending_change(db, user),
    ), (400 if form.errors else 200)
