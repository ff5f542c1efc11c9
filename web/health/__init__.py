"""Liveness and readiness for load balancers and orchestrators: no session, no CSRF, no templates."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

bp = Blueprint("health", __name__)
log = logging.getLogger("acceso.health")

READY_TIMEOUT_SECONDS = 3.0


@bp.get("/healthz")
def healthz():
    """The process answers HTTP; touches nothing else, so a slow dependency never restarts it."""
    return jsonify(status="ok")


def _check_database() -> str:
    engine = current_app.extensions["acceso.engine"]
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    return "ok"


def _check_temporal() -> str:
    bridge = current_app.extensions["acceso.temporal"]
    bridge.call(lambda client: client.service_client.check_health(), timeout=READY_TIMEOUT_SECONDS)
    return "ok"


@bp.get("/readyz")
def readyz():
    """Ready only when both the database and Temporal answer; 503 names the failing check."""
    checks: dict[str, str] = {}
    for name, check in (("database", _check_database), ("temporal", _check_temporal)):
        try:
            checks[name] = check()
        except Exception as error:  # any failure means "not ready", and says which
            log.warning("readiness check %s failed: %s", name, type(error).__name__)
            checks[name] = f"failed: {type(error).__name__}"
    ready = all(value == "ok" for value in checks.values())
    failed = [name for name, value in checks.items() if value != "ok"]
    body = {"status": "ok" if ready else "unavailable", "checks": checks}
    if failed:
        body["failed"] = failed
    return jsonify(body), 200 if ready else 503
