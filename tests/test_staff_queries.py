"""Staff list pages cost the same number of queries for one row as for many: no N+1."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from portal.models import (
    IdentityTry,
    Registration,
    StaffUser,
    SupportCase,
)
from portal.passwords import hash_password
from tests.fixtures.stack import submit
from web import create_app

STAFF_PASSWORD = "consola-segura-123"


@pytest.fixture
def console(settings, session_factory):
    with session_factory() as session:
        session.add(
            StaffUser(
                username="mesa",
                password_hash=hash_password(STAFF_PASSWORD),
                roles="admin",
            )
        )
        session.commit()
    app = create_app({"SETTINGS": settings, "TESTING": True})
    client = app.test_client()
    submit(client, "/staff/login", {"username": "mesa", "password": STAFF_PASSWORD})
    return app, client, session_factory


def add_rows(session_factory, start: int, count: int) -> None:
    with session_factory() as session:
        for n in range(start, start + count):
            workflow_id = f"registration/member/R{n:08d}"
            session.add_all(
                [
                    Registration(
                        reference=f"R{n:08d}",
                        portal="member",
                        workflow_id=workflow_id,
                        status="escalated",
                    ),
                    Registration(
                        reference=f"P{n:08d}",
                        portal="provider",
                        workflow_id=f"registration/provider/P{n:08d}",
                        status="pending_review",
                    ),
                    SupportCase(
                        portal="member",
                        workflow_id=workflow_id,
                        reference=f"R{n:08d}",
                        client_id=f"C{n}",
                    ),
                    IdentityTry(
                        try_key=f"{workflow_id}/1",
                        portal="member",
                        workflow_id=workflow_id,
                        client_id=f"C{n}",
                    ),
                ]
            )
        session.commit()


def queries_for(app, client, path: str) -> int:
    engine = app.extensions["acceso.engine"]
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        assert client.get(path).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return len(statements)


@pytest.mark.parametrize("path", ["/staff/cases", "/staff/reviews", "/staff/audit"])
def test_staff_lists_do_not_query_per_row(console, path):
    app, client, session_factory = console
    add_rows(session_factory, 0, 1)
    one = queries_for(app, client, path)
    add_rows(session_factory, 1, 12)
    many = queries_for(app, client, path)
    assert many == one
