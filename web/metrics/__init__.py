"""GET /metrics for Prometheus, behind a bearer token; every request timed and counted."""

from __future__ import annotations

import hmac
import time

from flask import Blueprint, Flask, Response, abort, current_app, g, request

from portal.metrics import CONTENT_TYPE_LATEST, HTTP_LATENCY, HTTP_REQUESTS, web_exposition
from processes.registration.metrics import RegistrationCollector

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    """404 while ACCESO_METRICS_TOKEN is empty or the bearer token differs: nothing to find."""
    token = current_app.config["SETTINGS"].metrics_token
    offered = request.headers.get("Authorization", "")
    if not token or not hmac.compare_digest(offered.encode(), f"Bearer {token}".encode()):
        abort(404)
    body = web_exposition(RegistrationCollector(current_app.extensions["acceso.sessions"]))
    return Response(body, content_type=CONTENT_TYPE_LATEST)


def init_app(app: Flask) -> None:
    """Times every request; the endpoint label is the view's name, so URLs add no series."""

    @app.before_request
    def start_timer():
        g.metrics_started = time.perf_counter()

    series: dict[tuple[str, int], tuple] = {}
    """Each (endpoint, status)'s counter and histogram, looked up once: endpoints are a closed
    set, so this stays as small as the series themselves."""

    @app.after_request
    def count_request(response):
        started = g.pop("metrics_started", None)
        key = (request.endpoint or "unmatched", response.status_code)
        found = series.get(key)
        if found is None:
            found = series[key] = (
                HTTP_REQUESTS.labels(endpoint=key[0], status=str(key[1])),
                HTTP_LATENCY.labels(endpoint=key[0]),
            )
        found[0].inc()
        if started is not None:
            found[1].observe(time.perf_counter() - started)
        return response

    app.register_blueprint(bp)
