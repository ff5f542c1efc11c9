"""The staff console: list pages cost the same queries for one row as for many (no N+1), and
every staff page refuses anonymous visitors and applicants."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from portal.models import (
    IdentityTry,
    Registration,
    SupportCase,
)
from portal.passwords import hash_password
from tests.fixtures.stack import csrf_token, submit
from tests.fixtures.staff import add_staff, sign_in_staff
from web import create_app
from web.staff import PUBLIC_ENDPOINTS

pytestmark = pytest.mark.dialects

STAFF_PASSWORD = "consola-segura-123"


@pytest.fixture
def console(settings, session_factory):
    add_staff(session_factory, "mesa", STAFF_PASSWORD, roles="admin")
    app = create_app({"SETTINGS": settings, "TESTING": True})
    client = app.test_client()
    assert sign_in_staff(client, session_factory, "mesa", STAFF_PASSWORD).status_code == 302
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


def staff_urls(app) -> list[str]:
    """Every /staff/ page behind a login, each placeholder filled with 1."""
    adapter = app.url_map.bind("localhost")
    return [
        adapter.build(rule.endpoint, dict.fromkeys(rule.arguments, 1))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/staff/") and rule.endpoint not in PUBLIC_ENDPOINTS
    ]


def test_every_staff_page_refuses_anonymous_visitors_and_applicants(settings, session_factory):
    from portal.models import User

    with session_factory() as session:
        session.add(
            User(
                portal="patient",
                username="ana",
                email="ana@example.org",
                password_hash=hash_password("Clave123segura"),
                status="active",
                role="patient",
            )
        )
        session.commit()
    app = create_app({"SETTINGS": settings, "TESTING": True})
    urls = staff_urls(app)
    assert len(urls) >= 5
    anonymous = app.test_client()
    applicant = app.test_client()
    submit(applicant, "/patient/login", {"username": "ana", "password": "Clave123segura"})
    token = csrf_token(applicant, "/patient/account/password")
    for url in urls:
        answer = anonymous.get(url)
        assert answer.status_code in (302, 405), url
        if answer.status_code == 302:
            assert "/staff/login" in answer.headers["Location"], url
        assert applicant.get(url).status_code in (403, 405), url
        assert applicant.post(url, data={"csrf_token": token}).status_code in (403, 405), url
