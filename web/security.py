"""Response headers that tell the browser what this site may do: CSP, COOP, permissions, HSTS.

Scripts come only from this origin's static files or carry the response's nonce; a violation is
reported to /csp-report, logged, and kept (a few) so tests and operators can see it.
"""

from __future__ import annotations

import logging
import secrets
from collections import deque

from flask import Blueprint, Flask, current_app, g, request

bp = Blueprint("security", __name__)
log = logging.getLogger("acceso.security")

PERMISSIONS_POLICY = (
    "camera=(), microphone=(), geolocation=(), payment=(), usb=(), serial=(), bluetooth=(), "
    "magnetometer=(), gyroscope=(), accelerometer=(), display-capture=()"
)
HSTS = "max-age=31536000; includeSubDomains"
REPORT_PATH = "/csp-report"


def csp_nonce() -> str:
    """One random nonce per response, for the rare script or style a template must inline."""
    nonce = g.get("csp_nonce")
    if nonce is None:
        nonce = g.csp_nonce = secrets.token_urlsafe(18)
    return nonce


def allow_form_redirect_to(origin: str) -> None:
    """Lets a form on this response end in a redirect to `origin` (e.g. an OIDC client): browsers
    enforce form-action on the redirect that follows a submission, not only on its target."""
    g.setdefault("csp_form_origins", []).append(origin)


def allow_inline_styles() -> None:
    """For the dev inbox alone: an e-mail's HTML (styled inline) is shown in a srcdoc frame."""
    g.csp_inline_styles = True


def content_security_policy() -> str:
    nonce = csp_nonce()
    form_action = " ".join(["'self'", *g.get("csp_form_origins", [])])
    style = "'self' 'unsafe-inline'" if g.get("csp_inline_styles") else f"'self' 'nonce-{nonce}'"
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' 'nonce-{nonce}'",
            f"style-src {style}",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "frame-src 'self'",
            "frame-ancestors 'none'",
            f"form-action {form_action}",
            "base-uri 'none'",
            f"report-uri {REPORT_PATH}",
        ]
    )


API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
"""A JSON answer is never a page: it may load, run, frame or submit nothing. A fixed string, so
an API response costs no nonce (os.urandom) and no policy built per request."""
REDIRECTS = frozenset({301, 302, 303, 307, 308})
"""Never a 304: its headers would replace the cached page's."""
FIXED_HEADERS = (
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Permissions-Policy", PERMISSIONS_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
)


def https_site() -> bool:
    return current_app.config["SETTINGS"].public_base_url.startswith("https://")


def add_security_headers(response):
    """Each header unless the view set its own. A page gets the nonce policy; a JSON answer
    (token endpoint, userinfo, JWKS, health) and a redirect, whose body no browser shows (a
    form's POST answered with the next page's address, like a sign-in), the fixed API policy."""
    headers = response.headers
    present = {name.lower() for name, _ in headers.items()}
    if "content-security-policy" not in present:
        fixed = response.mimetype == "application/json" or response.status_code in REDIRECTS
        headers.add("Content-Security-Policy", API_POLICY if fixed else content_security_policy())
    for name, value in FIXED_HEADERS:
        if name.lower() not in present:
            headers.add(name, value)
    if "strict-transport-security" not in present and https_site():
        headers.add("Strict-Transport-Security", HSTS)
    return response


@bp.post(REPORT_PATH)
def csp_report():
    """Browsers post violations here; each is logged and the last few kept for inspection."""
    report = request.get_json(force=True, silent=True) or {}
    body = report.get("csp-report", report) if isinstance(report, dict) else {}
    entry = {
        "directive": str(body.get("violated-directive") or body.get("effective-directive", "")),
        "blocked": str(body.get("blocked-uri", ""))[:200],
        "page": str(body.get("document-uri", ""))[:200],
    }
    current_app.extensions["acceso.csp_reports"].append(entry)
    log.warning("csp violation %(directive)s blocked %(blocked)s on %(page)s", entry)
    return "", 204


def init_app(app: Flask) -> None:
    app.extensions["acceso.csp_reports"] = deque(maxlen=50)
    app.jinja_env.globals["csp_nonce"] = csp_nonce
    app.after_request(add_security_headers)
