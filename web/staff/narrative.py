"""Audit events as sentences staff can read ("Marta aprobó la solicitud") instead of codes."""

from __future__ import annotations

from datetime import datetime

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal.models import AuditEvent
from processes.registration.vocabulary import CaseOutcome
from web.formatting import when

SENTENCES = {
    "registration.agreement_accepted": _l("%(who)s aceptó el acuerdo de licencia."),
    "registration.submitted": _l("%(who)s envió el registro."),
    "registration.email_confirmed": _l("%(who)s confirmó su correo electrónico."),
    "registration.review_started": _l("Empezó la revisión; vence el %(due)s."),
    "registration.overdue": _l("La revisión venció sin decisión (plazo de %(sla_hours)s horas)."),
    "registration.decision_ignored": _l("Se ignoró una decisión que llegó tarde."),
    "registration.approved": _l("La solicitud quedó aprobada y la cuenta activa."),
    "registration.denied": _l("La solicitud quedó denegada."),
    "registration.active": _l("La cuenta quedó activa."),
    "registration.expired": _l("El registro venció por inactividad."),
    "registration.lapsed": _l("La solicitud venció sin respuesta."),
    "registration.closed": _l("El registro quedó cerrado."),
    "registration.client_has_account": _l(
        "%(who)s intentó registrarse con un ID del Cliente que ya tiene cuenta."
    ),
    "registration.retry_link_used": _l("%(who)s usó el enlace para volver a intentar."),
    "review.decision_sent": _l("%(who)s %(decision)s la solicitud."),
    "identity.matched": _l("%(who)s validó su identidad con el expediente."),
    "identity.failed": _l(
        "%(who)s no pudo validar su identidad (intento fallido n.º %(strikes)s)."
    ),
    "identity.blocked": _l("Se rechazó un intento de validar la identidad: límite alcanzado."),
    "identity.escalated": _l("Se abrió un caso para la mesa de ayuda."),
    "case.resolution_sent": _l("%(who)s resolvió el caso: %(outcome)s."),
    "case.retry_allowed": _l("%(who)s permitió otro intento."),
    "case.closed": _l("%(who)s cerró el registro."),
    "login": _l("%(who)s inició sesión."),
    "login.locked": _l("Se bloqueó el usuario por demasiados intentos fallidos."),
    "logout": _l("%(who)s cerró sesión."),
    "password.changed": _l("%(who)s cambió su contraseña."),
    "password.reset": _l("Se restableció la contraseña."),
    "recovery.password_requested": _l("Se pidió recuperar la contraseña."),
    "recovery.username": _l("Se pidió recordar el usuario."),
    "invitation.sent": _l("%(who)s invitó a un empleado."),
    "invitation.accepted": _l("El empleado aceptó la invitación."),
    "invitation.revoke_requested": _l("%(who)s revocó una invitación."),
    "invitation.revoked": _l("La invitación quedó revocada."),
    "invitation.expired": _l("La invitación venció."),
    "employee.enabled": _l("%(who)s reactivó el acceso de un empleado."),
    "employee.disabled": _l("%(who)s desactivó el acceso de un empleado."),
    "login.failed": _l("Falló un intento de inicio de sesión."),
    "login.new_device": _l("%(who)s inició sesión desde un navegador nuevo."),
    "login.not_me": _l("%(who)s dijo «no fui yo» a un inicio de sesión: se cerró."),
    "session.ended": _l("%(who)s cerró una de sus sesiones."),
    "sessions.ended_others": _l("%(who)s cerró sus demás sesiones."),
    "sessions.ended_by_helpdesk": _l("%(who)s cerró todas las sesiones de la cuenta."),
    "application.allowed": _l("%(who)s permitió el acceso de la aplicación %(client)s."),
    "application.removed": _l("%(who)s quitó el acceso de la aplicación %(client)s."),
    "profile.updated": _l("%(who)s cambió su perfil."),
    "account.disabled_by_helpdesk": _l("%(who)s desactivó la cuenta."),
    "account.enabled_by_helpdesk": _l("%(who)s reactivó la cuenta."),
    "account.unlocked_by_helpdesk": _l("%(who)s desbloqueó la cuenta."),
    "second_factor.enrolled": _l("%(who)s activó la verificación en dos pasos."),
    "second_factor.removed": _l("%(who)s quitó la verificación en dos pasos."),
    "second_factor.reset_by_helpdesk": _l("%(who)s quitó el segundo factor de la cuenta."),
    "recovery_code.used": _l("%(who)s usó un código de recuperación."),
    "registration.confirmation_resent_by_helpdesk": _l(
        "%(who)s pidió un nuevo enlace de confirmación."
    ),
    "staff.account_viewed": _l("%(who)s abrió la página de la cuenta."),
    "staff.login": _l("%(who)s entró a la consola."),
    "staff.logout": _l("%(who)s salió de la consola."),
    "staff.created": _l("Se creó un usuario del personal."),
    "staff.password_reset": _l("Se restableció la contraseña de un usuario del personal."),
    "email_change.requested": _l("%(who)s pidió cambiar el correo electrónico."),
    "email_change.address_in_use": _l(
        "%(who)s pidió usar un correo electrónico que ya tiene otro usuario; no se cambió."
    ),
    "email_change.confirmed": _l("%(who)s confirmó la nueva dirección de correo electrónico."),
    "email_change.applied": _l("Se cambió el correo electrónico (pedido por %(who)s)."),
    "email_change.refused": _l(
        "No se aplicó el cambio de correo electrónico: la dirección ya tiene otro usuario."
    ),
    "email_change.undone": _l(
        "Se deshizo el cambio de correo electrónico desde la dirección anterior."
    ),
    "email_change.expired": _l("El pedido de cambio de correo electrónico venció."),
    "email_change.replaced": _l("Un pedido más nuevo reemplazó el cambio de correo electrónico."),
    "email_change.kept": _l("Terminó el plazo para deshacer el cambio de correo electrónico."),
    "proxy.invited": _l("%(who)s invitó a una persona a actuar en su nombre."),
    "proxy.requested": _l("%(who)s pidió actuar en nombre de otra persona."),
    "proxy.request_mismatch": _l(
        "%(who)s pidió actuar por otra persona con datos que no coinciden (intento n.º %(strikes)s)."
    ),
    "proxy.accepted": _l("%(who)s aceptó la invitación para actuar en nombre de otra persona."),
    "proxy.approved": _l("%(who)s aprobó que otra persona actúe en su nombre."),
    "proxy.declined": _l("%(who)s rechazó que otra persona actúe en su nombre."),
    "proxy.review_approved": _l("%(who)s aprobó el pedido de acceso."),
    "proxy.review_denied": _l("%(who)s rechazó el pedido de acceso."),
    "proxy.review_overdue": _l("La revisión del pedido de acceso venció sin decisión."),
    "proxy.active": _l("El acceso en nombre de otra persona quedó activo."),
    "proxy.limited": _l("El acceso quedó limitado: la persona cumplió la edad de la política."),
    "proxy.majority": _l("El acceso terminó: la persona cumplió la mayoría de edad."),
    "proxy.renewed": _l("%(who)s renovó el acceso de quien actúa en su nombre."),
    "proxy.lapsed": _l("El acceso venció sin renovación."),
    "proxy.ended": _l("El acceso terminó en su fecha de fin."),
    "proxy.expired": _l("El pedido o la invitación venció sin respuesta."),
    "proxy.revoked": _l("%(who)s quitó el acceso."),
    "proxy.left": _l("%(who)s dejó de actuar en nombre de la otra persona."),
    "proxy.acting_started": _l("%(who)s empezó a actuar en nombre de otra persona."),
    "proxy.acting_stopped": _l("%(who)s dejó de actuar en nombre de otra persona."),
    "app_registration.submitted": _l("El desarrollador envió la solicitud de la aplicación."),
    "app_registration.in_review": _l("Terminaron las comprobaciones automáticas; espera revisión."),
    "app_registration.review_overdue": _l("La revisión de la aplicación venció sin decisión."),
    "app_registration.approved": _l("%(who)s aprobó la aplicación."),
    "app_registration.denied": _l("%(who)s rechazó la aplicación."),
    "app_registration.client_created": _l("Se creó el cliente %(client_id)s."),
    "app_registration.registered": _l("Se enviaron al desarrollador las credenciales."),
    "app_registration.lapsed": _l("La solicitud venció sin revisión."),
    "app_registration.credentials_shown": _l("El desarrollador vio las credenciales."),
    "app_registration.new_credentials_requested": _l(
        "Se pidió un secreto nuevo; el enlace fue al correo de contacto."
    ),
    "proxy.app_given": _l(
        "%(who)s dio a la aplicación %(client)s el expediente de la persona por la que actúa."
    ),
}
"""Sentences by action; %(who)s is the actor, other placeholders come from the event's detail."""

EMAILS = {
    "confirm_email": _l("confirmación del correo electrónico"),
    "user_confirmed": _l("usuario confirmado"),
    "identity_escalated": _l("aviso a la mesa de ayuda"),
    "identity_retry_allowed": _l("otro intento permitido"),
    "registration_closed": _l("registro cerrado"),
    "registration_approved": _l("solicitud aprobada"),
    "registration_denied": _l("solicitud denegada"),
    "registration_lapsed": _l("solicitud vencida"),
    "review_overdue": _l("revisión vencida"),
    "invitation": _l("invitación de empleado"),
    "password_changed": _l("contraseña cambiada"),
    "reset_confirm": _l("confirmar el cambio de contraseña"),
    "reset_link": _l("enlace para una nueva contraseña"),
    "temporary_password": _l("contraseña temporal"),
    "username_reminder": _l("recordatorio de usuario"),
    "email_change_confirm": _l("confirmar la nueva dirección de correo electrónico"),
    "email_change_requested": _l("aviso de un pedido de cambio de correo electrónico"),
    "email_change_applied": _l("aviso de cambio de correo electrónico, con enlace para deshacerlo"),
    "email_address_in_use": _l("aviso de dirección de correo electrónico ya usada"),
    "proxy_notice": _l("aviso sobre un acceso en nombre de otra persona"),
    "app_registration": _l("aviso sobre la solicitud de una aplicación de salud"),
}
"""The e-mails by template, as the audit log names them."""

ACTION_GROUPS = {
    "registration": _l("Registros"),
    "review": _l("Decisiones de revisión"),
    "identity": _l("Validación de identidad"),
    "case": _l("Casos de la mesa de ayuda"),
    "email": _l("Correos enviados"),
    "login": _l("Inicios de sesión"),
    "password": _l("Contraseñas"),
    "email_change": _l("Cambios de correo electrónico"),
    "proxy": _l("Accesos en nombre de otra persona"),
    "recovery": _l("Recuperación de cuenta"),
    "invitation": _l("Invitaciones"),
    "employee": _l("Empleados"),
    "staff": _l("Personal"),
    "import": _l("Importaciones"),
}
"""What the audit log can be filtered on: the part of the action before the dot."""


def who(actor: str) -> str:
    if actor.startswith("staff:"):
        return _("%(name)s (personal)", name=actor.removeprefix("staff:"))
    if actor == "applicant":
        return _("El solicitante")
    if actor == "developer":
        return _("El desarrollador")
    if actor == "system":
        return _("El sistema")
    if actor.startswith("user:"):
        return _("El usuario %(id)s", id=actor.removeprefix("user:"))
    if actor.startswith("record:"):
        return _("la historia clínica %(id)s", id=actor.removeprefix("record:"))
    return actor or _("Alguien")


def sentence(event: AuditEvent) -> str:
    """The event as a sentence in the page's language; an unknown action reads as its code."""
    detail = {k: str(v) for k, v in (event.detail or {}).items()}
    values = {**detail, "who": who(event.actor)}
    if event.action == "review.decision_sent":
        values["decision"] = _("aprobó") if event.detail.get("approved") else _("denegó")
    if event.action == "case.resolution_sent":
        values["outcome"] = (
            _("otro intento permitido")
            if detail.get("outcome") == CaseOutcome.ALLOW_RETRY
            else _("registro cerrado")
        )
    if "due_at" in detail:
        try:
            values["due"] = when(datetime.fromisoformat(detail["due_at"]))
        except ValueError:
            values["due"] = detail["due_at"]
    template = SENTENCES.get(event.action)
    if template is None:
        if event.action.startswith("email."):
            template_name = event.action.removeprefix("email.")
            return _(
                "Se envió el correo «%(name)s».", name=EMAILS.get(template_name, template_name)
            )
        if event.action.startswith("import."):
            return _("%(who)s importó registros.", who=values["who"])
        return f"{values['who']}: {event.action}"
    try:
        said = str(template) % values
    except (KeyError, ValueError, TypeError):
        said = f"{values['who']}: {event.action}"
    if detail.get("acting_for"):
        said += " " + _("(actuando en nombre de %(whom)s)", whom=who(detail["acting_for"]))
    return said


def reason(event: AuditEvent) -> str:
    """A free-text reason or note the event carries, shown under its sentence."""
    detail = event.detail or {}
    return str(detail.get("reason") or detail.get("note") or "")
