"""The patient portal's single registration form (seed 002)."""

from __future__ import annotations

from flask import g, redirect, render_template, url_for
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from wtforms import StringField
from wtforms.validators import Length

from portal.passwords import hash_password
from processes.registration import service
from processes.registration.vocabulary import Submission
from web import once
from web.db import get_db
from web.forms import email_field, new_password_fields, required, strip, username_field
from web.registration import flow_view, username_taken

USERNAME_TAKEN = _l("Ese nombre de usuario ya existe. Por favor elija otro.")


class PatientRegistrationForm(once.SubmitOnceForm):
    email = email_field(_l("Email"))
    username = username_field(_l("Usuario"))
    password, password_confirm = new_password_fields(_l("Clave"), _l("Repetir clave"))
    full_name = StringField(
        _l("Nombre"),
        filters=[strip],
        validators=[required(), Length(max=200, message=_l("Como máximo 200 caracteres."))],
        description=_l("Su nombre y apellido completo."),
    )


@flow_view("patient")
def register():
    """Every well-formed submission gets the same answer: being on a clinical record is health
    information, so only the mailbox owner learns whether an account was made (seed 002)."""
    form = PatientRegistrationForm()
    if earlier := once.earlier():
        return redirect(earlier)
    if form.validate_on_submit():
        if username_taken(form.username.data):
            form.username.errors.append(USERNAME_TAKEN)
        elif _submit(form) == Submission.SUBMITTED:
            return redirect(url_for("registration.check_mail"))
        elif earlier := once.earlier():
            return redirect(earlier)
        else:
            form.username.errors.append(USERNAME_TAKEN)
    return render_template("registration/patient.html", form=form)


def _submit(form: PatientRegistrationForm) -> Submission:
    db = get_db()
    account = service.PatientAccount(
        username=form.username.data,
        email=form.email.data,
        full_name=form.full_name.data,
        password_hash=hash_password(form.password.data),
        locale=str(get_locale() or "es"),
    )
    return service.submit_patient(
        db, g.portal, account, lambda: once.remember(db, url_for("registration.check_mail"))
    )
