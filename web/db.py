"""The request's handles on what a service writes: one SQLAlchemy session per request, closed
when the request ends, and the process-wide Temporal bridge."""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from temporal.bridge import TemporalBridge


def get_db() -> Session:
    if "db" not in g:
        g.db = current_app.extensions["acceso.sessions"]()
    return g.db


def get_bridge() -> TemporalBridge:
    return current_app.extensions["acceso.temporal"]


def close_db(_exc: BaseException | None = None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()


def init_app(app: Flask) -> None:
    app.teardown_appcontext(close_db)
