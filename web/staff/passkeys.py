"""Passkeys (WebAuthn) as a staff second factor, through the `webauthn` package: registered
from the signed-in security page, then usable instead of a code at sign-in."""

from __future__ import annotations

import json

from flask import Response, abort, jsonify, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse
from webauthn.helpers.structs import PublicKeyCredentialDescriptor

from portal import two_factor
from portal.audit import add_event
from portal.models import Passkey, StaffUser
from processes.account_notice.service import notify_staff
from processes.account_notice.vocabulary import NoticeKind
from web.db import get_db
from web.sessions import staff_required
from web.staff import CONSOLE_PAGES, PUBLIC_ENDPOINTS, bp, claim_attempt, count_failure
from web.staff.signin import ISSUER, finish_sign_in, pending_staff

PUBLIC_ENDPOINTS.update({"staff.passkey_login_options", "staff.passkey_login"})
CONSOLE_PAGES.append(("staff.security", _l("Seguridad de su cuenta (llaves de acceso)"), ""))
CHALLENGE_KEY = "webauthn_challenge"


def _relying_party() -> tuple[str, str]:
    """The RP ID and origin the browser used; the browser itself binds them to the page."""
    origin = request.host_url.rstrip("/")
    return request.host.split(":")[0], origin


def _challenge(purpose: str) -> bytes | None:
    stored = session.pop(CHALLENGE_KEY, None)
    if not stored or stored.get("purpose") != purpose:
        return None
    return base64url_to_bytes(stored["value"])


def _remember_challenge(purpose: str, challenge: bytes) -> None:
    session[CHALLENGE_KEY] = {"purpose": purpose, "value": bytes_to_base64url(challenge)}


def _credential() -> dict:
    try:
        return json.loads(request.get_data(as_text=True) or "{}")
    except ValueError:
        abort(400)


def _passkeys(staff: StaffUser) -> list[Passkey]:
    return list(get_db().scalars(select(Passkey).where(Passkey.staff_id == staff.id)))


@bp.get("/security")
@staff_required()
def security():
    staff: StaffUser = current_user.account
    return render_template(
        "staff/security.html",
        passkeys=_passkeys(staff),
        has_totp=two_factor.factor_of(get_db(), staff) is not None,
    )


@bp.post("/security/passkey/options")
@staff_required()
def passkey_register_options():
    staff: StaffUser = current_user.account
    rp_id, _origin = _relying_party()
    options = generate_registration_options(
        rp_id=rp_id,
        rp_name=ISSUER,
        user_name=staff.username,
        user_id=f"staff:{staff.id}".encode(),
        user_display_name=staff.full_name or staff.username,
        exclude_credentials=[
            PublicKeyCredentialDescriptor(id=base64url_to_bytes(p.credential_id))
            for p in _passkeys(staff)
        ],
    )
    _remember_challenge("register", options.challenge)
    return _options(options)


def _options(options) -> Response:
    """The library's own JSON of the options (bytes as base64url), as the script expects."""
    return Response(options_to_json(options), mimetype="application/json")


@bp.post("/security/passkey")
@staff_required()
def passkey_register():
    staff: StaffUser = current_user.account
    challenge = _challenge("register")
    if challenge is None:
        return jsonify(error=_("La solicitud venció. Pruebe de nuevo.")), 400
    rp_id, origin = _relying_party()
    try:
        verified = verify_registration_response(
            credential=_credential(),
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origin,
        )
    except InvalidRegistrationResponse:
        return jsonify(error=_("No pudimos registrar la llave de acceso.")), 400
    db = get_db()
    db.add(
        Passkey(
            staff_id=staff.id,
            credential_id=bytes_to_base64url(verified.credential_id),
            public_key=bytes_to_base64url(verified.credential_public_key),
            sign_count=verified.sign_count,
        )
    )
    add_event(
        db,
        actor=f"staff:{staff.username}",
        action="staff.second_factor.enrolled",
        kind="passkey",
    )
    notify_staff(db, staff, NoticeKind.SECOND_FACTOR_ADDED, factor="passkey")
    db.commit()
    return jsonify(redirect=url_for("staff.security"))


@bp.post("/login/passkey/options")
def passkey_login_options():
    staff = pending_staff()
    if staff is None:
        return jsonify(redirect=url_for("staff.login")), 401
    rp_id, _origin = _relying_party()
    options = generate_authentication_options(
        rp_id=rp_id,
        allow_credentials=[
            PublicKeyCredentialDescriptor(id=base64url_to_bytes(p.credential_id))
            for p in _passkeys(staff)
        ],
    )
    _remember_challenge("login", options.challenge)
    return _options(options)


@bp.post("/login/passkey")
def passkey_login():
    staff = pending_staff()
    if staff is None:
        return jsonify(redirect=url_for("staff.login")), 401
    db = get_db()
    attempt = claim_attempt(staff.username)
    if attempt.refused:
        return jsonify(redirect=url_for("staff.login")), 403
    credential = _credential()
    challenge = _challenge("login")
    passkey = db.scalar(
        select(Passkey).where(
            Passkey.staff_id == staff.id, Passkey.credential_id == str(credential.get("id", ""))
        )
    )
    rp_id, origin = _relying_party()
    try:
        if challenge is None or passkey is None:
            raise InvalidAuthenticationResponse("unknown credential or challenge")
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origin,
            credential_public_key=base64url_to_bytes(passkey.public_key),
            credential_current_sign_count=passkey.sign_count,
        )
    except InvalidAuthenticationResponse:
        count_failure(db, attempt)
        return jsonify(error=_("La llave de acceso no fue aceptada.")), 400
    passkey.sign_count = verified.new_sign_count
    return jsonify(redirect=finish_sign_in(staff, "passkey"))
