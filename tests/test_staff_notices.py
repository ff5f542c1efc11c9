"""Staff hear of every change to their sign-in as applicants do: a second factor added (app or
passkey) or removed, a recovery code used, a password changed, the account locked; each e-mail
names the change and carries no secret, through the outbox and the account-notice process."""

from __future__ import annotations

import re

import pyotp
from sqlalchemy import select

from cli.staff import ensure_staff
from portal.models import StaffUser
from tests.fixtures.smtp import body_text
from tests.fixtures.stack import submit
from tests.fixtures.staff import add_staff, sign_in_staff

PASSWORD = "consola-segura-123"
RITA = "rita@acceso.example"


def test_a_staff_member_is_emailed_each_change_to_their_sign_in(stack):
    add_staff(stack.session_factory, "ada", PASSWORD, roles="admin")
    add_staff(stack.session_factory, "rita", PASSWORD, roles="support", enrolled=False, email=RITA)

    rita = stack.new_client()
    assert submit(rita, "/staff/login", {"username": "rita", "password": PASSWORD}).status_code
    key = re.search(
        r"data-secret-key>([A-Z2-7 ]+)<", rita.get("/staff/login/enrol").get_data(as_text=True)
    ).group(1)
    key = key.replace(" ", "")
    enrolled = submit(rita, "/staff/login/enrol", {"code": pyotp.TOTP(key).now()})
    codes = re.findall(r"<li><code>([a-z0-9-]{11})</code></li>", enrolled.get_data(as_text=True))
    added = stack.mailbox.wait_for(RITA, "Se agregó un segundo factor")
    assert "aplicación de autenticación" in body_text(added)
    assert key not in body_text(added)

    again = stack.new_client()
    submit(again, "/staff/login", {"username": "rita", "password": PASSWORD})
    assert submit(again, "/staff/login/code", {"code": codes[0]}).status_code == 302
    used = stack.mailbox.wait_for(RITA, "código de recuperación")
    assert "Le quedan 9" in body_text(used) and codes[0] not in body_text(used)

    admin = stack.new_client()
    sign_in_staff(admin, stack.session_factory, "ada", PASSWORD)
    with stack.session_factory() as session:
        rita_id = session.scalar(select(StaffUser.id).where(StaffUser.username == "rita"))
    submit(admin, f"/staff/admin/{rita_id}/reset-factor", {}, form_page=f"/staff/admin/{rita_id}")
    stack.mailbox.wait_for(RITA, "Se quitó el segundo factor")

    assert ensure_staff(stack.session_factory, "rita", ["support"], "otra-clave-larga-1") == (
        "password reset"
    )
    stack.mailbox.wait_for(RITA, "contraseña de la consola cambió")

    stranger = stack.new_client()
    for n in range(5):
        submit(stranger, "/staff/login", {"username": "rita", "password": f"mal-{n}"})
    locked = stack.mailbox.wait_for(RITA, "está bloqueado")
    assert "administrador" in body_text(locked)
    assert len(stack.mailbox.to(RITA)) == 5
