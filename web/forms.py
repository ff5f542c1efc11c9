"""Validators shared by every portal's forms; messages are in the applicant's language."""

from __future__ import annotations

import unicodedata
from functools import lru_cache

import phonenumbers
from babel.support import Translations
from email_validator import EmailNotValidError, validate_email
from flask import current_app, g
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import _FlaskFormCSRF
from wtforms import PasswordField, StringField, TextAreaField
from wtforms.csrf.core import CSRFTokenField
from wtforms.i18n import messages_path
from wtforms.validators import DataRequired, EqualTo, Length, Regexp, ValidationError

from portal.passwords import context_words, password_problems

PASSWORD_MESSAGES = {
    "too_short": _l("La contraseña debe tener al menos %(n)s caracteres."),
    "needs_upper": _l("La contraseña debe incluir al menos una letra mayúscula."),
    "needs_lower": _l("La contraseña debe incluir al menos una letra minúscula."),
    "needs_digit": _l("La contraseña debe incluir al menos un número."),
    "needs_symbol": _l("La contraseña debe incluir al menos un símbolo."),
    "common": _l(
        "Esa contraseña es demasiado común o apareció en filtraciones conocidas: elija otra."
    ),
    "contains_name": _l(
        "La contraseña no puede contener su usuario ni el nombre de la organización o del portal."
    ),
}


def strip(value):
    return value.strip() if isinstance(value, str) else value


SINGLE_LINE_MAX = 200
MULTI_LINE_MAX = 4000
PASSWORD_MAX = 256
"""Ceilings for fields that name none of their own (a password's also bounds argon2's work)."""


def _forbidden(character: str, multi_line: bool) -> bool:
    if multi_line and character in "\n\r\t":
        return False
    return (
        unicodedata.category(character) in ("Cc", "Cf", "Zl", "Zp")
        and character not in "\u200c\u200d"
    )


class SingleLine:
    """No line breaks or control characters: what reaches a header, a log line or a CSV cell
    must be one line of visible text."""

    message = _l("Escriba una sola línea, sin saltos de línea ni caracteres de control.")

    def __init__(self, multi_line: bool = False):
        self.multi_line = multi_line

    def __call__(self, form, field):
        value = field.data if isinstance(field.data, str) else ""
        if value.isprintable():
            return
        if any(_forbidden(character, self.multi_line) for character in value):
            if self.multi_line:
                raise ValidationError(_l("El texto contiene caracteres de control no permitidos."))
            raise ValidationError(self.message)


@lru_cache(maxsize=8)
def _wtforms_translations(locale: str) -> Translations:
    """WTForms' own messages in `locale`, read once per process: Flask-WTF reads and parses
    the catalogue again for every request that builds a form."""
    return Translations.load(messages_path(), [locale], domain="wtforms")


def _has_length(field) -> bool:
    return any(isinstance(v, Length) and v.max not in (None, -1) for v in field.validators)


class TokenWhenShown(CSRFTokenField):
    """The CSRF field, signing this response's token only when the form is rendered: a POST
    answered with a redirect (a sign-in) never shows it. The submitted token is checked as ever."""

    def process(self, *args, **kwargs):
        super(CSRFTokenField, self).process(*args, **kwargs)

    def _value(self):
        if self.current_token is None:
            self.current_token = self.csrf_impl.generate_csrf_token(self)
        return self.current_token


class CSRFWhenShown(_FlaskFormCSRF):
    field_class = TokenWhenShown


class CheckedForm(FlaskForm):
    """Every form of the app: each text field refuses control characters (line breaks too,
    unless it is a text area) and has a maximum length, whether or not its form says so."""

    class Meta(FlaskForm.Meta):
        csrf_class = CSRFWhenShown

        def get_translations(self, form):
            if not current_app.config.get("WTF_I18N_ENABLED", True):
                return super().get_translations(form)
            return _wtforms_translations(str(get_locale()))

        def bind_field(self, form, unbound_field, options):
            field = super().bind_field(form, unbound_field, options)
            if isinstance(field, StringField):
                multi_line = isinstance(field, TextAreaField)
                extra = [SingleLine(multi_line=multi_line)]
                if not _has_length(field):
                    if isinstance(field, PasswordField):
                        ceiling = PASSWORD_MAX
                    else:
                        ceiling = MULTI_LINE_MAX if multi_line else SINGLE_LINE_MAX
                    extra.append(
                        Length(max=ceiling, message=_l("Como máximo %(n)s caracteres.", n=ceiling))
                    )
                field.validators = [*field.validators, *extra]
            return field


def _password_owner(form) -> str:
    """The username the password is for: typed on this form, set by the view, or signed in."""
    typed = getattr(form, "username", None)
    if typed is not None and isinstance(typed.data, str):
        return typed.data
    if g.get("password_username"):
        return g.password_username
    if current_user and current_user.is_authenticated and not current_user.is_staff:
        return current_user.account.username
    return ""


class PortalPassword:
    """The current portal's password rules, one message per broken rule; common passwords and
    the organisation's, portal's or user's own name are refused at registration, change and
    reset alike, since every one of them uses this validator."""

    def __call__(self, form, field):
        rules = g.portal.password_rules
        portal = g.portal
        context = context_words(portal.organisation, portal.name, portal.slug, "Acceso")
        problems = password_problems(
            field.data or "", rules, context=context, username=_password_owner(form)
        )
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


def e164_phone(raw: str, regions: tuple[str, ...]) -> str | None:
    """E.164 for a valid number, read in the first of `regions` it is valid in, unless it
    carries its own +country; None when it is valid in none."""
    for region in regions:
        try:
            number = phonenumbers.parse(raw, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None


def required():
    return DataRequired(message=_l("Este campo es obligatorio."))


def email_field(label):
    return StringField(label, filters=[strip], validators=[required(), EmailAddress()])


def staff_text(label, description="", *, optional: bool = False):
    """A staff console's free-text note or reason: at most 2,000 characters, kept in the audit
    or sent on; required unless `optional`."""
    length = Length(max=2000, message=_l("Como máximo %(n)s caracteres.", n=2000))
    return TextAreaField(
        label,
        filters=[strip],
        validators=[length] if optional else [required(), length],
        description=description,
    )


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
