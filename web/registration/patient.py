"""The patient portal's single registration form (seed 002)."""

from __future__ import annotations

from flask import g, redirect, render_template, url_for
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy.exc import IntegrityError
from wtforms import StringField
from wtforms.validators import Length

from portal.audit import add_event
from portal.models import AccountStatus, Registration, Role, User
from portal.passwords import hash_password
from portal.records import account_of_record, matching_record
from portal.tokens import new_reference
from processes.account_notice.service import notify_address
from processes.account_notice.vocabulary import NoticeKind
from processes.registration.service import begin, registration_id
from processes.registration.vocabulary import Step
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
        elif _submit(form):
            return redirect(url_for("registration.check_mail"))
        elif earlier := once.earlier():
            return redirect(earlier)
        else:
            form.username.errors.append(USERNAME_TAKEN)
    return render_template("registration/patient.html", form=form)


def _submit(form: PatientRegistrationForm) -> bool:
    """One transaction: the account, linked to the clinical record it matched, and its process;
    or a notice to the address. False only when the username was taken by a concurrent
    registration."""
    db = get_db()
    locale = str(get_locale() or "es")
    password_hash = hash_password(form.password.data)
    record = matching_record(db, g.portal.slug, form.email.data, form.full_name.data)
    if record is None:
        return _answer_by_mail(form, locale, NoticeKind.REGISTRATION_NO_RECORD)
    if account_of_record(db, record) is not None:
        return _answer_by_mail(form, locale, NoticeKind.REGISTRATION_EXISTING)
    reference = new_reference()
    user = User(
        portal=g.portal.slug,
        username=form.username.data,
        email=form.email.data,
        full_name=form.full_name.data,
        password_hash=password_hash,
        status=AccountStatus.UNCONFIRMED,
        role=Role.PATIENT,
        locale=locale,
        clinical_record_id=record.id,
    )
    registration = Registration(
        reference=reference,
        portal=g.portal.slug,
        workflow_id=registration_id(g.portal, reference),
        status=Step.CONFIRM_EMAIL,
        user=user,
    )
    once.remember(db, url_for("registration.check_mail"))
    if begin(db, g.portal, registration, user=user):
        return True
    if username_taken(form.username.data) or once.earlier():
        return False
    # A concurrent registration took the record: answered as for any record with an account.
    return _answer_by_mail(form, locale, NoticeKind.REGISTRATION_EXISTING)


def _answer_by_mail(form: PatientRegistrationForm, locale: str, kind: NoticeKind) -> bool:
    """The screen's one answer; the address's owner learns the rest by e-mail."""
    db = get_db()
    notify_address(db, g.portal.slug, form.email.data, locale, kind)
    add_event(db, actor="applicant", action="registration.refused_by_mail", portal=g.portal.slug)
    once.remember(db, url_for("registration.check_mail"))
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        return False
    return True
