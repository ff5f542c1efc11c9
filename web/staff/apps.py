"""Third-party health apps in the staff console: applications waiting for review with their age
and SLA, each one's automatic checks and history, and the decision with its reason."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import SelectField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import ValidationError

from portal.models import StaffRole
from processes.app_registration import service
from processes.app_registration.vocabulary import Decided, Decision, Step
from web.db import get_db
from web.forms import CheckedForm, required, staff_text
from web.sessions import staff_required
from web.staff import CONSOLE_PAGES, bp, temporal_ui_link, visible_portals

CONSOLE_PAGES.append(("staff.apps", _l("Aplicaciones de salud por revisar"), StaffRole.REVIEWER))


class AppDecisionForm(CheckedForm):
    decision = SelectField(
        _l("Decisión"),
        choices=[
            SelectChoice("", _l("Elija una decisión")),
            SelectChoice(Decision.APPROVE, _l("Aprobar")),
            SelectChoice(Decision.DENY, _l("Rechazar")),
        ],
        validators=[required()],
    )
    reason = staff_text(
        _l("Motivo"),
        _l("Se envía por correo al desarrollador. Obligatorio para rechazar."),
        optional=True,
    )

    def validate_reason(self, field):
        if self.decision.data == Decision.DENY and not field.data:
            raise ValidationError(
                _l("Escriba el motivo del rechazo: se le envía al desarrollador.")
            )


def _application(reference: str):
    application = service.application_by_reference(get_db(), reference)
    if application is None or application.portal not in visible_portals(current_user.account):
        abort(404)
    return application


@bp.route("/apps")
@staff_required(StaffRole.REVIEWER)
def apps():
    db = get_db()
    portals = visible_portals(current_user.account)
    return render_template(
        "staff/apps.html",
        waiting=service.waiting_for_review(db, portals),
        recent=service.recent_applications(db, portals),
    )


def _detail(application, form: AppDecisionForm, status: int = 200):
    db = get_db()
    return render_template(
        "staff/app.html",
        item=service.view_of(application),
        client=service.client_of(db, application),
        events=service.timeline(db, application),
        form=form,
        decidable=application.status == Step.IN_REVIEW,
        temporal_link=temporal_ui_link(application.workflow_id),
    ), status


@bp.route("/apps/<reference>")
@staff_required(StaffRole.REVIEWER)
def app_detail(reference: str):
    return _detail(_application(reference), AppDecisionForm())


@bp.route("/apps/<reference>/decision", methods=["POST"])
@staff_required(StaffRole.REVIEWER)
def decide_app(reference: str):
    application = _application(reference)
    form = AppDecisionForm()
    if not form.validate_on_submit():
        return _detail(application, form, 422)
    decided = service.decide(
        get_db(),
        application,
        reviewer=f"staff:{current_user.account.username}",
        decision=Decision(form.decision.data),
        reason=form.reason.data or "",
    )
    if decided == Decided.INSECURE_REDIRECT:
        form.decision.errors.append(
            _(
                "No se puede aprobar: una dirección de retorno no pasó la comprobación de https. "
                "Rechácela con el motivo."
            )
        )
        return _detail(application, form, 422)
    if decided == Decided.DONE:
        flash(_("Decisión registrada: se le avisa por correo al desarrollador."), "success")
    else:
        flash(_("Esta solicitud ya no espera revisión: no cambió nada."), "info")
    return redirect(url_for("staff.app_detail", reference=reference))
