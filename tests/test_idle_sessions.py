"""Sessions end when nobody is there: staff after 15 idle minutes and 12 hours in all, applicants
after their portal's idle time unless they chose "keep me signed in"; the page warns first and
a keepalive POST (with its CSRF token) keeps the session. Time moves by editing last_seen_at."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from portal.models import User, UserSession, utcnow
from portal.passwords import hash_password
from tests.fixtures.stack import csrf_token, submit
from tests.fixtures.staff import add_staff, sign_in_staff
from web import create_app

PASSWORD = "consola-segura-123"
PATIENT_PASSWORD = "Clave123segura"


@pytest.fixture
def app(settings, session_factory):
    add_staff(session_factory, "lucia", PASSWORD, roles="support")
    with session_factory() as session:
        session.add(
            User(
                portal="patient",
                username="ana",
                email="ana@example.org",
                password_hash=hash_password(PATIENT_PASSWORD),
                status="active",
                role="patient",
            )
        )
        session.commit()
    return create_app({"SETTINGS": settings, "TESTING": True})


def idle_for(session_factory, minutes: float) -> None:
    with session_factory() as session:
        session.execute(
            update(UserSession).values(last_seen_at=utcnow() - timedelta(minutes=minutes))
        )
        session.commit()


def staff_client(app, session_factory):
    client = app.test_client()
    assert sign_in_staff(client, session_factory, "lucia", PASSWORD).status_code == 302
    return client


def patient_client(app, remember: bool):
    client = app.test_client()
    data = {"username": "ana", "password": PATIENT_PASSWORD}
    if remember:
        data["remember_me"] = "y"
    assert submit(client, "/patient/login", data).status_code == 302
    return client


def test_staff_are_signed_out_after_fifteen_idle_minutes(app, session_factory):
    client = staff_client(app, session_factory)
    idle_for(session_factory, 14)
    assert client.get("/staff/").status_code == 200
    idle_for(session_factory, 16)
    answer = client.get("/staff/")
    assert "/staff/login" in answer.headers["Location"]
    assert "inactividad" in client.get(answer.headers["Location"]).get_data(as_text=True)
    with session_factory() as session:
        assert session.scalars(select(UserSession)).all() == []


def test_staff_sessions_last_twelve_hours_at_most(app, session_factory):
    client = staff_client(app, session_factory)
    with session_factory() as session:
        row = session.scalar(select(UserSession))
        assert row.expires_at - row.created_at == timedelta(hours=12)
        row.expires_at = utcnow() - timedelta(seconds=1)
        session.commit()
    assert client.get("/staff/").status_code == 302


def test_the_page_warns_and_a_keepalive_post_keeps_the_staff_session(app, session_factory):
    client = staff_client(app, session_factory)
    page = client.get("/staff/").get_data(as_text=True)
    assert 'data-idle-seconds="900"' in page
    assert 'data-keepalive-url="/staff/session/keepalive"' in page
    assert "<script>" not in page and "acceso.js" in page
    token = re.search(r'data-csrf-token="([^"]+)"', page).group(1)

    assert client.post("/staff/session/keepalive").status_code == 400  # no CSRF token
    idle_for(session_factory, 14)
    answer = client.post("/staff/session/keepalive", headers={"X-CSRFToken": token})
    assert answer.status_code == 200 and answer.get_json() == {"idle_seconds": 900}
    with session_factory() as session:
        seen = session.scalar(select(UserSession.last_seen_at))
    assert utcnow() - seen < timedelta(minutes=1)


def test_a_patient_session_follows_the_portal_idle_time(app, session_factory):
    client = patient_client(app, remember=False)
    page = client.get("/patient/").get_data(as_text=True)
    assert 'data-idle-seconds="1800"' in page
    token = re.search(r'data-csrf-token="([^"]+)"', page).group(1)
    idle_for(session_factory, 29)
    answer = client.post("/patient/session/keepalive", headers={"X-CSRFToken": token})
    assert answer.get_json() == {"idle_seconds": 1800}
    idle_for(session_factory, 31)
    answer = client.get("/patient/account/password")
    assert "/patient/login" in answer.headers["Location"]


def test_keep_me_signed_in_has_no_idle_limit(app, session_factory):
    client = patient_client(app, remember=True)
    assert "data-idle-seconds" not in client.get("/patient/").get_data(as_text=True)
    idle_for(session_factory, 24 * 60)
    assert client.get("/patient/account/password").status_code == 200
    assert csrf_token(client, "/patient/account/password")
