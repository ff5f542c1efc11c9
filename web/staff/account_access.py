"""The help desk's view of an applicant's access, on the staff account page: the same sessions,
applications and security events the person sees, and the help desk's actions on them (end
every session, resend the confirmation link, disable or enable with a required note)."""

from __future__ import annotations

from flask import flash, redirect, url_for
from flask_babel import gettext as _
from flask_login import current_user

from portal.audit import add_event
from portal.models import AccountStatus, User
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
    for name in ("sessions_form", "status_form"):
        form = refused.get(name) or NoteForm(formdata=None)
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
    form = NoteForm()
    if not form.validate_on_submit():
        return _refresh(
            user, NoteForm(formdata=None), NoteForm(formdata=None), status_form=form
        ), 400
    db = get_db()
    if user.status == AccountStatus.ACTIVE:
        user.status = AccountStatus.DISABLED
        end_all_sessions(user.id)
        action, message = "account.disabled_by_helpdesk", _("Desactivamos la cuenta.")
    elif user.status == AccountStatus.DISABLED:
        user.status = AccountStatus.ACTIVE
        action, message = "account.enabled_by_helpdesk", _("Reactivamos la cuenta.")
    else:
        flash(_("Solo una cuenta activa o desactivada puede cambiar así."), "info")
        return redirect(url_for("staff.account", user_id=user.id))
    add_event(
        db, actor=_actor(), action=action, portal=user.portal, user_id=user.id, note=form.note.data
    )
    db.commit()
    flash(message, "success")
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
