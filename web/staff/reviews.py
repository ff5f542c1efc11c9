"""Reviewers' queue of provider applications, each with its own page to approve or deny.

Every page renders from the database (the read model the workflow's activities keep, and the
audit trail); a decision is checked against that read model and claimed there, in the same
transaction that owes the workflow its `review_decision` signal (the outbox), the same signal the
Temporal UI or the CLI can send."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import abort, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import or_, select
from stdnum.us import ein
from wtforms import StringField

from portal.models import (
    LIVE_ACCOUNT,
    AuditEvent,
    Office,
    Registration,
    Role,
    StaffRole,
    StaffUser,
    User,
    utcnow,
)
from processes.registration import service
from processes.registration.vocabulary import AWAITING_REVIEW, Step
from web.db import get_db
from web.forms import CheckedForm, staff_text
from web.registration.provider import valid_npi
from web.sessions import staff_required
from web.staff import CONSOLE_PAGES, bp, visible_portals

CONSOLE_PAGES.append(
    ("staff.reviews", _l("Solicitudes de proveedores por revisar"), StaffRole.REVIEWER)
)


class DecisionForm(CheckedForm):
    action = StringField()  # the pressed button: approve or deny
    reason = staff_text(
        _l("Motivo"), _l("Obligatorio para denegar; se envía al solicitante."), optional=True
    )


def review_portals(staff: StaffUser) -> list[str]:
    portals = current_app.extensions["acceso.portals"]
    return [slug for slug in visible_portals(staff) if "review" in portals[slug].steps]


def _clock(registration: Registration, events: list[AuditEvent]) -> dict:
    """When review began and the SLA falls due, from the workflow's own audit event."""
    portal = current_app.extensions["acceso.portals"][registration.portal]
    started = next((e for e in events if e.action == "registration.review_started"), None)
    if started is not None and started.detail.get("due_at"):
        since = started.at
        due = datetime.fromisoformat(started.detail["due_at"])
    else:
        since = registration.updated_at
        due = since + timedelta(hours=portal.policy.approval_sla_hours)
    left = due - utcnow()
    return {"since": since, "due": due, "left": left, "left_text": _duration(left)}


def _duration(left: timedelta) -> str:
    minutes = int(abs(left).total_seconds() // 60)
    text = _("%(h)d h %(m)02d min", h=minutes // 60, m=minutes % 60)
    return text if left >= timedelta(0) else _("vencido hace %(t)s", t=text)


@bp.get("/reviews")
@staff_required(StaffRole.REVIEWER)
def reviews():
    db = get_db()
    pending = db.scalars(
        select(Registration)
        .where(Registration.portal.in_(review_portals(current_user.account)))
        .where(Registration.status.in_(AWAITING_REVIEW))
        .order_by(Registration.created_at)
        .limit(500)
    ).all()
    events: dict[str, list[AuditEvent]] = {}
    if pending:
        for event in db.scalars(
            select(AuditEvent)
            .where(AuditEvent.workflow_id.in_([r.workflow_id for r in pending]))
            .where(AuditEvent.action == "registration.review_started")
        ):
            events.setdefault(event.workflow_id, []).append(event)
    rows = [(r, _clock(r, events.get(r.workflow_id, []))) for r in pending]
    rows.sort(key=lambda row: row[1]["since"])
    return render_template("staff/reviews.html", rows=rows)


def _application(reference: str) -> Registration:
    registration = get_db().scalar(select(Registration).where(Registration.reference == reference))
    if registration is None or registration.portal not in review_portals(current_user.account):
        abort(404)
    return registration


def _duplicates(registration: Registration) -> list[dict]:
    """Other offices with the same NPI or Tax ID whose primary account is live or pending."""
    office = registration.details.get("office", {})
    own = registration.user.office_id if registration.user else None
    query = (
        select(Office, User)
        .join(User, User.office_id == Office.id)
        .where(Office.portal == registration.portal)
        .where(User.role == Role.PROVIDER_PRIMARY)
        .where(User.status.in_(LIVE_ACCOUNT))
        .where(or_(Office.npi == office.get("npi"), Office.tax_id == office.get("tax_id")))
    )
    if own is not None:
        query = query.where(Office.id != own)
    found = []
    db = get_db()
    for other, user in db.execute(query).all():
        reference = db.scalar(select(Registration.reference).where(Registration.user_id == user.id))
        found.append(
            {
                "organization_name": other.organization_name,
                "same_npi": other.npi == office.get("npi"),
                "same_tax_id": other.tax_id == office.get("tax_id"),
                "status": user.status,
                "reference": reference,
            }
        )
    return found


def _render(registration: Registration, form: DecisionForm, status: int = 200):
    db = get_db()
    history = db.scalars(
        select(AuditEvent)
        .where(AuditEvent.workflow_id == registration.workflow_id)
        .order_by(AuditEvent.id)
    ).all()
    office = registration.details.get("office", {})
    checks = {
        "npi": valid_npi(office.get("npi", "")),
        "tax_id": ein.is_valid(office.get("tax_id", "")),
    }
    return render_template(
        "staff/review.html",
        registration=registration,
        applicant=registration.details.get("applicant", {}),
        office=office,
        checks=checks,
        duplicates=_duplicates(registration),
        history=history,
        clock=_clock(registration, list(history)),
        pending=_decidable(registration),
        form=form,
    ), status


def _decidable(registration: Registration) -> bool:
    return registration.status in AWAITING_REVIEW and registration.decided_by is None


@bp.get("/reviews/<reference>")
@staff_required(StaffRole.REVIEWER)
def review(reference: str):
    return _render(_application(reference), DecisionForm())


@bp.post("/reviews/<reference>")
@staff_required(StaffRole.REVIEWER)
def decide(reference: str):
    registration = _application(reference)
    form = DecisionForm()
    if not form.validate_on_submit():
        return _render(registration, form, 400)
    action = form.action.data
    if action not in ("approve", "deny"):
        form.form_errors.append(_("Elija aprobar o denegar."))
        return _render(registration, form, 400)
    if not _decidable(registration):
        form.form_errors.append(_refusal(registration))
        return _render(registration, form, 409)
    if action == "deny" and not form.reason.data:
        form.reason.errors.append(
            _("Escriba el motivo de la denegación; se le enviará al solicitante.")
        )
        return _render(registration, form, 400)
    staff: StaffUser = current_user.account
    if not service.decide(
        get_db(), registration, f"staff:{staff.username}", action == "approve", form.reason.data
    ):
        get_db().refresh(registration)
        form.form_errors.append(_refusal(registration))
        return _render(registration, form, 409)
    if action == "approve":
        flash(
            _(
                "Solicitud %(ref)s aprobada: se activará la cuenta y se avisará al solicitante.",
                ref=reference,
            ),
            "success",
        )
    else:
        flash(
            _("Solicitud %(ref)s denegada: se enviará el motivo al solicitante.", ref=reference),
            "success",
        )
    return redirect(url_for("staff.reviews"))


def _refusal(registration: Registration) -> str:
    if registration.decided_by:
        return _(
            "Esta solicitud ya fue decidida por %(who)s. No se puede decidir de nuevo.",
            who=registration.decided_by,
        )
    if registration.status == Step.CONFIRM_EMAIL:
        return _(
            "El solicitante aún no confirmó su correo electrónico; todavía no se puede decidir."
        )
    return _(
        "Esta solicitud ya está cerrada (%(status)s). No se puede decidir.",
        status=registration.status,
    )
