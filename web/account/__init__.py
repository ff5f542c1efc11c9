"""A signed-in applicant's own account: password and e-mail changes (and, for providers, office
employees)."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import PasswordField
from wtforms.validators import EqualTo

from portal import lockout
from portal.audit import add_event
from portal.passwords import hash_password, verify_password
from processes.account_notice.service import notify_account_owner
from processes.account_notice.vocabulary import NoticeKind
from web.auth import AFTER_PASSWORD_CHANGE, claim_attempt, locked_out
from web.db import get_db
from web.forms import CheckedForm, PortalPassword, required
from web.portals import portal_blueprint
from web.sessions import end_other_sessions, portal_login_required, sessionless

bp = portal_blueprint("account", __name__)

ALLOWED_WHILE_PASSWORD_MUST_CHANGE = {
    "account.change_password",
    "account.not_me",
    "auth.logout",
    "static",
}


@bp.before_app_request
def force_password_change():
    """With a temporary password the change form is the only page a user can reach."""
    if (
        not sessionless()
        and current_user.is_authenticated
        and not current_user.is_staff
        and current_user.account.must_change_password
        and request.endpoint not in ALLOWED_WHILE_PASSWORD_MUST_CHANGE
    ):
        return redirect(url_for("account.change_password", portal=current_user.account.portal))
    return None


class ChangePasswordForm(CheckedForm):
    current_password = PasswordField(_l("Contraseña actual"), validators=[required()])
    new_password = PasswordField(_l("Nueva contraseña"), validators=[required(), PortalPassword()])
    new_password_confirm = PasswordField(
        _l("Repetir nueva contraseña"),
        validators=[
            required(),
            EqualTo("new_password", message=_l("Las contraseñas no coinciden.")),
        ],
    )


@bp.route("/account/password", methods=["GET", "POST"])
@portal_login_required
def change_password():
    user = current_user.account
    form = ChangePasswordForm()
    if form.validate_on_submit():
        db = get_db()
        attempt = claim_attempt(user.username)
        if attempt.refused:
            return locked_out(user, attempt)
        if not verify_password(user.password_hash, form.current_password.data):
            if attempt.locks_if_wrong:
                return locked_out(user, attempt)
            form.current_password.errors.append(_("La contraseña actual no es correcta."))
        elif form.new_password.data == form.current_password.data:
            lockout.release(db, attempt)
            db.commit()
            form.new_password.errors.append(
                _("La nueva contraseña debe ser distinta de la actual.")
            )
        else:
            lockout.release(db, attempt)
            user.password_hash = hash_password(form.new_password.data)
            user.must_change_password = False
            user.password_expires_at = None
            end_other_sessions(user.id)
            add_event(
                db,
                actor=f"user:{user.id}",
                action="password.changed",
                portal=user.portal,
                user_id=user.id,
            )
            notify_account_owner(db, user, NoticeKind.PASSWORD_CHANGED)
            db.commit()
            flash(_("Su contraseña está actualizada."), "success")
            return redirect(session.pop(AFTER_PASSWORD_CHANGE, None) or url_for("main.home"))
    return render_template(
        "account/change_password.html", form=form, forced=user.must_change_password
    )


from web.account import (  # noqa: E402  (area modules add their routes to bp)
    activity,  # noqa: E402,F401  (sessions, connected applications, security events)
    email,  # noqa: E402,F401  (changing the e-mail address, and its two links)
    employees,  # noqa: E402,F401  (provider office employees and invitations)
    not_me,  # noqa: E402,F401  (the new-device notice's "this was not me" link)
    profile,  # noqa: E402,F401  (phone and preferred language)
    proxies,  # noqa: E402,F401  (people who act for me, people I act for)
    security,  # noqa: E402,F401  (authenticator-app second factor)
)
