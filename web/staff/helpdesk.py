"""The help desk's applicant accounts: find one by username or e-mail within the agent's
portals, and unlock it or reset its second factor, with a required note; the owner is e-mailed."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import and_, func, or_, select

from portal import two_factor
from portal.audit import add_event
from portal.models import LoginThrottle, SecondFactor, StaffRole, StaffUser, User
from processes.account_admin import service as helpdesk
from web.db import get_db
from web.forms import CheckedForm, staff_text
from web.sessions import staff_required
from web.staff import CONSOLE_PAGES, bp, visible_portals

CONSOLE_PAGES.append(("staff.accounts", _l("Cuentas de solicitantes"), StaffRole.SUPPORT))


class NoteForm(CheckedForm):
    note = staff_text(
        _l("Nota"), _l("Cómo verificó la identidad y por qué: queda en la auditoría.")
    )


def _actor() -> str:
    return f"staff:{current_user.account.username}"


def _visible_user(user_id: int) -> User:
    user = get_db().get(User, user_id)
    if user is None or user.portal not in visible_portals(current_user.account):
        abort(404)
    return user


def _throttle(user: User) -> LoginThrottle | None:
    return get_db().get(LoginThrottle, (user.portal, user.username.lower()))


def _locked(user: User, throttle: LoginThrottle | None) -> bool:
    portal = current_app.extensions["acceso.portals"][user.portal]
    return throttle is not None and throttle.failures >= portal.policy.login_lockout_threshold


@bp.get("/accounts")
@staff_required(StaffRole.SUPPORT)
def accounts():
    staff: StaffUser = current_user.account
    query = (request.args.get("q") or "").strip()
    rows = []
    if query:
        rows = (
            get_db()
            .execute(
                select(User, SecondFactor.id.is_not(None), LoginThrottle.failures)
                .outerjoin(SecondFactor, SecondFactor.user_id == User.id)
                .outerjoin(
                    LoginThrottle,
                    and_(
                        LoginThrottle.portal == User.portal,
                        LoginThrottle.username_key == func.lower(User.username),
                    ),
                )
                .where(User.portal.in_(visible_portals(staff)))
                .where(
                    or_(
                        func.lower(User.username) == query.lower(),
                        func.lower(User.email) == query.lower(),
                    )
                )
                .order_by(User.portal, User.username)
                .limit(50)
            )
            .all()
        )
    return render_template("staff/accounts.html", query=query, rows=rows)


@bp.get("/accounts/<int:user_id>")
@staff_required(StaffRole.SUPPORT)
def account(user_id: int):
    """Looking at someone's account is itself an audit line: who opened it, and when."""
    user = _visible_user(user_id)
    db = get_db()
    add_event(
        db,
        actor=f"staff:{current_user.account.username}",
        action="staff.account_viewed",
        portal=user.portal,
        user_id=user.id,
    )
    db.commit()
    return _refresh(user, NoteForm(), NoteForm())


def _refresh(user: User, unlock_form: NoteForm, reset_form: NoteForm, **refused: NoteForm):
    from web.staff.account_access import access_context, note_forms

    reset_form.note.id = "reset_note"
    return render_template(
        "staff/account.html",
        user=user,
        locked=_locked(user, _throttle(user)),
        has_factor=two_factor.factor_of(get_db(), user) is not None,
        unlock_form=unlock_form,
        reset_form=reset_form,
        **note_forms(**refused),
        **access_context(user),
    )


@bp.post("/accounts/<int:user_id>/unlock")
@staff_required(StaffRole.SUPPORT)
def unlock_account(user_id: int):
    user = _visible_user(user_id)
    form = NoteForm()
    if not form.validate_on_submit():
        return _refresh(user, form, NoteForm(formdata=None)), 400
    if not helpdesk.unlock_account(get_db(), user, _actor(), form.note.data):
        flash(_("La cuenta no estaba bloqueada."), "info")
        return redirect(url_for("staff.account", user_id=user.id))
    flash(_("Desbloqueamos la cuenta y avisamos a su titular por correo."), "success")
    return redirect(url_for("staff.account", user_id=user.id))


@bp.post("/accounts/<int:user_id>/reset-factor")
@staff_required(StaffRole.SUPPORT)
def reset_account_factor(user_id: int):
    user = _visible_user(user_id)
    form = NoteForm()
    if not form.validate_on_submit():
        return _refresh(user, NoteForm(formdata=None), form), 400
    if not helpdesk.reset_second_factor(get_db(), user, _actor(), form.note.data):
        flash(_("La cuenta no tenía un segundo factor."), "info")
        return redirect(url_for("staff.account", user_id=user.id))
    flash(_("Quitamos el segundo factor y avisamos a su titular por correo."), "success")
    return redirect(url_for("staff.account", user_id=user.id))
