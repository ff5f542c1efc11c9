"""The staff console: reviewers, help desk and operators, each page checked for its role."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from flask import (
    Blueprint,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import func, literal_column, or_, select, union_all
from wtforms import DateField, PasswordField, SelectField, StringField
from wtforms.validators import Length, Optional

from portal import lockout, two_factor
from portal.audit import add_event
from portal.models import (
    AppRegistration,
    AuditEvent,
    Passkey,
    ProxyGrant,
    Registration,
    StaffRole,
    StaffUser,
    SupportCase,
)
from portal.passwords import verify_password
from processes.account_notice.service import notify_staff
from processes.account_notice.vocabulary import NoticeKind
from processes.app_registration.vocabulary import Step as AppStep
from processes.proxy_grant.vocabulary import Step as ProxyStep
from processes.registration.vocabulary import AWAITING_REVIEW, CaseStatus
from web import second_factor
from web.auth import BAD_CREDENTIALS, _safe_next
from web.db import get_db
from web.forms import CheckedForm, required, strip
from web.sessions import end_session, keep_alive, staff_required

bp = Blueprint("staff", __name__, url_prefix="/staff")

STAFF_LOCKOUT = 5

CONSOLE_PAGES: list[tuple[str, object, str]] = [
    ("staff.audit", _l("Registro de auditoría"), ""),
]
"""(endpoint, label, role) of each console page; each area's module adds its own."""


class StaffLoginForm(CheckedForm):
    username = StringField(_l("Usuario"), filters=[strip], validators=[required()])
    password = PasswordField(_l("Contraseña"), validators=[required()])


def visible_portals(staff: StaffUser) -> list[str]:
    return [slug for slug in current_app.extensions["acceso.portals"] if staff.sees_portal(slug)]


def temporal_ui_link(workflow_id: str) -> str:
    settings = current_app.config["SETTINGS"]
    return (
        f"{settings.temporal_ui_url.rstrip('/')}/namespaces/{settings.temporal_namespace}"
        f"/workflows/{workflow_id}"
    )


@bp.app_context_processor
def staff_helpers():
    return {
        "temporal_ui_link": temporal_ui_link,
        "sentence": narrative.sentence,
        "reason": narrative.reason,
        "mismatch_labels": cases.mismatch_labels,
    }


PUBLIC_ENDPOINTS = {"staff.login", "staff.logout"}
"""Staff pages open without a session (each module adds its own); every other one checks roles."""


def claim_attempt(username: str) -> lockout.Attempt:
    """Counts one try at the staff account `username` before its secret is checked."""
    return lockout.claim(
        get_db(), lockout.STAFF_PORTAL, lockout.username_key(username), STAFF_LOCKOUT
    )


def count_failure(db, attempt: lockout.Attempt) -> bool:
    """The claimed attempt's secret was wrong; says whether this one locked the account (only
    the attempt numbered at the threshold does, so concurrent guesses lock and audit once)."""
    if attempt.locks_if_wrong:
        lockout.mark_locked(db, attempt)
        add_event(db, actor="anonymous", action="staff.locked", username=attempt.key)
        staff = db.scalar(select(StaffUser).where(func.lower(StaffUser.username) == attempt.key))
        if staff is not None:
            notify_staff(db, staff, NoticeKind.ACCOUNT_LOCKED)
    db.commit()
    return attempt.locks_if_wrong


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The password step; a right password only opens the second step, never a page."""
    form = StaffLoginForm()
    if form.validate_on_submit():
        db = get_db()
        attempt = claim_attempt(form.username.data)
        if attempt.refused:
            verify_password(None, form.password.data)
            form.form_errors.append(BAD_CREDENTIALS)
            return render_template("staff/login.html", form=form)
        staff = db.scalar(select(StaffUser).where(func.lower(StaffUser.username) == attempt.key))
        if (
            staff is None
            or not staff.active
            or not verify_password(staff.password_hash if staff else None, form.password.data)
        ):
            count_failure(db, attempt)
            form.form_errors.append(BAD_CREDENTIALS)
            return render_template("staff/login.html", form=form)
        lockout.release(db, attempt)
        db.commit()
        second_factor.begin("staff", staff.id, next=_safe_next(request.args.get("next")) or "")
        if two_factor.factor_of(db, staff) is None and not staff_passkeys(db, staff):
            return redirect(url_for("staff.enrol"))
        return redirect(url_for("staff.second_step"))
    return render_template("staff/login.html", form=form)


@bp.post("/logout")
def logout():
    end_session()
    flash(_("Cerró su sesión."), "info")
    return redirect(url_for("staff.login"))


@bp.post("/session/keepalive")
@staff_required()
def keepalive():
    """The idle warning's "stay signed in": marks the session as seen, changes nothing else."""
    return jsonify(idle_seconds=keep_alive())


@bp.get("/")
@staff_required()
def home():
    staff: StaffUser = current_user.account
    pages = [
        (endpoint, label)
        for endpoint, label, role in CONSOLE_PAGES
        if not role or staff.has_role(role)
    ]
    return render_template("staff/home.html", staff=staff, pages=pages, counts=work_counts(staff))


def work_counts(staff: StaffUser) -> list[dict]:
    """Per portal this person may work on: applications, proxy requests and health apps waiting
    for review, how many of each are overdue, and open help-desk cases; one grouped query
    whatever the number of portals."""
    portals = current_app.extensions["acceso.portals"]
    reviewer = staff.has_role(StaffRole.REVIEWER)
    review_in = reviews.review_portals(staff) if reviewer else []
    decide_in = visible_portals(staff) if reviewer else []
    cases_in = cases.case_portals(staff) if staff.has_role(StaffRole.SUPPORT) else []
    parts = []

    def waiting(kind: str, model, portals_in: list[str], *where) -> None:
        base = (model.portal.in_(portals_in), *where)
        parts.append(
            select(model.portal, literal_column(f"'{kind}'"), func.count())
            .where(*base)
            .group_by(model.portal)
        )
        parts.append(
            select(model.portal, literal_column(f"'{kind}_overdue'"), func.count())
            .where(*base, model.overdue.is_(True))
            .group_by(model.portal)
        )

    if review_in:
        waiting("pending", Registration, review_in, Registration.status.in_(AWAITING_REVIEW))
    if decide_in:
        waiting("proxies", ProxyGrant, decide_in, ProxyGrant.status == ProxyStep.IN_REVIEW)
        waiting("apps", AppRegistration, decide_in, AppRegistration.status == AppStep.IN_REVIEW)
    if cases_in:
        open_cases = select(SupportCase.portal, literal_column("'cases'"), func.count()).where(
            SupportCase.portal.in_(cases_in), SupportCase.status == CaseStatus.OPEN
        )
        parts.append(open_cases.group_by(SupportCase.portal))
    found: dict[tuple[str, str], int] = {}
    if parts:
        found = {(portal, kind): n for portal, kind, n in get_db().execute(union_all(*parts))}
    rows = []
    for slug, portal in portals.items():
        decisions = {
            kind: (found.get((slug, kind), 0), found.get((slug, f"{kind}_overdue"), 0))
            for kind in ("proxies", "apps")
            if found.get((slug, kind))
        }
        if slug not in review_in and slug not in cases_in and not decisions:
            continue
        rows.append(
            {
                "portal": portal,
                "reviews": slug in review_in,
                "cases": slug in cases_in,
                "pending": found.get((slug, "pending"), 0),
                "overdue": found.get((slug, "pending_overdue"), 0),
                "open_cases": found.get((slug, "cases"), 0),
                "proxies": decisions.get("proxies"),
                "apps": decisions.get("apps"),
            }
        )
    return rows


class AuditFilterForm(CheckedForm):
    """The audit log's filters: who, what, which portal, between which days (all optional)."""

    class Meta:
        csrf = False  # a GET search changes nothing

    actor = StringField(_l("Quién"), filters=[strip], validators=[Optional(), Length(max=100)])
    action = SelectField(_l("Qué"), validators=[Optional()], validate_choice=False)
    portal = SelectField(_l("Portal"), validators=[Optional()], validate_choice=False)
    since = DateField(_l("Desde"), validators=[Optional()])
    until = DateField(_l("Hasta"), validators=[Optional()])


@bp.get("/audit")
@staff_required(*StaffRole)
def audit():
    staff: StaffUser = current_user.account
    portals = current_app.extensions["acceso.portals"]
    visible = visible_portals(staff)
    form = AuditFilterForm(request.args)
    form.action.choices = [("", _("Todo"))] + [
        (key, str(label)) for key, label in narrative.ACTION_GROUPS.items()
    ]
    form.portal.choices = [("", _("Todos"))] + [(slug, str(portals[slug].name)) for slug in visible]
    workflow_id = request.args.get("workflow_id", "")
    query = select(AuditEvent).where(AuditEvent.portal.in_([*visible, ""]))
    if form.validate():
        if form.actor.data:
            query = query.where(AuditEvent.actor.contains(form.actor.data, autoescape=True))
        if form.action.data in narrative.ACTION_GROUPS:
            query = query.where(
                or_(
                    AuditEvent.action == form.action.data,
                    AuditEvent.action.startswith(form.action.data + ".", autoescape=True),
                )
            )
        if form.portal.data in visible:
            query = query.where(AuditEvent.portal == form.portal.data)
        if form.since.data:
            query = query.where(AuditEvent.at >= _day_start(form.since.data))
        if form.until.data:
            query = query.where(AuditEvent.at < _day_start(form.until.data) + timedelta(days=1))
    if workflow_id:
        query = query.where(AuditEvent.workflow_id == workflow_id)
    events = get_db().scalars(query.order_by(AuditEvent.id.desc()).limit(200)).all()
    return render_template(
        "staff/audit.html",
        events=events,
        workflow_id=workflow_id,
        form=form,
    )


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def staff_passkeys(db, staff: StaffUser) -> list[Passkey]:
    return db.scalars(select(Passkey).where(Passkey.staff_id == staff.id)).all()


from web.staff import (  # noqa: E402  (area modules add their routes to bp)
    account_access,  # noqa: E402,F401  (an applicant's sessions, applications, events, status)
    admin,  # noqa: E402,F401  (staff administration)
    apps,  # noqa: E402,F401  (third-party health apps: review queue and decisions)
    cases,  # noqa: E402,F401  (member help-desk cases)
    email_change,  # noqa: E402,F401  (the help desk changes an applicant's e-mail address)
    helpdesk,  # noqa: E402,F401  (applicant accounts: unlock, reset second factor)
    narrative,  # noqa: E402,F401  (audit events as sentences)
    passkeys,  # noqa: E402,F401  (WebAuthn as a staff second factor)
    proxies,  # noqa: E402,F401  (proxy access: review, timeline, ending a grant)
    reviews,  # noqa: E402,F401  (provider applications: queue and decisions)
    signin,  # noqa: E402,F401  (the second sign-in step and enrolment)
)
