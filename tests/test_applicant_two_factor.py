"""Applicants may turn on an authenticator app at /<portal>/account/security and then sign in
with the same `code` field; the help desk unlocks accounts and resets lost devices with a note;
every change is e-mailed to the owner, with no secret in the message."""

from __future__ import annotations

import re

import pyotp
import pytest
from sqlalchemy import select

from portal.models import AuditEvent, LoginThrottle, SecondFactor, User
from portal.passwords import hash_password
from tests.fixtures.codec import plain_secret
from tests.fixtures.second_factor import RECOVERY_CODE_RE, key_on
from tests.fixtures.smtp import body_text
from tests.fixtures.stack import submit
from tests.fixtures.staff import add_staff, sign_in_staff

pytestmark = pytest.mark.dialects

PASSWORD = "Clave123segura"
STAFF_PASSWORD = "consola-segura-123"
T0 = 1_800_000_000.0


class Clock:
    def __init__(self, at: float):
        self.at = at

    def __call__(self) -> float:
        return self.at


@pytest.fixture
def site(stack):
    clock = Clock(T0)
    stack.app.config["CLOCK"] = clock
    with stack.session_factory() as session:
        session.add(
            User(
                portal="patient",
                username="ana",
                email="ana@example.org",
                full_name="Ana Pérez",
                password_hash=hash_password(PASSWORD),
                status="active",
                role="patient",
            )
        )
        session.commit()
    return stack, clock


def password_step(client, password=PASSWORD, remember=False):
    data = {"username": "ana", "password": password}
    if remember:
        data["remember_me"] = "y"
    return submit(client, "/patient/login", data)


def enrol(client, at: float) -> tuple[str, list[str]]:
    key = key_on(client.get("/patient/account/security").get_data(as_text=True))
    page = submit(client, "/patient/account/security", {"code": pyotp.TOTP(key).at(at)})
    return key, RECOVERY_CODE_RE.findall(page.get_data(as_text=True))


def signed_in(client) -> bool:
    return client.get("/patient/account/password").status_code == 200


def secret_of(stack):
    with stack.session_factory() as session:
        stored = session.scalar(
            select(SecondFactor.secret).where(SecondFactor.user_id.is_not(None))
        )
    return plain_secret(stored) if stored else None


def test_a_patient_opts_in_and_then_signs_in_with_a_code(site):
    stack, clock = site
    client = stack.new_client()
    assert password_step(client).status_code == 302  # no factor yet: straight in
    key = key_on(client.get("/patient/account/security").get_data(as_text=True))
    wrong = submit(client, "/patient/account/security", {"code": "000000"})
    assert "no es correcto" in wrong.get_data(as_text=True)
    assert secret_of(stack) is None

    done = submit(client, "/patient/account/security", {"code": pyotp.TOTP(key).at(T0)})
    assert len(RECOVERY_CODE_RE.findall(done.get_data(as_text=True))) == 10
    mail = stack.mailbox.wait_for("ana@example.org", "verificación en dos pasos")
    assert key not in body_text(mail) and "ana" in body_text(mail)

    again = stack.new_client()
    answer = password_step(again)
    assert answer.headers["Location"].endswith("/patient/login/code")
    assert not signed_in(again)
    clock.at = T0 + 30
    replay = submit(again, "/patient/login/code", {"code": pyotp.TOTP(key).at(T0)})
    assert "ya fue usado" in replay.get_data(as_text=True)
    ok = submit(again, "/patient/login/code", {"code": pyotp.TOTP(key).at(clock.at)})
    assert ok.status_code == 302 and signed_in(again)


def test_a_recovery_code_works_once_and_the_owner_is_told(site):
    stack, clock = site
    client = stack.new_client()
    password_step(client)
    _key, codes = enrol(client, T0)

    lost = stack.new_client()
    password_step(lost)
    assert submit(lost, "/patient/login/code", {"code": codes[0]}).status_code == 302
    assert signed_in(lost)
    mail = stack.mailbox.wait_for("ana@example.org", "código de recuperación")
    assert "Le quedan 9" in body_text(mail) and codes[0] not in body_text(mail)

    twice = stack.new_client()
    password_step(twice)
    refused = submit(twice, "/patient/login/code", {"code": codes[0]})
    assert "ya fue usado" in refused.get_data(as_text=True) and not signed_in(twice)


def test_wrong_codes_lock_the_account_and_the_help_desk_unlocks_it_with_a_note(site):
    stack, clock = site
    client = stack.new_client()
    password_step(client)
    enrol(client, T0)
    attacker = stack.new_client()
    password_step(attacker)
    for _ in range(4):
        submit(attacker, "/patient/login/code", {"code": "111111"})
    locked = submit(attacker, "/patient/login/code", {"code": "111111"})
    assert "bloqueado" in locked.get_data(as_text=True)
    # At the password step a locked account looks like a wrong password; the owner is e-mailed.
    again = password_step(stack.new_client()).get_data(as_text=True)
    assert "Usuario o contraseña incorrectos" in again and "bloqueado" not in again
    stack.mailbox.wait_for("ana@example.org", "bloqueado")

    add_staff(stack.session_factory, "helena", STAFF_PASSWORD, roles="support", portals="patient")
    desk = stack.new_client()
    sign_in_staff(desk, stack.session_factory, "helena", STAFF_PASSWORD)
    found = desk.get("/staff/accounts?q=ANA@example.org").get_data(as_text=True)
    assert "ana" in found and "intentos fallidos" in found
    user_id = int(re.search(r"/staff/accounts/(\d+)", found).group(1))

    page = f"/staff/accounts/{user_id}"
    no_note = submit(desk, f"{page}/unlock", {"note": ""}, form_page=page)
    assert no_note.status_code == 400 and "obligatorio" in no_note.get_data(as_text=True)
    with stack.session_factory() as session:
        assert session.get(LoginThrottle, ("patient", "ana")) is not None

    submit(desk, f"{page}/unlock", {"note": "Llamó; verifiqué fecha de nacimiento"}, form_page=page)
    with stack.session_factory() as session:
        assert session.get(LoginThrottle, ("patient", "ana")) is None
        event = session.scalar(
            select(AuditEvent).where(AuditEvent.action == "account.unlocked_by_helpdesk")
        )
    assert event.actor == "staff:helena" and "fecha de nacimiento" in event.detail["note"]
    mail = stack.mailbox.wait_for("ana@example.org", "desbloqueó")
    assert "ana" in body_text(mail)


def test_the_help_desk_resets_a_lost_device_only_within_its_portals(site):
    stack, clock = site
    client = stack.new_client()
    password_step(client)
    enrol(client, T0)
    add_staff(stack.session_factory, "mario", STAFF_PASSWORD, roles="support", portals="member")
    add_staff(stack.session_factory, "helena", STAFF_PASSWORD, roles="support", portals="patient")
    with stack.session_factory() as session:
        user_id = session.scalar(select(User.id).where(User.username == "ana"))

    other = stack.new_client()
    sign_in_staff(other, stack.session_factory, "mario", STAFF_PASSWORD)
    assert "No encontramos" in other.get("/staff/accounts?q=ana").get_data(as_text=True)
    assert other.get(f"/staff/accounts/{user_id}").status_code == 404

    desk = stack.new_client()
    sign_in_staff(desk, stack.session_factory, "helena", STAFF_PASSWORD)
    page = f"/staff/accounts/{user_id}"
    answer = submit(desk, f"{page}/reset-factor", {"note": "Perdió el teléfono"}, form_page=page)
    assert answer.status_code == 302
    assert secret_of(stack) is None
    assert not signed_in(client)  # the old sessions end with the factor
    mail = stack.mailbox.wait_for("ana@example.org", "Se quitó")
    assert "mesa de ayuda" in body_text(mail)
    assert password_step(stack.new_client()).headers["Location"].endswith("/patient/")


def test_a_required_factor_is_enrolled_before_the_first_page(stack):
    with stack.session_factory() as session:
        session.add(
            User(
                portal="provider",
                username="mrivera",
                email="marta@clinica.example",
                password_hash=hash_password(PASSWORD),
                status="active",
                role="provider_primary",
            )
        )
        session.commit()
    client = stack.new_client()
    answer = submit(client, "/provider/login", {"username": "mrivera", "password": PASSWORD})
    assert answer.headers["Location"].endswith("/provider/login/enrol")
    assert client.get("/provider/account/password").status_code == 302
    key = key_on(client.get("/provider/login/enrol").get_data(as_text=True))
    done = submit(client, "/provider/login/enrol", {"code": pyotp.TOTP(key).now()})
    assert "Códigos de recuperación" in done.get_data(as_text=True)
    assert client.get("/provider/account/password").status_code == 200
    refused = submit(client, "/provider/account/security", {"code": pyotp.TOTP(key).now()})
    assert "exige" in refused.get_data(as_text=True)
