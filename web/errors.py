"""Every error the app answers is its own page, in the visitor's language, with a way back."""

from __future__ import annotations

import logging

from flask import Flask, current_app, g, jsonify, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from markupsafe import escape
from werkzeug.exceptions import HTTPException, InternalServerError, TooManyRequests

from web.ratelimit import settle_owed

log = logging.getLogger("acceso.errors")

MESSAGES = {
    400: (
        _l("Solicitud no válida"),
        _l("No pudimos procesar lo que envió. Vuelva a intentarlo desde la página anterior."),
    ),
    403: (_l("Acceso denegado"), _l("No tiene permiso para ver esta página.")),
    404: (
        _l("Página no encontrada"),
        _l("La dirección que siguió no existe o ya no está disponible."),
    ),
    405: (_l("Acción no permitida"), _l("Esta página no admite esa acción.")),
    413: (_l("Envío demasiado grande"), _l("Lo que envió supera el tamaño permitido.")),
    429: (
        _l("Demasiados intentos"),
        _l(
            "Hubo demasiados intentos desde su conexión. Espere unos minutos y vuelva a intentarlo."
        ),
    ),
    500: (
        _l("Algo salió mal"),
        _l("Tuvimos un problema al atender su pedido. Vuelva a intentarlo en unos minutos."),
    ),
    503: (
        _l("Servicio no disponible"),
        _l("El servicio no está disponible en este momento. Vuelva a intentarlo en unos minutos."),
    ),
}
KEPT_HEADERS = ("Allow", "Retry-After")


def _home() -> str:
    portal = g.get("portal")
    if portal is None:
        first = request.path.strip("/").split("/", 1)[0]
        portal = current_app.extensions["acceso.portals"].get(first)
        if portal is not None:
            g.portal = portal
    try:
        return url_for("main.home", portal=portal.slug) if portal else url_for("main.index")
    except Exception:  # noqa: BLE001  (an error page must render even when routing is odd)
        return "/"


def render_error(code: int, headers: dict | None = None):
    title, message = MESSAGES.get(code, MESSAGES[500 if code >= 500 else 400])
    try:
        body = render_template(
            "errors/error.html", code=code, title=title, message=message, back=_home()
        )
    except Exception:  # the layout itself failed (e.g. database down): a bare page, no trace
        log.exception("error page failed to render")
        body = f"<!doctype html><title>{escape(title)}</title><h1>{escape(title)}</h1><p>{escape(message)}</p><p><a href='/'>Acceso</a></p>"
    return body, code, headers or {}


def handle_http_error(error: HTTPException):
    if not isinstance(error, TooManyRequests):
        try:
            settle_owed()
        except TooManyRequests as refused:
            error = refused
    code = error.code or 500
    if request.blueprint == "codec" or request.path.startswith("/codec/"):
        return jsonify(error=error.description or error.name), code
    response_headers = error.get_response().headers
    kept = {name: response_headers[name] for name in KEPT_HEADERS if name in response_headers}
    return render_error(code, kept)


def handle_unexpected(error: InternalServerError):
    """Flask has already logged the exception with its trace; the visitor sees none of it."""
    return render_error(500)


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(InternalServerError, handle_unexpected)
