"""The patient portal's single registration form (seed 002)."""

from __future__ import annotations

from flask import g, redirect, render_template, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from wtforms import StringField
from wtforms.validators import Length

from portal.models import ClinicalRecord, Registration, User
from portal.passwords import hash_password
from portal.tokens import new_reference
from web import processes
from web.db import get_db
from web.forms import CheckedForm, email_field, new_password_fields, required, strip, username_field
from web.registration import UNAVAILABLE, flow_view, store_and_start, username_taken

USERNAME_TAKEN = _l("Ese nombre de usuario ya existe. Por favor elija otro.")


class PatientRegistrationForm(CheckedForm):
    email = email_field(_l("Email"))
    username = username_field(_l("Usuario"))
    password, password_confirm = new_password_fields(_l("Clave"), _l("Repetir clave"))
    full_name = StringField(
        _l("Nombre"),
        filters=[strip],
        validators=[required(), Length(max=200, message=_l("Como máximo 200 caracteres."))],
        description=_l("Su nombre y apellido completo."),
    )


def _email_on_record(email: str) -> bool:
    return (
        get_db().scalar(
            select(ClinicalRecord.id)
            .where(ClinicalRecord.portal == g.portal.slug)
            .where(func.lower(ClinicalRecord.email) == email.lower())
            .limit(1)
        )
        is not None
    )


@flow_view("patient")
def register():
    form = PatientRegistrationForm()
    if form.validate_on_submit():
        if username_taken(form.username.data):
            form.username.errors.append(USERNAME_TAKEN)
        elif not _email_on_record(form.email.data):
            form.form_errors.append(
                _(
                    "No pudimos crear su usuario con ese correo electrónico. El correo debe "
                    "estar registrado en su Historia Clínica: por favor contáctese con la clínica "
                    "para verificarlo."
                )
            )
        else:
            created = _create_account(form)
            if created is not None:
                return redirect(url_for("registration.done", reference=created))
    return render_template("registration/patient.html", form=form)


def _create_account(form: PatientRegistrationForm) -> str | None:
    """Stores the account (hashed password) first, then starts its workflow in one round trip."""
    reference = new_reference()
    user = User(
        portal=g.portal.slug,
        username=form.username.data,
        email=form.email.data,
        full_name=form.full_name.data,
        password_hash=hash_password(form.password.data),
        status="unconfirmed",
        role="patient",
        locale=str(get_locale() or "es"),
    )
    registration = Registration(
        reference=reference,
        portal=g.portal.slug,
        workflow_id=processes.registration_id(g.portal, reference),
        status="confirm_email",
        user=user,
    )
    outcome = store_and_start(user, registration)
    if outcome == "username_taken":
        form.username.errors.append(USERNAME_TAKEN)
        return None
    if outcome == "unavailable":
        form.form_errors.append(UNAVAILABLE)
        return None
    return reference
