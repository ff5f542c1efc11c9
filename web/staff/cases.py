"""The help desk's cases: member registrations stopped after too many failed identity tries.

Pages read the database (cases, masked tries, the registration's read model); resolving is the
registration service's `resolve_case`.
"""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import or_, select
from wtforms import StringField
from wtforms.validators import AnyOf

from portal.models import IdentityTry, MemberRecord, Registration, StaffRole, StaffUser, SupportCase
from processes.registration import service
from processes.registration.vocabulary import CaseOutcome, CaseResolution, CaseStatus
from web.db import get_db
from web.forms import CheckedForm, required, staff_text
from web.sessions import staff_required
from web.staff import CONSOLE_PAGES, bp

CONSOLE_PAGES.append(("staff.cases", _l("Casos de la mesa de ayuda"), StaffRole.SUPPORT))


class ResolutionForm(CheckedForm):
    outcome = StringField(
        validators=[
            required(),
            AnyOf(list(CaseOutcome), message=_l("Elija permitir otro intento o cerrar.")),
        ]
    )
    note = staff_text(
        _l("Nota"), _l("Para el registro interno; no se envía al solicitante."), optional=True
    )


def case_portals(staff: StaffUser) -> list[str]:
    """Portals whose cases this staff member may see: all of an unrestricted portal's staff, or
    only staff assigned to it when the portal's config sets `staff_restricted`."""
    portals = current_app.extensions["acceso.portals"]
    return [
        slug
        for slug, portal in portals.items()
        if portal.flow == "member" and (not portal.staff_restricted or staff.sees_portal(slug))
    ]


MISMATCH_LABELS = {
    "client_id": _l("no hay expediente con ese ID del Cliente"),
    "date_of_birth": _l("fecha de nacimiento"),
    "first_name": _l("nombre"),
    "last_name": _l("apellido"),
    "suffix": _l("sufijo"),
}


def mismatch_labels(mismatch: str) -> str:
    """The fields a try got wrong, as the help desk reads them ("fecha de nacimiento, sufijo")."""
    return ", ".join(str(MISMATCH_LABELS.get(f, f)) for f in mismatch.split(",") if f)


def mask_client_id(client_id: str) -> str:
    return "•••" + client_id[-3:] if len(client_id) > 3 else "•••"


@bp.app_template_filter("mask_client_id")
def _mask_filter(value: str) -> str:
    return mask_client_id(value or "")


def _visible_case(case_id: int) -> SupportCase:
    case = get_db().get(SupportCase, case_id)
    if case is None or case.portal not in case_portals(current_user.account):
        abort(404)
    return case


@bp.get("/cases")
@staff_required(StaffRole.SUPPORT)
def cases():
    db = get_db()
    portals = case_portals(current_user.account)
    rows = db.execute(
        select(SupportCase, Registration.status)
        .outerjoin(Registration, Registration.workflow_id == SupportCase.workflow_id)
        .where(SupportCase.portal.in_(portals))
        .where(SupportCase.status == CaseStatus.OPEN)
        .order_by(SupportCase.opened_at)
    ).all()
    resolved = db.execute(
        select(SupportCase, Registration.status)
        .outerjoin(Registration, Registration.workflow_id == SupportCase.workflow_id)
        .where(SupportCase.portal.in_(portals))
        .where(SupportCase.status != CaseStatus.OPEN)
        .order_by(SupportCase.resolved_at.desc())
        .limit(20)
    ).all()
    tries = _tries_by_case([case for case, _status in rows])
    return render_template("staff/cases.html", rows=rows, resolved=resolved, tries=tries)


def _belongs(attempt: IdentityTry, case: SupportCase) -> bool:
    """A try belongs to a case if it was made in its registration or for the same client ID."""
    return attempt.workflow_id == case.workflow_id or bool(
        case.client_id and attempt.client_id == case.client_id and attempt.portal == case.portal
    )


def _tries_by_case(cases_: list[SupportCase]) -> dict[int, list[IdentityTry]]:
    """Every listed case's tries in one query, however many cases are open."""
    if not cases_:
        return {}
    client_ids = [case.client_id for case in cases_ if case.client_id]
    attempts = (
        get_db()
        .scalars(
            select(IdentityTry)
            .where(
                or_(
                    IdentityTry.workflow_id.in_([case.workflow_id for case in cases_]),
                    IdentityTry.client_id.in_(client_ids),
                )
            )
            .order_by(IdentityTry.at)
        )
        .all()
    )
    return {case.id: [a for a in attempts if _belongs(a, case)] for case in cases_}


def _tries_for(case: SupportCase) -> list[IdentityTry]:
    return _tries_by_case([case])[case.id]


@bp.route("/cases/<int:case_id>", methods=["GET", "POST"])
@staff_required(StaffRole.SUPPORT)
def case(case_id: int):
    db = get_db()
    support_case = _visible_case(case_id)
    registration = db.scalar(
        select(Registration).where(Registration.workflow_id == support_case.workflow_id)
    )
    form = ResolutionForm()
    if form.validate_on_submit():
        staff: StaffUser = current_user.account
        resolution = CaseResolution(
            outcome=form.outcome.data, agent=f"staff:{staff.username}", note=form.note.data or ""
        )
        if not service.resolve_case(db, support_case, resolution):
            flash(_("Este caso ya fue resuelto."), "info")
            return redirect(url_for("staff.case", case_id=case_id))
        flash(
            _(
                "Resolución enviada. El caso y el correo al solicitante se actualizan en "
                "unos segundos."
            ),
            "success",
        )
        return redirect(url_for("staff.cases"))
    contact_known = bool(
        support_case.client_id
        and db.scalar(
            select(MemberRecord.email)
            .where(MemberRecord.portal == support_case.portal)
            .where(MemberRecord.client_id == support_case.client_id)
        )
    )
    duplicates = list(
        db.scalars(
            select(SupportCase)
            .where(SupportCase.portal == support_case.portal)
            .where(SupportCase.client_id == support_case.client_id)
            .where(SupportCase.id != support_case.id)
            .where(SupportCase.status == CaseStatus.OPEN)
        )
    )
    return render_template(
        "staff/cases_detail.html",
        case=support_case,
        registration=registration,
        tries=_tries_for(support_case),
        form=form,
        contact_known=contact_known,
        duplicates=duplicates,
    )
