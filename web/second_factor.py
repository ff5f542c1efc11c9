"""The second sign-in step shared by staff and applicants: the `code` form, the clock, and the
half-signed-in state that lives only in the signed session cookie and opens no page."""

from __future__ import annotations

import time

from flask import current_app, session
from flask_babel import lazy_gettext as _l
from wtforms import StringField

from portal.codec import at_rest_keys
from web.forms import CheckedForm, required, strip

PENDING_KEY = "second_factor"
ENROL_SECRET_KEY = "second_factor_secret"
PENDING_SECONDS = 300
"""Password accepted, code not yet: this long to type it before the password is asked again."""

# Only shown after the right password: at the first step a locked account looks like a wrong
# password (its owner is told by e-mail), but here the person has already proved who they are.
LOCKED_MESSAGE = _l(
    "Su usuario está bloqueado por múltiples intentos fallidos. Para desbloquearlo use la opción "
    "“Recuperar contraseña”."
)
STAFF_LOCKED_MESSAGE = _l(
    "Su usuario está bloqueado por múltiples intentos fallidos. Pida a un administrador de la "
    "consola que lo desbloquee."
)
"""Staff have no self-service recovery: an admin unlocks them (and the e-mail says so)."""
WRONG_CODE = _l("El código no es correcto o ya fue usado. Pruebe con el código que muestra ahora.")


class CodeForm(CheckedForm):
    code = StringField(
        _l("Código de verificación"),
        filters=[strip],
        validators=[required()],
        description=_l(
            "Los 6 dígitos de su aplicación de autenticación, o un código de recuperación."
        ),
    )


class EnrolForm(CheckedForm):
    code = StringField(
        _l("Código de verificación"),
        filters=[strip],
        validators=[required()],
        description=_l("Los 6 dígitos que muestra ahora la aplicación."),
    )


def keys() -> tuple[tuple[str, bytes], ...]:
    """The keys authenticator secrets are sealed with at rest (the payload-encryption keys)."""
    return at_rest_keys(current_app.config["SETTINGS"])


def now() -> float:
    """Wall-clock seconds; tests put their own clock in app.config["CLOCK"]."""
    return current_app.config.get("CLOCK", time.time)()


def begin(kind: str, account_id: int, **extra) -> None:
    """Remembers that the password was right, and nothing more: no page opens on this."""
    session.pop(ENROL_SECRET_KEY, None)
    session[PENDING_KEY] = {"kind": kind, "id": account_id, "at": now(), **extra}


def pending(kind: str) -> dict | None:
    state = session.get(PENDING_KEY)
    if not state or state.get("kind") != kind or now() - state.get("at", 0) > PENDING_SECONDS:
        return None
    return state


def clear() -> None:
    session.pop(PENDING_KEY, None)
    session.pop(ENROL_SECRET_KEY, None)


def enrol_secret(new_secret) -> str:
    """The secret being enrolled stays the same across reloads of the page until confirmed."""
    secret = session.get(ENROL_SECRET_KEY)
    if not secret:
        secret = new_secret()
        session[ENROL_SECRET_KEY] = secret
    return secret
