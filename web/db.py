"""The request's handles on what a service writes: one SQLAlchemy session per request, closed
when the request ends, and the process-wide Temporal bridge; and, for the API's checks that only
read, a session whose connection autocommits."""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from temporal.bridge import TemporalBridge


def get_db() -> Session:
    if "db" not in g:
        g.db = current_app.extensions["acceso.sessions"]()
    return g.db


def get_reader() -> Session:
    """A session for an answer that only reads (userinfo, introspection): on PostgreSQL its
    connection autocommits, so each statement is its own snapshot and no BEGIN or ROLLBACK
    crosses the network (two of a userinfo call's round trips). SQLite's driver begins nothing
    for a read, and switching its isolation costs more than it saves, so there it is a plain
    session."""
    if "reader" not in g:
        g.reader = current_app.extensions["acceso.readers"]()
    return g.reader


def get_bridge() -> TemporalBridge:
    return current_app.extensions["acceso.temporal"]


def close_db(_exc: BaseException | None = None) -> None:
    for name in ("db", "reader"):
        db = g.pop(name, None)
        if db is not None:
            db.close()


def init_app(app: Flask) -> None:
    app.teardown_appcontext(close_db)
