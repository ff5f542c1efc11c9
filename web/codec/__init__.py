"""The Temporal UI's remote codec: decrypts payloads for operators, and only for operators.

Protocol: POST {endpoint}/decode (or /encode) with proto3-JSON `{"payloads": [...]}`, every bytes
field base64; the answer has the same shape. The UI calls it cross-origin from the browser, so the
configured UI origins get CORS (with credentials, for the staff session cookie); the CLI and
scripts use `Authorization: Bearer <ACCESO_CODEC_TOKEN>` instead.
"""

from __future__ import annotations

import hmac
import logging

from flask import Blueprint, current_app, jsonify, request
from flask_login import current_user
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payloads

from portal.codec import CodecKeyError, EncryptionCodec, codec_for

bp = Blueprint("codec", __name__, url_prefix="/codec")
log = logging.getLogger("acceso.codec")

ALLOWED_HEADERS = "Content-Type, X-Namespace, Authorization"
OPERATOR_ROLE = "operator"


def _codec() -> EncryptionCodec:
    codec = current_app.extensions.get("acceso.codec")
    if codec is None:
        codec = current_app.extensions["acceso.codec"] = codec_for(current_app.config["SETTINGS"])
    return codec


def _allowed_origins() -> set[str]:
    raw = current_app.config["SETTINGS"].codec_cors_origins
    return {origin.strip().rstrip("/") for origin in raw.split(",") if origin.strip()}


@bp.before_request
def allow_larger_bodies():
    """A batch of payloads is larger than any form; the codec gets its own (still bounded) size."""
    request.max_content_length = current_app.config["SETTINGS"].codec_max_request_bytes


@bp.after_request
def cors(response):
    """Echo an allowed Origin (never `*`: credentials are allowed), on every answer incl. errors."""
    origin = request.headers.get("Origin", "")
    response.vary.add("Origin")
    if origin and origin.rstrip("/") in _allowed_origins():
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        response.headers["Access-Control-Max-Age"] = "600"
    response.headers["Cache-Control"] = "no-store"
    return response


def _bearer_ok() -> bool:
    expected = current_app.config["SETTINGS"].codec_bearer_token
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if not expected or scheme.lower() != "bearer" or not presented:
        return False
    return hmac.compare_digest(presented.strip().encode(), expected.encode())


def _denied():
    """None when the caller may use the codec; otherwise the 401/403 answer."""
    if _bearer_ok():
        return None
    if current_user.is_authenticated and current_user.is_staff:
        if current_user.account.has_role(OPERATOR_ROLE):
            return None
        return jsonify(error="the codec is for staff with the operator role"), 403
    if request.headers.get("Authorization"):
        return jsonify(error="invalid codec token"), 401
    return jsonify(error="sign in as an operator, or send the codec bearer token"), 401


def _convert(encrypt: bool):
    if request.method == "OPTIONS":
        return "", 204
    denied = _denied()
    if denied is not None:
        return denied
    try:
        payloads = json_format.Parse(request.get_data(as_text=True), Payloads())
    except (json_format.ParseError, DecodeError, ValueError):
        return jsonify(error='expected {"payloads": [...]} in proto3 JSON'), 400
    codec = _codec()
    try:
        converted = [codec.encrypt(p) if encrypt else codec.decrypt(p) for p in payloads.payloads]
    except CodecKeyError as error:
        return jsonify(error=str(error)), 422
    except Exception as error:  # a tampered or truncated ciphertext
        log.warning("codec could not convert payloads: %s", type(error).__name__)
        return jsonify(error="payload could not be decrypted"), 422
    body = json_format.MessageToJson(Payloads(payloads=converted))
    return current_app.response_class(body, mimetype="application/json")


@bp.route("/decode", methods=["POST", "OPTIONS"])
def decode():
    return _convert(encrypt=False)


@bp.route("/encode", methods=["POST", "OPTIONS"])
def encode():
    return _convert(encrypt=True)
