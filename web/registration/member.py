"""The member portal's registration wizard (seed 001): licence agreement, identity check against
the member record, credentials with a secret question, review with certification.

State between steps: the Flask session (a signed cookie) holds only the registration's
reference, the wizard step and the non-secret credential values (username, e-mail, question).
The password and the secret answer are hashed at once and kept server-side in the
registration's `details` until Finish creates the account; nothing secret reaches the cookie.
The identity data shown on the review page is read back from the matched member record.

Help-desk contact: identity comes before credentials, so at escalation the applicant's own
e-mail is unknown. We use the e-mail on the member record of the client ID that was tried
(looked up in the activity, never carried by the workflow) rather than asking for one on the
escalation page: the applicant has not proven who they are, and an address they type could be
anyone's, while the record's address belongs to the member. Where the record has none, the
console says so; `allow_retry` still clears the client ID's strikes, so a new registration works.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import ClassVar

from flask import (
    abort,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from werkzeug.exceptions import TooManyRequests
from wtforms import BooleanField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import AnyOf, Length, Optional, Regexp, ValidationError

from portal.models import (
    MemberRecord,
    Registration,
    SupportCase,
    User,
)
from portal.passwords import hash_answer, hash_password
from processes.links import LinkState
from processes.registration import service
from processes.registration.vocabulary import (
    CaseStatus,
    IdentityCheck,
    IdentityRefusal,
    Outcome,
    Step,
    Submission,
    WizardStep,
)
from temporal.bridge import ProcessRefused, ProcessUnavailable, Refusal
from web import once
from web.db import get_bridge, get_db
from web.forms import CheckedForm, EmailAddress, email_field, new_password_fields, required, strip
from web.forms import username_field as _username_field
from web.ratelimit import check_rate_limit
from web.registration import ConfirmLinkForm, bp, flow_view, username_taken

NOT_VALIDATED = _l(
    "La información personal que usted ha puesto no se puede validar con nuestro sistema; por "
    "favor revísela para asegurarse de que ha puesto todo correctamente y vuelva a intentarlo."
)
USERNAME_TAKEN = _l("Ese nombre de usuario ya existe. Por favor elija otro.")
UNAVAILABLE = _l(
    "No pudimos completar este paso en este momento. Intente de nuevo en unos minutos."
)


class AgreementForm(once.SubmitOnceForm):
    agreement = StringField(
        validators=[required(), AnyOf(["accept", "decline"], message=_l("Elija una opción."))]
    )


MONTHS = (
    _l("enero"),
    _l("febrero"),
    _l("marzo"),
    _l("abril"),
    _l("mayo"),
    _l("junio"),
    _l("julio"),
    _l("agosto"),
    _l("septiembre"),
    _l("octubre"),
    _l("noviembre"),
    _l("diciembre"),
)


class DateOfBirthParts:
    """Day, month and year typed apart (no format to remember), joined into one real date; the
    single clear message goes on the day, where the group's message is shown."""

    birth_day = StringField(_l("Día"), filters=[strip])
    birth_month = SelectField(
        _l("Mes"),
        choices=[SelectChoice("", _l("Elija el mes"))]
        + [SelectChoice(str(n), name) for n, name in enumerate(MONTHS, 1)],
        validate_choice=False,
    )
    birth_year = StringField(_l("Año"), filters=[strip])

    def validate_birth_day(self, field):
        parts = (self.birth_day.data or "", self.birth_month.data or "", self.birth_year.data or "")
        if not all(parts):
            raise ValidationError(
                _l("Escriba su fecha de nacimiento completa: día, mes y año (4 cifras).")
            )
        if not all(p.isdigit() for p in parts) or len(parts[2]) != 4:
            raise ValidationError(_l("Escriba el día y el año con números, por ejemplo 12 y 1985."))
        try:
            born = date(int(parts[2]), int(parts[1]), int(parts[0]))
        except ValueError as error:
            raise ValidationError(
                _l("Esa fecha no existe. Revise el día y el mes de su fecha de nacimiento.")
            ) from error
        if born > date.today():
            raise ValidationError(_l("La fecha de nacimiento no puede ser futura."))
        if born.year < 1900:
            raise ValidationError(_l("Revise el año de su fecha de nacimiento."))

    @property
    def date_of_birth(self) -> str:
        """The joined date, ISO 8601 as the member record keeps it (only after validation)."""
        return date(
            int(self.birth_year.data), int(self.birth_month.data), int(self.birth_day.data)
        ).isoformat()


class IdentityForm(DateOfBirthParts, once.SubmitOnceForm):
    first_name = StringField(
        _l("Nombre"),
        filters=[strip],
        validators=[required(), Length(max=100, message=_l("Como máximo 100 caracteres."))],
    )
    last_name = StringField(
        _l("Apellido"),
        filters=[strip],
        validators=[required(), Length(max=100, message=_l("Como máximo 100 caracteres."))],
    )
    suffix = StringField(
        _l("Sufijo (opcional)"),
        filters=[strip],
        validators=[Optional(), Length(max=16, message=_l("Como máximo 16 caracteres."))],
    )
    client_id = StringField(
        _l("Número de ID del Cliente"),
        filters=[strip],
        validators=[
            required(),
            Length(max=64, message=_l("Como máximo 64 caracteres.")),
            Regexp(r"^[A-Za-z0-9 -]+$", message=_l("Use solo letras y números.")),
        ],
    )


class CredentialsBase(CheckedForm):
    username = _username_field(_l("Nombre de usuario"))
    email = email_field(_l("Correo electrónico"))
    email_confirm = StringField(
        _l("Confirme el correo electrónico"),
        filters=[strip],
        validators=[required(), EmailAddress()],
    )
    password, password_confirm = new_password_fields(_l("Contraseña"), _l("Repita la contraseña"))

    def validate_email_confirm(self, field):
        if self.email.data and field.data and field.data.lower() != self.email.data.lower():
            raise ValidationError(_l("Los correos electrónicos no coinciden."))


_CREDENTIAL_FORMS: dict[tuple[str, ...], type] = {}


def credentials_form_class(questions: tuple[str, ...], count: int) -> type:
    """`security_question_N` / `security_answer_N` for the portal's number of questions."""
    key = (*questions, str(count))
    if key not in _CREDENTIAL_FORMS:
        choices = [SelectChoice("", _l("Elija una pregunta"))] + [
            SelectChoice(str(i), q) for i, q in enumerate(questions)
        ]
        attrs = {}
        for n in range(1, count + 1):
            attrs[f"security_question_{n}"] = SelectField(
                _l("Pregunta secreta %(n)s", n=n) if count > 1 else _l("Pregunta secreta"),
                choices=choices,
                validators=[required()],
            )
            attrs[f"security_answer_{n}"] = PasswordField(
                _l("Respuesta secreta %(n)s", n=n) if count > 1 else _l("Respuesta secreta"),
                filters=[strip],
                validators=[
                    required(),
                    Length(min=2, max=100, message=_l("Entre 2 y 100 caracteres.")),
                ],
            )
        _CREDENTIAL_FORMS[key] = type("MemberCredentialsForm", (CredentialsBase,), attrs)
    return _CREDENTIAL_FORMS[key]


class BackForm(CheckedForm):
    """The "Previo" button every step after the first carries."""

    action = StringField(validators=[AnyOf(["previous", "next"])])


WIZARD = (WizardStep.AGREEMENT, WizardStep.IDENTITY, WizardStep.ACCOUNT, WizardStep.REVIEW)
"""The wizard's pages in order; "Paso N de M" and the back button follow it."""


class ReviewForm(once.SubmitOnceForm):
    certify = BooleanField(_l("CERTIFICACIÓN DE USUARIO"))
    action = StringField(validators=[required(), AnyOf(["finish", "previous"])])


def _question_count() -> int:
    return max(1, g.portal.policy.security_question_count or 1)


# Wizard state ------------------------------------------------------------------------------


@dataclass
class WizardState:
    """What the signed cookie holds between the wizard's pages: the registration's reference,
    the page the applicant is on and the non-secret credential values (never a password)."""

    KEY: ClassVar[str] = "member_registration"

    portal: str
    reference: str
    step: WizardStep = WizardStep.IDENTITY
    account: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls) -> WizardState | None:
        """This portal's wizard in the session, if one is under way."""
        kept = session.get(cls.KEY)
        if not isinstance(kept, dict) or kept.get("portal") != g.portal.slug:
            return None
        try:
            step = WizardStep(kept.get("step", WizardStep.IDENTITY))
        except ValueError:
            step = WizardStep.IDENTITY
        return cls(g.portal.slug, kept.get("reference", ""), step, dict(kept.get("account") or {}))

    def save(self) -> None:
        session[self.KEY] = {
            "portal": self.portal,
            "reference": self.reference,
            "step": str(self.step),
            "account": self.account,
        }
        session.modified = True

    @classmethod
    def forget(cls) -> None:
        session.pop(cls.KEY, None)


def _registration(state: WizardState) -> Registration | None:
    return get_db().scalar(
        select(Registration)
        .where(Registration.reference == state.reference)
        .where(Registration.portal == g.portal.slug)
    )


def _latest_case(workflow_id: str) -> SupportCase | None:
    return get_db().scalar(
        select(SupportCase)
        .where(SupportCase.workflow_id == workflow_id)
        .order_by(SupportCase.round.desc())
        .limit(1)
    )


def _sync_step(state: WizardState, registration: Registration) -> WizardStep:
    """The wizard's step, corrected by what the workflow recorded (help desk, expiry)."""
    if registration.status == Outcome.EXPIRED:
        return WizardStep.EXPIRED
    if registration.status == Outcome.CLOSED:
        return WizardStep.CLOSED
    if registration.user_id is not None:
        return WizardStep.DONE
    step = state.step
    if registration.status == Step.ESCALATED or step == WizardStep.ESCALATED:
        case = _latest_case(registration.workflow_id)
        if case is not None and case.status == CaseStatus.RETRY_ALLOWED:
            step = WizardStep.IDENTITY
        elif case is not None and case.status == CaseStatus.CLOSED:
            return WizardStep.CLOSED
        else:
            step = WizardStep.ESCALATED
    state.step = step
    return step


@flow_view("member")
def register():
    if earlier := once.earlier_submission():
        if earlier.started_reference and WizardState.load() is None:
            WizardState(g.portal.slug, earlier.started_reference).save()
        return redirect(earlier.outcome_url)
    state = WizardState.load()
    if state is None:
        return _agreement()
    registration = _registration(state)
    if registration is None:
        WizardState.forget()
        return _agreement()
    step = _sync_step(state, registration)
    if step in WIZARD[1:] and request.form.get("action") == "previous" and BackForm().validate():
        state.step = WIZARD[WIZARD.index(step) - 1]
        state.save()
        return redirect(url_for("registration.register"))
    state.save()
    if step in (WizardStep.EXPIRED, WizardStep.CLOSED):
        WizardState.forget()
        if step == WizardStep.CLOSED:
            flash(
                _("La mesa de ayuda cerró su registro anterior. Puede empezar uno nuevo."), "info"
            )
        else:
            flash(
                _("Su registro anterior venció por inactividad. Puede empezar uno nuevo."), "info"
            )
        return redirect(url_for("registration.register"))
    if step == WizardStep.DONE:
        WizardState.forget()
        return redirect(url_for("registration.done", reference=registration.reference))
    if step == WizardStep.ESCALATED:
        return _escalated(registration)
    if step == WizardStep.ACCOUNT:
        return _credentials(state, registration)
    if step == WizardStep.REVIEW:
        return _review(state, registration)
    if step == WizardStep.AGREEMENT:
        return _agreement(state)
    return _identity(state, registration)


# Step 1: licence agreement -----------------------------------------------------------------


def _agreement(state: WizardState | None = None):
    """The first step; back on it from a started registration, accepting again moves on
    without starting another."""
    form = AgreementForm()
    if form.validate_on_submit():
        if form.agreement.data == "decline":
            WizardState.forget()
            return redirect(url_for("auth.login"))
        if state is not None:
            state.step = WizardStep.IDENTITY
            state.save()
            return redirect(url_for("registration.register"))
        started = _start()
        if started is not None:
            return redirect(url_for("registration.register"))
        form.form_errors.append(UNAVAILABLE)
    return render_template("registration/member_agreement.html", form=form)


def _start() -> str | None:
    """The registration's row and its owed start commit together; the page then asks Temporal
    to start it at once (idempotent, by its ID), so the first identity try finds it running.
    If Temporal is away, the outbox relay starts it when it is back."""
    db = get_db()
    reference = service.start_member(
        db,
        g.portal,
        lambda reference: once.remember(
            db, url_for("registration.register"), started_reference=reference
        ),
    )
    service.start_now(get_bridge(), g.portal, reference)
    WizardState(g.portal.slug, reference).save()
    return reference


# Step 2: identity ----------------------------------------------------------------------------


def _active_account_for(client_id: str | None) -> bool:
    """One client ID, one account: any account not yet ended (active, or waiting for its
    e-mail confirmation) counts; an expired registration deletes its unconfirmed account."""
    if not client_id:
        return False
    return (
        get_db().scalar(
            select(User.id)
            .where(User.portal == g.portal.slug)
            .where(func.upper(User.client_id) == client_id.upper())
            .limit(1)
        )
        is not None
    )


def _existing_account(registration: Registration):
    WizardState.forget()
    service.note_existing_account(get_db(), g.portal, registration)
    return render_template("registration/member_existing.html"), 409


def _identity(state: WizardState, registration: Registration):
    if registration.client_id:
        return _identity_validated(state, registration)
    form = IdentityForm()
    if form.validate_on_submit():
        try:
            check_rate_limit("identity")
        except TooManyRequests as limited:
            return _identity_limited(form, limited)
        try:
            result = service.check_identity(
                get_bridge(),
                registration.workflow_id,
                IdentityCheck(
                    first_name=form.first_name.data,
                    last_name=form.last_name.data,
                    suffix=form.suffix.data or "",
                    date_of_birth=form.date_of_birth,
                    client_id=form.client_id.data,
                ),
                attempt_key=form.form_key.data or "",
            )
        except ProcessRefused as refused:
            if refused.kind == IdentityRefusal.ESCALATED:
                state.step = WizardStep.ESCALATED
                state.save()
                return redirect(url_for("registration.register"))
            if refused.kind == IdentityRefusal.BUSY or (
                refused.kind == Refusal.CLOSED and registration.status == Step.IDENTITY
            ):
                form.form_errors.append(
                    _("Estamos revisando su intento anterior. Espere un momento.")
                )
            else:
                # Past this step already (e.g. matched in another tab): follow the workflow.
                get_db().refresh(registration)
                if registration.client_id:
                    state.step = WizardStep.ACCOUNT
                    state.save()
                return redirect(url_for("registration.register"))
        except ProcessUnavailable:
            form.form_errors.append(UNAVAILABLE)
        else:
            if result.matched:
                get_db().refresh(registration)
                if _active_account_for(registration.client_id):
                    return _existing_account(registration)
                state.step = WizardStep.ACCOUNT
                state.save()
                return redirect(url_for("registration.register"))
            if result.escalated:
                state.step = WizardStep.ESCALATED
                state.save()
                return redirect(url_for("registration.register"))
            form.form_errors.append(NOT_VALIDATED)
            form.form_errors.append(
                _(
                    "Le quedan %(n)s intentos antes de tener que pedir ayuda a la mesa de ayuda.",
                    n=result.tries_left,
                )
            )
            # This attempt is answered: the next press is a new attempt, not a retry of it.
            form.form_key.data = once.new_form_key()
    return render_template("registration/member_identity.html", form=form)


def _identity_limited(form: IdentityForm, limited: TooManyRequests):
    """Too many tries from this connection: the typed data stays, and the page says how long
    to wait (the same for every client ID, so it reveals nothing about the record)."""
    minutes = max(1, math.ceil((limited.retry_after or 60) / 60))
    form.form_errors.append(
        _(
            "Hubo demasiados intentos de validación desde su conexión. Por seguridad, espere "
            "%(minutes)s minutos antes de volver a intentarlo.",
            minutes=minutes,
        )
    )
    page = make_response(render_template("registration/member_identity.html", form=form), 429)
    page.headers["Retry-After"] = str(limited.retry_after or 60)
    return page


def _identity_validated(state: WizardState, registration: Registration):
    """Back on step 2 after the record matched: it cannot be typed again (the workflow has moved
    on), so the page shows what was validated and goes forward."""
    form = BackForm()
    if request.method == "POST" and request.form.get("action") == "next" and form.validate():
        state.step = WizardStep.ACCOUNT
        state.save()
        return redirect(url_for("registration.register"))
    return render_template(
        "registration/member_identity.html", validated=_record_of(registration), form=form
    )


def _escalated(registration: Registration):
    """Further tries are refused by the workflow; the page only says whom to write to."""
    return render_template(
        "registration/member_escalated.html",
        reference=registration.reference,
        helpdesk_email=g.portal.helpdesk_email or g.portal.support_email,
    )


@bp.route("/register/continue/<token>", methods=["GET", "POST"])
def continue_registration(token: str):
    """The help desk's e-mailed link: single use, expiring; its page's POST restores the wizard
    at identity (opening the link, as mail scanners do, uses nothing)."""
    if g.portal.flow != "member":
        abort(404)
    form = ConfirmLinkForm()
    if form.validate_on_submit():
        link = service.use_retry_link(get_db(), g.portal, token)
    else:
        link = service.retry_link(get_db(), g.portal, token)
    if link.state == LinkState.UNKNOWN:
        return render_template("registration/member_link_invalid.html"), 404
    if link.state in (LinkState.EXPIRED, LinkState.USED):
        return render_template("registration/member_link_invalid.html", expired=True), 410
    if link.state == LinkState.USABLE:
        return render_template("registration/member_continue.html", form=form)
    WizardState(g.portal.slug, link.row.reference).save()
    flash(_("Puede volver a validar su información personal."), "info")
    return redirect(url_for("registration.register"))


# Step 3: credentials -------------------------------------------------------------------------


def _credentials(state: WizardState, registration: Registration, form=None):
    count = _question_count()
    questions = g.portal.security_questions
    form_class = credentials_form_class(questions, count)
    kept = "password_hash" in (registration.details or {})
    if form is None:
        form = form_class(data=state.account)
        if kept and request.method == "POST":
            # Previous keeps the password and the answers (as hashes): blank means unchanged.
            if not form.password.data and not form.password_confirm.data:
                form.password.validators = form.password_confirm.validators = ()
            for n in range(1, count + 1):
                answer = form[f"security_answer_{n}"]
                if not answer.data:
                    answer.validators = ()
        if form.validate_on_submit():
            chosen = [form[f"security_question_{n}"].data for n in range(1, count + 1)]
            if len(set(chosen)) < len(chosen):
                form[f"security_question_{count}"].errors.append(_("Elija preguntas distintas."))
            elif username_taken(form.username.data):
                form.username.errors.append(USERNAME_TAKEN)
            else:
                answers = list((registration.details or {}).get("answers") or [None] * count)
                answers += [None] * (count - len(answers))
                for n in range(1, count + 1):
                    typed = form[f"security_answer_{n}"].data
                    if typed:
                        answers[n - 1] = hash_answer(typed)
                service.keep_credentials(
                    get_db(),
                    registration,
                    hash_password(form.password.data) if form.password.data else None,
                    answers[:count],
                )
                state.account = {
                    "username": form.username.data,
                    "email": form.email.data,
                    "email_confirm": form.email_confirm.data,
                    **{f"security_question_{n}": chosen[n - 1] for n in range(1, count + 1)},
                }
                state.step = WizardStep.REVIEW
                state.save()
                return redirect(url_for("registration.register"))
    return render_template("registration/member_account.html", form=form, kept=kept, count=count)


# Step 4: review and finish -------------------------------------------------------------------


def _record_of(registration: Registration) -> MemberRecord | None:
    return get_db().scalar(
        select(MemberRecord)
        .where(MemberRecord.portal == g.portal.slug)
        .where(MemberRecord.client_id == registration.client_id)
    )


def _review(state: WizardState, registration: Registration):
    form = ReviewForm()
    account = state.account
    record = _record_of(registration)
    if record is None or not account:
        state.step = WizardStep.ACCOUNT if record is not None else WizardStep.IDENTITY
        state.save()
        return redirect(url_for("registration.register"))
    if form.validate_on_submit():
        if form.action.data == "previous":
            state.step = WizardStep.ACCOUNT
            state.save()
            return redirect(url_for("registration.register"))
        if not form.certify.data:
            form.certify.errors.append(
                _("Marque la casilla de certificación de usuario para finalizar.")
            )
        elif _active_account_for(registration.client_id):
            return _existing_account(registration)
        else:
            finished = _finish(state, registration, record)
            if finished is not None:
                return finished
            form.form_errors.append(UNAVAILABLE)
    questions = g.portal.security_questions
    chosen = [
        questions[int(account[f"security_question_{n}"])]
        for n in range(1, _question_count() + 1)
        if account.get(f"security_question_{n}", "").isdigit()
        and int(account[f"security_question_{n}"]) < len(questions)
    ]
    return render_template(
        "registration/member_review.html",
        form=form,
        record=record,
        account=account,
        questions=chosen,
    )


def _finish(state: WizardState, registration: Registration, record: MemberRecord):
    """Finish: the service creates the account and owes the workflow its submission."""
    account = state.account
    db = get_db()
    once.remember(db, url_for("registration.done", reference=registration.reference))
    submitted = service.submit_account(
        db,
        g.portal,
        registration,
        service.MemberAccount(
            username=account["username"],
            email=account["email"],
            question_indexes=[
                int(account[f"security_question_{n}"]) for n in range(1, _question_count() + 1)
            ],
            locale=str(get_locale() or "es"),
            record=record,
        ),
    )
    if submitted == Submission.INCOMPLETE:
        state.step = WizardStep.ACCOUNT
        state.save()
        return redirect(url_for("registration.register"))
    if submitted == Submission.USERNAME_TAKEN:
        state.step = WizardStep.ACCOUNT
        state.save()
        form_class = credentials_form_class(g.portal.security_questions, _question_count())
        form = form_class(data=account)
        form.username.errors.append(USERNAME_TAKEN)
        return _credentials(state, registration, form=form)
    WizardState.forget()
    if submitted == Submission.ENDED:
        flash(_("Su registro venció por inactividad. Puede empezar uno nuevo."), "info")
        return redirect(url_for("registration.register"))
    return redirect(url_for("registration.done", reference=registration.reference))
