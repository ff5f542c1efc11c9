"""Validators shared by every portal's forms; messages are in the applicant's language."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email
from flask import g
from flask_babel import lazy_gettext as _l
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, Regexp, ValidationError

from portal.passwords import password_problems

PASSWORD_MESSAGES = {
    "too_short": _l("La contraseña debe tener al menos %(n)s caracteres."),
    "needs_upper": _l("La contraseña debe incluir al menos una letra mayúscula."),
    "needs_lower": _l("La contraseña debe incluir al menos una letra minúscula."),
    "needs_digit": _l("La contraseña debe incluir al menos un número."),
    "needs_symbol": _l("La contraseña debe incluir al menos un símbolo."),
}


def strip(value):
    return value.strip() if isinstance(value, str) else value


class PortalPassword:
    """The current portal's password rules, one message per broken rule."""

    def __call__(self, form, field):
        rules = g.portal.password_rules
        problems = password_problems(field.data or "", rules)
        if problems:
            raise ValidationError(
                " ".join(str(PASSWORD_MESSAGES[p]) % {"n": rules.min_length} for p in problems)
            )


class EmailAddress:
    """Syntax only (no DNS look-up, so the form answers at once and offline); normalises case."""

    def __call__(self, form, field):
        try:
            field.data = validate_email(field.data or "", check_deliverability=False).normalized
        except EmailNotValidError as error:
            raise ValidationError(
                _l("Escriba una dirección de correo electrónico válida.")
            ) from error


def required():
    return DataRequired(message=_l("Este campo es obligatorio."))


def email_field(label):
    return StringField(label, filters=[strip], validators=[required(), EmailAddress()])


def username_field(label):
    return StringField(
        label,
        filters=[strip],
        validators=[
            required(),
            Length(min=3, max=64, message=_l("Entre 3 y 64 caracteres.")),
            Regexp(
                r"^[A-Za-z0-9._@-]+$",
                message=_l("Use solo letras sin acentos, números y . _ - @"),
            ),
        ],
    )


def new_password_fields(label, repeat_label):
    """A password with the portal's rules and its repeat, which must match."""
    password = PasswordField(label, validators=[required(), PortalPassword()])
    repeat = PasswordField(
        repeat_label,
        validators=[
            required(),
            EqualTo("password", message=_l("Las contraseñas no coinciden.")),
        ],
    )
    return password, repeat
