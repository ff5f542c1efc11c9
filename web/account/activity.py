"""Activity and access: the person's sessions (end one, end all others), the applications they
let in (remove access) and the recent security events of their account."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import HiddenField, IntegerField

from portal import access
from portal.audit import add_event
from portal.models import AuditEvent, OidcClient
from processes.logout_delivery.service import sign_out_of_client
from web.account import bp
from web.db import get_db
from web.forms import CheckedForm, required
from web.oidc import SCOPE_DESCRIPTIONS
from web.oidc.smart import describe_resource_scope
from web.sessions import (
    current_session_row_id,
    end_one_session,
    end_other_sessions,
    portal_login_required,
)

EVENT_LABELS = {
    "login": _l("Inicio de sesión"),
    "login.failed": _l("Intento fallido de inicio de sesión"),
    "login.locked": _l("Usuario bloqueado por intentos fallidos"),
    "login.new_device": _l("Inicio de sesión desde un navegador nuevo"),
    "login.not_me": _l("Sesión desconocida cerrada («no fui yo»)"),
    "logout": _l("Cierre de sesión"),
    "account.unlocked_by_helpdesk": _l("La mesa de ayuda desbloqueó el usuario"),
    "account.disabled_by_helpdesk": _l("La mesa de ayuda desactivó la cuenta"),
    "account.enabled_by_helpdesk": _l("La mesa de ayuda reactivó la cuenta"),
    "password.changed": _l("Cambio de contraseña"),
    "password.reset": _l("Contraseña restablecida"),
    "second_factor.enrolled": _l("Verificación en dos pasos activada"),
    "second_factor.removed": _l("Verificación en dos pasos desactivada"),
    "second_factor.reset_by_helpdesk": _l("La mesa de ayuda quitó la verificación en dos pasos"),
    "recovery_code.used": _l("Se usó un código de recuperación"),
    "session.ended": _l("Se cerró una sesión"),
    "sessions.ended_others": _l("Se cerraron las demás sesiones"),
    "sessions.ended_by_helpdesk": _l("La mesa de ayuda cerró las sesiones"),
    "application.allowed": _l("Se permitió el acceso de una aplicación"),
    "application.removed": _l("Se quitó el acceso de una aplicación"),
    "profile.updated": _l("Cambio de datos del perfil"),
}
"""How the person reads each security event of their own account."""


def event_label(event: AuditEvent) -> str:
    label = EVENT_LABELS.get(event.action)
    if label is not None:
        return str(label)
    if event.action.startswith("email_change."):
        return _("Cambio de correo electrónico")
    return event.action


def scope_label(scope: str) -> str:
    """What a scope releases, as the consent screen said it."""
    return describe_resource_scope(scope) or str(SCOPE_DESCRIPTIONS.get(scope, scope))


class EndSessionForm(CheckedForm):
    session = HiddenField(validators=[required()])


class EndOthersForm(CheckedForm):
    """Only the CSRF token: the button says it all."""


class RemoveApplicationForm(CheckedForm):
    client = IntegerField(validators=[required()])


def activity_context(user, current_row_id: str | None) -> dict:
    """Sessions, applications and events of one account, read in a fixed number of queries."""
    db = get_db()
    idle_minutes = current_app.extensions["acceso.portals"][user.portal].policy.idle_minutes
    return {
        "sessions": access.live_sessions(db, user.id, current_row_id, idle_minutes),
        "applications": access.applications(db, user.id),
        "events": access.security_events(db, user.id),
        "describe": access.describe_user_agent,
        "scope_label": scope_label,
    }


@bp.get("/account/activity")
@portal_login_required
def activity():
    return render_template(
        "account/activity.html",
        end_form=EndSessionForm(),
        others_form=EndOthersForm(),
        remove_form=RemoveApplicationForm(),
        event_label=event_label,
        **activity_context(current_user.account, current_session_row_id()),
    )


@bp.post("/account/activity/sessions/end")
@portal_login_required
def end_session_from_activity():
    user = current_user.account
    form = EndSessionForm()
    if not form.validate_on_submit():
        abort(400)
    db = get_db()
    row = access.session_by_handle(db, user.id, form.session.data)
    if row is None:
        flash(_("Esa sesión ya había terminado."), "info")
        return redirect(url_for("account.activity"))
    if row.id == current_session_row_id():
        flash(_("Para cerrar la sesión de este dispositivo use «Cerrar sesión»."), "info")
        return redirect(url_for("account.activity"))
    end_one_session(row)
    add_event(
        db, actor=f"user:{user.id}", action="session.ended", portal=user.portal, user_id=user.id
    )
    db.commit()
    flash(
        _("Cerramos esa sesión. Su próximo paso en ese dispositivo le pedirá iniciar sesión."),
        "success",
    )
    return redirect(url_for("account.activity"))


@bp.post("/account/activity/sessions/end-others")
@portal_login_required
def end_other_sessions_from_activity():
    user = current_user.account
    if not EndOthersForm().validate_on_submit():
        abort(400)
    db = get_db()
    end_other_sessions(user.id)
    add_event(
        db,
        actor=f"user:{user.id}",
        action="sessions.ended_others",
        portal=user.portal,
        user_id=user.id,
    )
    db.commit()
    flash(
        _("Cerramos todas sus demás sesiones; las aplicaciones deberán pedirle entrar de nuevo."),
        "success",
    )
    return redirect(url_for("account.activity"))


@bp.post("/account/activity/applications/remove")
@portal_login_required
def remove_application():
    user = current_user.account
    form = RemoveApplicationForm()
    if not form.validate_on_submit():
        abort(400)
    db = get_db()
    client = db.get(OidcClient, form.client.data)
    if client is None or client.portal != user.portal:
        flash(_("Esa aplicación ya no tenía acceso."), "info")
        return redirect(url_for("account.activity"))
    if not remove_access(db, user, client, actor=f"user:{user.id}"):
        flash(_("Esa aplicación ya no tenía acceso."), "info")
        return redirect(url_for("account.activity"))
    db.commit()
    flash(_("Quitamos el acceso de «%(name)s».", name=client.name), "success")
    return redirect(url_for("account.activity"))


def remove_access(db, user, client: OidcClient, actor: str) -> bool:
    """Tokens revoked, consent forgotten, the client told by back-channel; returns whether the
    client had any access to remove. The caller commits."""
    held_tokens = sign_out_of_client(db, user.id, client.id)
    had_consent = access.forget_consent(db, user.id, client.id)
    if not (held_tokens or had_consent):
        return False
    add_event(
        db,
        actor=actor,
        action="application.removed",
        portal=user.portal,
        user_id=user.id,
        client=client.name,
    )
    return True
