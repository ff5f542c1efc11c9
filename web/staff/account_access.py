"""The help desk's view of an applicant's access, on the staff account page: the same sessions,
applications and security events the person sees, and the help desk's actions on them (end
every session, resend the confirmation link, disable or enable with a required note)."""

from __future__ import annotations

from flask import flash, redirect, url_for
from flask_babel import gettext as _
from flask_login import current_user
from wtforms import HiddenField
from wtforms.validators import AnyOf

from portal.audit import add_event
from portal.models import AccountStatus, User
from processes.account_admin import service as helpdesk
from processes.registration import service
from web.account.activity import activity_context
from web.db import get_db
from web.forms import CheckedForm
from web.sessions import end_all_sessions, staff_required
from web.staff import bp
from web.staff.helpdesk import NoteForm, _refresh, _visible_user
from web.staff.narrative import sentence


class ResendForm(CheckedForm):
    """Only the CSRF token: the account is in the address."""


class StatusForm(NoteForm):
    """The status the agent asked for travels with the form, so a press repeated after the
    change is told it is done instead of undoing it."""

    to = HiddenField(validators=[AnyOf([AccountStatus.ACTIVE, AccountStatus.DISABLED])])


def access_context(user: User) -> dict:
    """What the staff account page adds about the account's access; a fixed number of queries."""
    return {
        **activity_context(user, None),
        "event_label": sentence,
        "resend_form": ResendForm(),
        "can_resend": user.status == AccountStatus.UNCONFIRMED,
    }


def _actor() -> str:
    return f"staff:{current_user.account.username}"


def note_forms(**refused: NoteForm) -> dict[str, NoteForm]:
    """The page's note forms, each with its own field id; the refused one keeps what was typed."""
    forms = {}
    for name, kind in (("sessions_form", NoteForm), ("status_form", StatusForm)):
        form = refused.get(name) or kind(formdata=None)
        form.note.id = name.removesuffix("_form") + "_note"
        forms[name] = form
    return forms


@bp.post("/accounts/<int:user_id>/end-sessions")
@staff_required("support")
def end_account_sessions(user_id: int):
    user = _visible_user(user_id)
    form = NoteForm()
    if not form.validate_on_submit():
        return _refresh(
            user, NoteForm(formdata=None), NoteForm(formdata=None), sessions_form=form
        ), 400
    db = get_db()
    end_all_sessions(user.id)
    add_event(
        db,
        actor=_actor(),
        action="sessions.ended_by_helpdesk",
        portal=user.portal,
        user_id=user.id,
        note=form.note.data,
    )
    db.commit()
    flash(_("Cerramos todas las sesiones de la cuenta y avisamos a sus aplicaciones."), "success")
    return redirect(url_for("staff.account", user_id=user.id))


@bp.post("/accounts/<int:user_id>/status")
@staff_required("support")
def change_account_status(user_id: int):
    """Disable an active account (its sessions end at once) or enable a disabled one."""
    user = _visible_user(user_id)
    form = StatusForm()
    if not form.validate_on_submit():
        return _refresh(
            user, NoteForm(formdata=None), NoteForm(formdata=None), status_form=form
        ), 400
    to = AccountStatus(form.to.data)
    if not helpdesk.set_account_status(get_db(), user, to, _actor(), form.note.data):
        flash(
            _("La cuenta ya estaba desactivada.")
            if to == AccountStatus.DISABLED
            else _("La cuenta ya estaba activa."),
            "info",
        )
        return redirect(url_for("staff.account", user_id=user.id))
    flash(
        _("Desactivamos la cuenta.")
        if to == AccountStatus.DISABLED
        else _("Reactivamos la cuenta."),
        "success",
    )
    return redirect(url_for("staff.account", user_id=user.id))


@bp.post("/accounts/<int:user_id>/resend-confirmation")
@staff_required("support")
def resend_account_confirmation(user_id: int):
    """A new confirmation link from the registration process, owed through the outbox."""
    user = _visible_user(user_id)
    if not ResendForm().validate_on_submit():
        return redirect(url_for("staff.account", user_id=user.id))
    if not service.resend_for_helpdesk(get_db(), user, _actor()):
        flash(_("La cuenta no espera confirmación."), "info")
        return redirect(url_for("staff.account", user_id=user.id))
    flash(_("Pedimos un nuevo enlace de confirmación; el anterior deja de servir."), "success")
    return redirect(url_for("staff.account", user_id=user.id))
