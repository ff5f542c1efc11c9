"""Proxy access from both sides: the people who may act for me (invite, revoke, renew), the
people I act for (ask, accept, leave), the e-mailed links (an invitation, an adult's approval),
and acting for someone: the header's switch, and every audit line naming both people."""

from __future__ import annotations

from datetime import date

from flask import abort, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from werkzeug.exceptions import TooManyRequests
from wtforms import HiddenField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional, ValidationError
from wtforms.widgets import DateInput

from portal.audit import ACTING
from processes.links import LinkState
from processes.proxy_grant import service
from processes.proxy_grant.vocabulary import (
    IN_FORCE,
    Access,
    Decision,
    Invited,
    LinkPurpose,
    Relationship,
    Requested,
    Step,
)
from web import once
from web.account import bp
from web.db import get_db
from web.forms import CheckedForm, email_field, required, strip
from web.ratelimit import check_rate_limit
from web.sessions import portal_login_required, sessionless

ACTING_FOR = "acting_for"
"""The session key holding the reference of the grant the signed-in proxy acts under."""

ACCESS_CHOICES = [
    SelectChoice(Access.VIEW, _l("Ver mi información")),
    SelectChoice(Access.MANAGE, _l("Ver y hacer trámites por mí")),
]
RELATIONSHIP_CHOICES = [
    SelectChoice("", _l("Elija la relación")),
    SelectChoice(Relationship.PARENT, _l("Madre o padre")),
    SelectChoice(Relationship.LEGAL_GUARDIAN, _l("Tutor legal")),
    SelectChoice(Relationship.HEALTHCARE_AGENT, _l("Representante de salud o apoderado")),
    SelectChoice(Relationship.OTHER, _l("Otra")),
]
NO_MATCH = _l(
    "No encontramos una historia clínica con ese número y esa fecha de nacimiento. Revise "
    "ambos datos."
)
BLOCKED = _l(
    "Hubo demasiados intentos que no coincidieron. Por seguridad no podemos seguir: "
    "contáctese con nosotros."
)


def _iso_date(field) -> date | None:
    try:
        return date.fromisoformat(field.data) if field.data else None
    except ValueError as error:
        raise ValidationError(_l("Escriba una fecha válida, por ejemplo 2027-03-31.")) from error


class InviteForm(once.SubmitOnceForm):
    email = email_field(_l("Correo electrónico de la persona"))
    access = SelectField(_l("Qué puede hacer"), choices=ACCESS_CHOICES, default=Access.VIEW)
    ends_on = StringField(
        _l("Hasta (opcional)"), filters=[strip], validators=[Optional()], widget=DateInput()
    )

    def validate_ends_on(self, field):
        ends = _iso_date(field)
        if ends is not None and ends <= date.today():
            raise ValidationError(_l("La fecha de fin debe ser posterior a hoy."))


class RequestForm(once.SubmitOnceForm):
    record_number = StringField(
        _l("Número de historia clínica de la persona"),
        filters=[strip],
        validators=[required(), Length(max=64, message=_l("Como máximo %(n)s caracteres.", n=64))],
    )
    date_of_birth = StringField(
        _l("Fecha de nacimiento de la persona"),
        filters=[strip],
        validators=[required()],
        widget=DateInput(),
    )
    relationship = SelectField(
        _l("Su relación con la persona"),
        choices=RELATIONSHIP_CHOICES,
        validators=[required()],
    )
    note = TextAreaField(
        _l("Nota (opcional)"),
        filters=[strip],
        validators=[Length(max=1000, message=_l("Como máximo %(n)s caracteres.", n=1000))],
    )

    def validate_date_of_birth(self, field):
        born = _iso_date(field)
        if born is not None and born > date.today():
            raise ValidationError(_l("La fecha de nacimiento no puede ser futura."))


class ButtonForm(CheckedForm):
    """A button that acts: CSRF-checked, nothing else to type."""


class DecisionButtonForm(CheckedForm):
    decision = HiddenField(validators=[required()])


class SwitchForm(CheckedForm):
    reference = HiddenField()


@bp.before_app_request
def act_for():
    """A proxy's chosen person, checked against the grant on every request: once the grant has
    ended, the next request goes back to the proxy's own view and says why."""
    if request.endpoint == "static" or sessionless():
        return None
    reference = session.get(ACTING_FOR)
    if not reference:
        return None
    if not current_user.is_authenticated or current_user.is_staff:
        session.pop(ACTING_FOR, None)
        return None
    proxy = current_user.account
    acting = service.acting_grant(get_db(), proxy, reference)
    if acting is None:
        session.pop(ACTING_FOR, None)
        flash(_("Ya no puede actuar por esa persona: volvió a su propia cuenta."), "info")
        return redirect(url_for("main.home", portal=proxy.portal))
    g.acting = acting
    g.acting_token = ACTING.set(service.both_people(acting.grant))
    return None


@bp.teardown_app_request
def stop_acting(_error=None):
    token = g.pop("acting_token", None)
    if token is not None:
        ACTING.reset(token)


@bp.app_context_processor
def acting_choices():
    """The header's switch: the proxy themself and each person they may act for now."""
    if not current_user.is_authenticated or current_user.is_staff:
        return {}
    choices = service.grants_as_proxy(get_db(), current_user.account, in_force_only=True)
    if not choices:
        return {}
    return {"acting": g.get("acting"), "acting_choices": choices}


@bp.route("/proxy/act", methods=["POST"])
@portal_login_required
def switch():
    """Acts for the chosen person, or (no reference) goes back to one's own view."""
    form = SwitchForm()
    if not form.validate_on_submit():
        abort(400)
    proxy = current_user.account
    db = get_db()
    previous = g.get("acting")
    if not form.reference.data:
        session.pop(ACTING_FOR, None)
        if previous is not None:
            service.stop_acting(db, proxy, previous.grant)
        flash(_("Ahora actúa por usted."), "success")
        return redirect(url_for("main.home"))
    acting = service.start_acting(db, proxy, form.reference.data)
    if acting is None:
        session.pop(ACTING_FOR, None)
        flash(_("Ya no puede actuar por esa persona: volvió a su propia cuenta."), "info")
        return redirect(url_for("main.home"))
    session[ACTING_FOR] = acting.grant.reference
    flash(_("Ahora actúa por %(name)s.", name=acting.subject_name), "success")
    return redirect(url_for("main.home"))


def _proxies_page(invite_form: InviteForm, status: int = 200):
    user = current_user.account
    db = get_db()
    return render_template(
        "account/proxies.html",
        form=invite_form,
        button=ButtonForm(),
        for_me=service.grants_for_subject(db, user),
        by_me=service.grants_as_proxy(db, user),
        in_force=IN_FORCE,
    ), status


@bp.route("/account/proxies", methods=["GET", "POST"])
@portal_login_required
def proxies():
    """People who may act for me, the invitation form, and the people I act for."""
    form = InviteForm()
    if earlier := once.earlier():
        return redirect(earlier)
    if form.validate_on_submit():
        answer = service.invite(
            get_db(),
            g.portal,
            current_user.account,
            service.Invitation(
                email=form.email.data,
                access=Access(form.access.data),
                ends_on=_iso_date(form.ends_on),
            ),
            accepted_with=lambda db: once.remember(db, url_for("account.proxies")),
        )
        if answer == Invited.SENT:
            flash(
                _(
                    "Le enviamos una invitación a %(email)s. Podrá actuar por usted cuando la "
                    "acepte.",
                    email=form.email.data,
                ),
                "success",
            )
            return redirect(url_for("account.proxies"))
        if answer == Invited.SELF:
            form.email.errors.append(_("Esa es su propia dirección: escriba la de otra persona."))
        else:
            form.email.errors.append(_("Ya invitó a esa persona o ya puede actuar por usted."))
        return _proxies_page(form, 422)
    return _proxies_page(form, 422 if form.errors else 200)


def _owned_grant(reference: str):
    grant = service.grant_by_reference(get_db(), reference)
    if grant is None or grant.portal != g.portal.slug:
        abort(404)
    return grant


@bp.route("/account/proxies/<reference>/revoke", methods=["POST"])
@portal_login_required
def revoke(reference: str):
    """The subject takes the access away: it ends at once."""
    user = current_user.account
    grant = _owned_grant(reference)
    mine = grant.subject_user_id == user.id or (
        user.clinical_record_id is not None and grant.subject_record_id == user.clinical_record_id
    )
    if not mine or not ButtonForm().validate_on_submit():
        abort(404)
    if service.end_grant(get_db(), grant, by=f"user:{user.id}", status=Step.REVOKED):
        flash(_("Listo: esa persona ya no puede actuar por usted."), "success")
    return redirect(url_for("account.proxies"))


@bp.route("/account/proxies/<reference>/leave", methods=["POST"])
@portal_login_required
def leave(reference: str):
    """The proxy stops acting for the person: it ends at once."""
    user = current_user.account
    grant = _owned_grant(reference)
    if grant.proxy_user_id != user.id or not ButtonForm().validate_on_submit():
        abort(404)
    if service.end_grant(get_db(), grant, by=f"user:{user.id}", status=Step.LEFT):
        session.pop(ACTING_FOR, None)
        flash(_("Listo: ya no actúa por esa persona."), "success")
    return redirect(url_for("account.proxies"))


@bp.route("/account/proxies/<reference>/renew", methods=["POST"])
@portal_login_required
def renew(reference: str):
    grant = _owned_grant(reference)
    if not ButtonForm().validate_on_submit():
        abort(400)
    if not service.renew(get_db(), grant, current_user.account):
        abort(404)
    flash(_("Renovado: esa persona podrá seguir actuando por usted."), "success")
    return redirect(url_for("account.proxies"))


@bp.route("/proxy/request", methods=["GET", "POST"])
@portal_login_required
def request_access():
    """A parent or representative asks, proving the record number and birth date together."""
    form = RequestForm()
    if earlier := once.earlier():
        return redirect(earlier)
    if form.validate_on_submit():
        try:
            check_rate_limit("identity")
        except TooManyRequests:
            form.form_errors.append(BLOCKED)
            return render_template("account/proxy_request.html", form=form), 429
        answer = service.request_access(
            get_db(),
            g.portal,
            current_user.account,
            service.AccessRequest(
                record_number=form.record_number.data,
                date_of_birth=_iso_date(form.date_of_birth),
                relationship=Relationship(form.relationship.data),
                note=form.note.data or "",
            ),
            accepted_with=lambda db: once.remember(db, url_for("account.proxies")),
        )
        if answer == Requested.SENT_TO_SUBJECT:
            flash(
                _(
                    "Le pedimos a la persona que apruebe su pedido. Le avisaremos por correo "
                    "electrónico."
                ),
                "success",
            )
            return redirect(url_for("account.proxies"))
        if answer == Requested.SENT_TO_STAFF:
            flash(
                _("Nuestro equipo revisará su pedido. Le avisaremos por correo electrónico."),
                "success",
            )
            return redirect(url_for("account.proxies"))
        if answer == Requested.NO_MATCH:
            form.form_errors.append(NO_MATCH)
        elif answer == Requested.BLOCKED:
            form.form_errors.append(BLOCKED)
        elif answer == Requested.SELF:
            form.record_number.errors.append(
                _("Esa es su propia historia clínica: para usarla no hace falta pedir acceso.")
            )
        else:
            form.form_errors.append(
                _(
                    "Ya tiene un pedido o un acceso para esa persona: vea «Personas por las que actúo»."
                )
            )
        return render_template("account/proxy_request.html", form=form), 422
    status = 422 if form.errors else 200
    return render_template("account/proxy_request.html", form=form), status


def _link_page(link: service.Link, purpose: LinkPurpose, form):
    context = {"state": link.state, "purpose": purpose, "form": form}
    if link.row is not None and link.state == LinkState.USABLE:
        context["view"] = service.view_of(get_db(), link.row)
    if link.state == LinkState.UNKNOWN:
        return render_template("account/proxy_link.html", **context), 404
    if link.state in (LinkState.EXPIRED, LinkState.USED):
        return render_template("account/proxy_link.html", **context), 410
    if link.state == LinkState.WRONG_PERSON:
        return render_template("account/proxy_link.html", **context), 403
    return render_template("account/proxy_link.html", **context)


def _signed_in_here():
    user = current_user.account if current_user.is_authenticated else None
    return user if user is not None and not current_user.is_staff else None


@bp.route("/proxy/accept/<token>", methods=["GET", "POST"])
def accept(token: str):
    """The invitation's link: signed in with an account of this portal, one button accepts."""
    db = get_db()
    form = ButtonForm()
    user = _signed_in_here()
    if user is not None and user.portal == g.portal.slug and form.validate_on_submit():
        link = service.accept(db, g.portal, token, user)
        if link.state == LinkState.DONE_NOW:
            name = service.view_of(db, link.row).subject_name
            flash(_("Aceptó la invitación: ya puede actuar por %(name)s.", name=name), "success")
            return redirect(url_for("account.proxies"))
    else:
        link = service.read_link(db, g.portal, token, LinkPurpose.ACCEPT)
    return _link_page(link, LinkPurpose.ACCEPT, form)


@bp.route("/proxy/consent/<token>", methods=["GET", "POST"])
def consent(token: str):
    """The adult's link: the page says who asks and why; approve or decline is a POST."""
    db = get_db()
    form = DecisionButtonForm()
    if form.validate_on_submit() and form.decision.data in set(Decision):
        link = service.decide_as_subject(
            db, g.portal, token, Decision(form.decision.data), _signed_in_here()
        )
        if link.state == LinkState.DONE_NOW:
            if form.decision.data == Decision.APPROVE:
                flash(_("Aprobado: esa persona ya puede actuar por usted."), "success")
            else:
                flash(_("Rechazado: esa persona no podrá actuar por usted."), "success")
            return redirect(url_for("main.home") if _signed_in_here() else url_for("auth.login"))
    else:
        link = service.read_link(db, g.portal, token, LinkPurpose.CONSENT)
    return _link_page(link, LinkPurpose.CONSENT, form)
