"""Staff sign in with a password and then a code from their authenticator app: first sign-in
enrols the app, codes work once within ±1 step, recovery codes work once, wrong codes lock."""

from __future__ import annotations

import re

import pyotp
import pytest
from sqlalchemy import select

from portal.models import AuditEvent, LoginThrottle, RecoveryCode, SecondFactor, StaffUser
from tests.fixtures.codec import plain_secret
from tests.fixtures.stack import submit
from tests.fixtures.staff import add_staff
from web import create_app

pytestmark = pytest.mark.dialects

PASSWORD = "consola-segura-123"
T0 = 1_800_000_000.0  # a fixed moment, so codes are computed for a known time step


class Clock:
    def __init__(self, at: float):
        self.at = at

    def __call__(self) -> float:
        return self.at


@pytest.fixture
def console(settings, session_factory):
    clock = Clock(T0)
    app = create_app({"SETTINGS": settings, "TESTING": True, "CLOCK": clock})
    return app, clock, session_factory


def password_step(client, username="lucia", password=PASSWORD):
    return submit(client, "/staff/login", {"username": username, "password": password})


def secret_of(session_factory, username="lucia") -> str | None:
    with session_factory() as session:
        stored = session.scalar(
            select(SecondFactor.secret)
            .join(StaffUser, StaffUser.id == SecondFactor.staff_id)
            .where(StaffUser.username == username)
        )
    return plain_secret(stored) if stored else None


def code(secret: str, at: float) -> str:
    return pyotp.TOTP(secret).at(at)


def signed_in(client) -> bool:
    return client.get("/staff/").status_code == 200


def test_first_sign_in_enrols_the_app_and_shows_ten_recovery_codes_once(console):
    app, clock, session_factory = console
    add_staff(session_factory, "lucia", PASSWORD, enrolled=False)
    client = app.test_client()

    answer = password_step(client)
    assert answer.headers["Location"].endswith("/staff/login/enrol")
    assert not signed_in(client)
    page = client.get("/staff/login/enrol").get_data(as_text=True)
    assert 'src="data:image/svg+xml' in page
    key = re.search(r"data-secret-key>([A-Z2-7 ]+)<", page).group(1).replace(" ", "")
    assert client.get("/staff/login/enrol").get_data(as_text=True).count(key[:4]) >= 1

    wrong = submit(client, "/staff/login/enrol", {"code": "000000"})
    assert "no es correcto" in wrong.get_data(as_text=True)
    assert secret_of(session_factory) is None
    assert not signed_in(client)

    done = submit(client, "/staff/login/enrol", {"code": code(key, T0)})
    page = done.get_data(as_text=True)
    codes = re.findall(r"<li><code>([a-z0-9-]{11})</code></li>", page)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert secret_of(session_factory) == key
    with session_factory() as session:
        hashes = session.scalars(select(RecoveryCode.code_hash)).all()
    assert len(hashes) == 10 and all(h.startswith("$argon2id$") for h in hashes)
    assert not any(c.replace("-", "") in h for c in codes for h in hashes)
    assert signed_in(client)
    with session_factory() as session:
        actions = session.scalars(select(AuditEvent.action)).all()
    assert "staff.second_factor.enrolled" in actions


def test_the_password_alone_opens_no_staff_page(console):
    app, clock, session_factory = console
    add_staff(session_factory, "lucia", PASSWORD)
    client = app.test_client()
    answer = password_step(client)
    assert answer.headers["Location"].endswith("/staff/login/code")
    for path in ("/staff/", "/staff/audit", "/staff/cases", "/staff/reviews"):
        assert client.get(path).status_code == 302, path
        assert "/staff/login" in client.get(path).headers["Location"]


def test_a_code_from_the_app_signs_in_once_and_allows_one_step_of_drift(console):
    app, clock, session_factory = console
    secret = add_staff(session_factory, "lucia", PASSWORD)

    client = app.test_client()
    password_step(client)
    answer = submit(client, "/staff/login/code", {"code": code(secret, T0 - 30)})
    assert answer.status_code == 302
    assert signed_in(client)

    replay = app.test_client()
    password_step(replay)
    again = submit(replay, "/staff/login/code", {"code": code(secret, T0 - 30)})
    assert "no es correcto o ya fue usado" in again.get_data(as_text=True)
    assert not signed_in(replay)

    too_old = submit(replay, "/staff/login/code", {"code": code(secret, T0 - 90)})
    assert too_old.status_code == 200 and not signed_in(replay)

    clock.at = T0 + 30
    ahead = submit(replay, "/staff/login/code", {"code": code(secret, T0 + 60)})
    assert ahead.status_code == 302 and signed_in(replay)


def test_a_recovery_code_signs_in_once(console):
    app, clock, session_factory = console
    add_staff(session_factory, "lucia", PASSWORD, enrolled=False)
    client = app.test_client()
    password_step(client)
    page = client.get("/staff/login/enrol").get_data(as_text=True)
    key = re.search(r"data-secret-key>([A-Z2-7 ]+)<", page).group(1).replace(" ", "")
    codes = re.findall(
        r"<li><code>([a-z0-9-]{11})</code></li>",
        submit(client, "/staff/login/enrol", {"code": code(key, T0)}).get_data(as_text=True),
    )

    lost_phone = app.test_client()
    password_step(lost_phone)
    used = submit(lost_phone, "/staff/login/code", {"code": codes[3].upper()})
    assert used.status_code == 302 and signed_in(lost_phone)

    twice = app.test_client()
    password_step(twice)
    refused = submit(twice, "/staff/login/code", {"code": codes[3]})
    assert "no es correcto o ya fue usado" in refused.get_data(as_text=True)
    assert not signed_in(twice)
    with session_factory() as session:
        assert "staff.recovery_code_used" in session.scalars(select(AuditEvent.action)).all()


def test_wrong_codes_count_toward_the_staff_lockout(console):
    app, clock, session_factory = console
    secret = add_staff(session_factory, "lucia", PASSWORD)
    client = app.test_client()
    password_step(client)
    for _ in range(4):
        answer = submit(client, "/staff/login/code", {"code": "123456"})
        assert "no es correcto" in answer.get_data(as_text=True)
    locked = submit(client, "/staff/login/code", {"code": "123456"})
    assert "bloqueado" in locked.get_data(as_text=True)
    assert "Pida a un administrador" in locked.get_data(as_text=True), "staff cannot self-recover"

    retry = app.test_client()
    assert "Usuario o contraseña incorrectos" in password_step(retry).get_data(as_text=True)
    with session_factory() as session:
        assert session.get(LoginThrottle, ("staff", "lucia")).failures >= 5
    assert not signed_in(retry)
    assert secret  # the right code would not help any more either


def test_the_code_step_expires_and_asks_for_the_password_again(console):
    app, clock, session_factory = console
    secret = add_staff(session_factory, "lucia", PASSWORD)
    client = app.test_client()
    password_step(client)
    clock.at = T0 + 301
    answer = submit(
        client, "/staff/login/code", {"code": code(secret, clock.at)}, form_page="/staff/login"
    )
    assert answer.headers["Location"].endswith("/staff/login")
    assert not signed_in(client)
