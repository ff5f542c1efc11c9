"""Proxy access in the staff console: requests for a child (or for an adult who cannot consent)
waiting for review, each grant's timeline, and ending a grant with a note."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import SelectField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import ValidationError

from processes.proxy_grant import service
from processes.proxy_grant.vocabulary import LIVE, Decision, Step
from web.db import get_db
from web.forms import CheckedForm, required, staff_text
from web.sessions import staff_required
from web.staff import CONSOLE_PAGES, bp, temporal_ui_link, visible_portals

CONSOLE_PAGES.append(("staff.proxies", _l("Accesos en nombre de otra persona"), "reviewer"))


class ProxyDecisionForm(CheckedForm):
    decision = SelectField(
        _l("Decisión"),
        choices=[
            SelectChoice("", _l("Elija una decisión")),
            SelectChoice(Decision.APPROVE, _l("Aprobar")),
            SelectChoice(Decision.DECLINE, _l("Rechazar")),
        ],
        validators=[required()],
    )
    reason = staff_text(
        _l("Motivo"),
        _l("Se envía por correo a quien pidió el acceso. Obligatorio para rechazar."),
        optional=True,
    )

    def validate_reason(self, field):
        if self.decision.data == Decision.DECLINE and not field.data:
            raise ValidationError(
                _l("Escriba el motivo del rechazo: se le envía a quien lo pidió.")
            )


class EndGrantForm(CheckedForm):
    note = staff_text(_l("Nota"))


def _grant(reference: str):
    grant = service.grant_by_reference(get_db(), reference)
    if grant is None or grant.portal not in visible_portals(current_user.account):
        abort(404)
    return grant


@bp.route("/proxies")
@staff_required("reviewer")
def proxies():
    db = get_db()
    portals = visible_portals(current_user.account)
    return render_template(
        "staff/proxies.html",
        waiting=service.waiting_for_review(db, portals),
        recent=service.recent_grants(db, portals),
    )


def _detail(grant, decision: ProxyDecisionForm, end: EndGrantForm, status: int = 200):
    db = get_db()
    return render_template(
        "staff/proxy.html",
        item=service.view_of(db, grant),
        events=service.timeline(db, grant),
        decision_form=decision,
        end_form=end,
        decidable=grant.status == Step.IN_REVIEW,
        endable=grant.status in LIVE,
        temporal_link=temporal_ui_link(grant.workflow_id),
    ), status


@bp.route("/proxies/<reference>")
@staff_required("reviewer")
def proxy(reference: str):
    return _detail(_grant(reference), ProxyDecisionForm(), EndGrantForm())


@bp.route("/proxies/<reference>/decision", methods=["POST"])
@staff_required("reviewer")
def decide_proxy(reference: str):
    grant = _grant(reference)
    form = ProxyDecisionForm()
    if not form.validate_on_submit():
        return _detail(grant, form, EndGrantForm(), 422)
    decided = service.review(
        get_db(),
        grant,
        reviewer=f"staff:{current_user.account.username}",
        decision=Decision(form.decision.data),
        reason=form.reason.data or "",
    )
    if decided:
        flash(_("Decisión registrada: se le avisa por correo a quien lo pidió."), "success")
    else:
        flash(_("Este pedido ya no espera revisión: no cambió nada."), "info")
    return redirect(url_for("staff.proxy", reference=reference))


@bp.route("/proxies/<reference>/end", methods=["POST"])
@staff_required("reviewer")
def end_proxy(reference: str):
    grant = _grant(reference)
    form = EndGrantForm()
    if not form.validate_on_submit():
        return _detail(grant, ProxyDecisionForm(), form, 422)
    ended = service.end_grant(
        get_db(),
        grant,
        by=f"staff:{current_user.account.username}",
        status=Step.REVOKED,
        note=form.note.data,
    )
    if ended:
        flash(_("El acceso terminó; se les avisa a ambas personas."), "success")
    else:
        flash(_("Este acceso ya había terminado: no cambió nada."), "info")
    return redirect(url_for("staff.proxy", reference=reference))
