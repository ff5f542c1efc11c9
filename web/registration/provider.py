"""The provider portal's registration wizard (seed 000): user information with security
questions, office information, summary, then Finish starts the registration workflow.

Between steps the wizard lives in a `RegistrationDraft` row; the signed cookie holds only the
draft's id, and the password and answers are hashed on step 1, so no secret ever sits in the
cookie or in plaintext in the database."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

from flask import abort, g, redirect, render_template, request, session, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete
from stdnum import luhn
from stdnum.us import ein
from wtforms import PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import EqualTo, Length, Optional, Regexp, ValidationError

from portal.models import (
    RegistrationDraft,
    utcnow,
)
from portal.passwords import hash_answer, hash_password
from portal.tokens import token_hash
from processes.registration import service
from web import once
from web.db import get_db
from web.forms import (
    CheckedForm,
    PortalPassword,
    e164_phone,
    email_field,
    required,
    strip,
    username_field,
)
from web.registration import bp, flow_view, username_taken

USERNAME_TAKEN = _l("Ese nombre de usuario ya existe. Por favor elija otro.")
DRAFT_COOKIE_KEY = "provider_draft"
DRAFT_LIFETIME = timedelta(days=1)
PHONE_REGIONS = ("US", "PR")


def normalise_phone(raw: str) -> str | None:
    """E.164 for a valid number, read as US/Puerto Rico unless it carries its own +country."""
    return e164_phone(raw, PHONE_REGIONS)


def valid_npi(raw: str) -> bool:
    """10 digits whose last is the Luhn check digit over the prefix 80840 and the first nine."""
    return bool(re.fullmatch(r"\d{10}", raw)) and luhn.is_valid("80840" + raw)


def npi_problem(raw: str) -> str | None:
    digits = re.sub(r"[\s-]", "", raw or "")
    if not re.fullmatch(r"\d{10}", digits):
        return _("El NPI tiene 10 dígitos.")
    if not valid_npi(digits):
        return _("El NPI no es válido: su dígito verificador no corresponde.")
    return None


def tax_id_problem(raw: str) -> str | None:
    if not re.fullmatch(r"\d{2}-?\d{7}", (raw or "").strip()):
        return _("El Tax ID (EIN) tiene 9 dígitos, en la forma 12-3456789.")
    if not ein.is_valid(raw):
        return _("El Tax ID (EIN) no es válido: su prefijo no corresponde a un EIN emitido.")
    return None


class Phone:
    def __call__(self, form, field):
        normalised = normalise_phone(field.data or "")
        if normalised is None:
            raise ValidationError(
                _l("Escriba un número de teléfono válido, por ejemplo 787-555-0123.")
            )
        field.data = normalised


class Npi:
    def __call__(self, form, field):
        problem = npi_problem(field.data)
        if problem:
            raise ValidationError(problem)
        field.data = re.sub(r"[\s-]", "", field.data)


class TaxId:
    def __call__(self, form, field):
        problem = tax_id_problem(field.data)
        if problem:
            raise ValidationError(problem)
        field.data = ein.format(field.data)


def _text(label, max_length: int, optional: bool = False, **kwargs):
    validators = [Optional()] if optional else [required()]
    validators.append(
        Length(max=max_length, message=_l("Como máximo %(n)s caracteres.", n=max_length))
    )
    return StringField(label, filters=[strip], validators=validators, **kwargs)


class ProviderUserFormBase(CheckedForm):
    first_name = _text(_l("Nombre"), 100)
    last_name = _text(_l("Apellidos"), 100)
    email = email_field(_l("Correo electrónico"))
    phone = StringField(_l("Teléfono"), filters=[strip], validators=[required(), Phone()])
    username = username_field(_l("Usuario"))


def user_form(draft_user: dict) -> CheckedForm:
    """Step 1's form for this portal's policy: its number of security questions, and the
    password and answers optional when going back to a step already completed."""
    portal = g.portal
    count = portal.policy.security_question_count
    keeping = bool(draft_user.get("password_hash"))
    first = [Optional()] if keeping else [required()]
    attrs = {
        "password": PasswordField(_l("Contraseña"), validators=[*first, PortalPassword()]),
        "password_confirm": PasswordField(
            _l("Repetir contraseña"),
            validators=[
                *([] if keeping else [required()]),
                EqualTo("password", message=_l("Las contraseñas no coinciden.")),
            ],
        ),
    }
    choices = [SelectChoice("", _l("Elija una pregunta"))] + [
        SelectChoice(q.source, q) for q in portal.security_questions
    ]
    for n in range(1, count + 1):
        attrs[f"security_question_{n}"] = SelectField(
            _l("Pregunta de seguridad %(n)s", n=n), choices=choices, validators=[required()]
        )
        attrs[f"security_answer_{n}"] = PasswordField(
            _l("Respuesta %(n)s", n=n),
            filters=[strip],
            validators=[
                *([Optional()] if keeping else [required()]),
                Length(max=100, message=_l("Como máximo %(n)s caracteres.", n=100)),
            ],
        )
    form_class = type("ProviderUserForm", (ProviderUserFormBase,), attrs)
    return form_class(
        data={k: v for k, v in draft_user.items() if k in FORM_KEPT} | questions_of(draft_user)
    )


FORM_KEPT = service.APPLICANT_SHOWN


def questions_of(draft_user: dict) -> dict:
    return {f"security_question_{n}": q for n, q in enumerate(draft_user.get("questions", []), 1)}


class OfficeForm(CheckedForm):
    organization_name = _text(
        _l("Nombre de la organización"),
        200,
        description=_l(
            "El grupo, corporación o facilidad contratada; si es proveedor individual, su nombre "
            "completo."
        ),
    )
    tax_id = StringField(
        _l("Tax ID (seguro social patronal, EIN)"),
        filters=[strip],
        validators=[required(), TaxId()],
    )
    npi = StringField(
        _l("NPI (National Provider Identifier)"), filters=[strip], validators=[required(), Npi()]
    )
    address_line1 = _text(_l("Dirección física"), 200)
    address_line2 = _text(_l("Dirección (línea 2)"), 200, optional=True)
    city = _text(_l("Ciudad"), 100)
    state = StringField(
        _l("Estado"),
        filters=[strip, lambda v: v.upper() if isinstance(v, str) else v],
        validators=[
            required(),
            Regexp(r"^[A-Z]{2}$", message=_l("Use la abreviatura de dos letras, por ejemplo PR.")),
        ],
    )
    postal_code = StringField(
        _l("Código postal"),
        filters=[strip],
        validators=[
            required(),
            Regexp(
                r"^\d{5}(-\d{4})?$", message=_l("Escriba un código postal de 5 dígitos (o ZIP+4).")
            ),
        ],
    )


OFFICE_FIELDS = (
    "organization_name",
    "tax_id",
    "npi",
    "address_line1",
    "address_line2",
    "city",
    "state",
    "postal_code",
)


# The draft: one row per wizard in progress, found through an id in the signed session.
def _draft(create: bool = False) -> RegistrationDraft | None:
    db = get_db()
    raw = session.get(DRAFT_COOKIE_KEY)
    row = db.get(RegistrationDraft, token_hash(raw)) if raw else None
    if row is not None and (
        row.portal != g.portal.slug or row.created_at < utcnow() - DRAFT_LIFETIME
    ):
        row = None
    if row is None and create:
        db.execute(
            delete(RegistrationDraft).where(
                RegistrationDraft.created_at < utcnow() - DRAFT_LIFETIME
            )
        )
        raw = secrets.token_urlsafe(32)
        row = RegistrationDraft(id=token_hash(raw), portal=g.portal.slug, data={})
        db.add(row)
        session[DRAFT_COOKIE_KEY] = raw
    return row


def _save(row: RegistrationDraft, **parts: dict) -> None:
    row.data = {**row.data, **parts}
    get_db().commit()


def _provider_only() -> None:
    if g.portal.flow != "provider":
        abort(404)


@flow_view("provider")
def register():
    """Step 1: the user's (or the local administrator's) details and security questions."""
    draft = _draft()
    kept = dict(draft.data.get("user", {})) if draft else {}
    form = user_form(kept)
    if form.is_submitted():
        # Both run, so every problem shows at once beside its field.
        valid, distinct = form.validate(), _distinct_questions(form)
        user_data = _step_one(form, kept) if valid and distinct else None
        if user_data is not None:
            draft = draft or _draft(create=True)
            _save(draft, user=user_data)
            return redirect(url_for("registration.provider_office"))
    return render_template(
        "registration/provider_user.html",
        form=form,
        keeping=bool(kept.get("password_hash")),
        count=g.portal.policy.security_question_count,
    )


def _distinct_questions(form) -> bool:
    seen: set[str] = set()
    ok = True
    for n in range(1, g.portal.policy.security_question_count + 1):
        field = form[f"security_question_{n}"]
        if field.data and field.data in seen:
            field.errors = [*field.errors, _("Elija preguntas distintas.")]
            ok = False
        seen.add(field.data)
    return ok


def _step_one(form, kept: dict) -> dict | None:
    """The step's data with the password and answers hashed, or None after adding errors."""
    count = g.portal.policy.security_question_count
    ok = True
    if username_taken(form.username.data):
        form.username.errors.append(USERNAME_TAKEN)
        ok = False
    questions = [form[f"security_question_{n}"].data for n in range(1, count + 1)]
    old_questions = kept.get("questions", [])
    old_hashes = kept.get("answer_hashes", [])
    hashes = []
    for n, question in enumerate(questions, 1):
        answer = form[f"security_answer_{n}"].data
        if answer:
            hashes.append(hash_answer(answer))
        elif n <= len(old_hashes) and old_questions[n - 1] == question:
            hashes.append(old_hashes[n - 1])
        else:
            form[f"security_answer_{n}"].errors.append(_("Este campo es obligatorio."))
            ok = False
    if not ok:
        return None
    return {
        **{key: form[key].data for key in FORM_KEPT},
        "password_hash": (
            hash_password(form.password.data) if form.password.data else kept["password_hash"]
        ),
        "questions": questions,
        "answer_hashes": hashes,
    }


@bp.route("/register/office", methods=["GET", "POST"])
def provider_office():
    """Step 2: the office or facility."""
    _provider_only()
    draft = _draft()
    if draft is None or "user" not in draft.data:
        return redirect(url_for("registration.register"))
    if request.method == "POST" and request.form.get("action") == "previous":
        # Back keeps what was typed here, even unfinished; it is checked again on the way in.
        typed = {key: request.form.get(key, "").strip()[:200] for key in OFFICE_FIELDS}
        _save(draft, office_typed=typed)
        return redirect(url_for("registration.register"))
    form = OfficeForm(data=draft.data.get("office_typed") or draft.data.get("office", {}))
    if form.validate_on_submit():
        _save(draft, office={key: form[key].data or "" for key in OFFICE_FIELDS}, office_typed={})
        return redirect(url_for("registration.provider_summary"))
    return render_template("registration/provider_office.html", form=form)


class SummaryForm(once.SubmitOnceForm):
    """Only the CSRF token: the data is the draft's."""


@bp.route("/register/summary", methods=["GET", "POST"])
def provider_summary():
    """Step 3: everything entered (never the password or the answers); Finish or go back."""
    _provider_only()
    form = SummaryForm()
    if earlier := once.earlier():
        return redirect(earlier)
    draft = _draft()
    if draft is None or "user" not in draft.data:
        return redirect(url_for("registration.register"))
    if "office" not in draft.data:
        return redirect(url_for("registration.provider_office"))
    shown = {q.source: q for q in g.portal.security_questions}  # in the reader's language
    if form.validate_on_submit():
        if request.form.get("action") == "previous":
            return redirect(url_for("registration.provider_office"))
        if request.form.get("action") == "finish":
            reference = _finish(draft, form)
            if reference is not None:
                return redirect(url_for("registration.done", reference=reference))
    return render_template(
        "registration/provider_summary.html",
        form=form,
        user=draft.data["user"],
        questions=[shown.get(q, q) for q in draft.data["user"].get("questions", [])],
        office=draft.data["office"],
    )


def _finish(draft: RegistrationDraft, form: SummaryForm) -> str | None:
    """Stores office, account (hashes only) and read model, then starts the workflow."""
    db = get_db()
    if not username_taken(draft.data["user"]["username"]):
        reference = service.submit_provider(
            db,
            g.portal,
            draft,
            str(get_locale() or "es"),
            lambda reference: once.remember(db, url_for("registration.done", reference=reference)),
        )
        if reference is not None:
            session.pop(DRAFT_COOKIE_KEY, None)
            return reference
    form.form_errors.append(
        _("Ese nombre de usuario ya existe. Vuelva al primer paso y elija otro.")
    )
    return None
