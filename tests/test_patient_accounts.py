"""Seed 002's FAQ, proven through the web forms: lockout and its unlock, recovering a username or
a password, the temporary password, changing it, and sessions that end on the server."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from portal.models import AuditEvent, EmailToken, OutboxMessage, User, UserSession
from tests.fixtures.patients import PASSWORD, confirm_by_email, login, register
from tests.fixtures.smtp import body_text, link_in
from tests.fixtures.stack import csrf_token, press_link_button, submit
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.dialects

NEW_PASSWORD = "OtraClave456"


@pytest.fixture
def patient(clinic):
    """Ana, registered and confirmed."""
    register(clinic.client)
    confirm_by_email(clinic)
    clinic.mailbox.wait_for("ana@example.org", "Usuario confirmado")
    # The send is audited just after the SMTP answer: wait for it, so a test reading the audit
    # trail sees only its own lines after this.
    wait_until(
        lambda: _audited(clinic, "email.user_confirmed"),
        what="the confirmation e-mail's audit line",
    )
    clinic.mailbox.messages.clear()
    return clinic


def _audited(stack, action: str) -> bool:
    with stack.session_factory() as session:
        return session.scalar(select(AuditEvent.id).where(AuditEvent.action == action)) is not None


def test_fifth_wrong_password_locks_and_then_even_the_right_one_is_refused(patient):
    for _ in range(5):
        assert "Usuario o contraseña incorrectos" in login(
            patient.client, password="Mala1234"
        ).get_data(as_text=True)
    right = login(patient.client)
    assert right.status_code == 200
    assert "Usuario o contraseña incorrectos" in right.get_data(as_text=True)
    assert "bloqueado" not in right.get_data(as_text=True)


def test_a_locked_account_answers_exactly_like_a_wrong_password(patient):
    for _ in range(4):
        wrong = login(patient.client, password="Mala1234")
    locked = login(patient.client, password="Mala1234")
    after = login(patient.client)
    strip = re.compile(r'name="csrf_token"[^>]*>|value="[^"]*"|nonce-[\w-]+')
    assert strip.sub("", wrong.get_data(as_text=True)) == strip.sub(
        "", locked.get_data(as_text=True)
    )
    assert strip.sub("", wrong.get_data(as_text=True)) == strip.sub(
        "", after.get_data(as_text=True)
    )


def test_the_owner_is_told_of_the_lock_once_by_email_with_the_way_to_unlock(patient):
    for _ in range(8):
        login(patient.client, password="Mala1234")
    message = patient.mailbox.wait_for("ana@example.org", "bloqueado")
    text = body_text(message)
    assert "ana.perez" in text and "http://acceso.test/patient/recover/password" in text
    for _ in range(3):
        login(patient.new_client(), password="Mala1234")
    with patient.session_factory() as session:
        notices = session.scalars(
            select(OutboxMessage).where(OutboxMessage.summary == "notice: account_locked")
        ).all()
    assert len(notices) == 1
    assert (
        len([m for m in patient.mailbox.to("ana@example.org") if "bloqueado" in m["Subject"]]) == 1
    )


def test_lockout_answers_the_same_for_an_unknown_username(patient):
    for _ in range(5):
        login(patient.client, username="nadie.existe", password="Mala1234")
    known = [login(patient.new_client(), password="Mala1234") for _ in range(5)][-1]
    unknown = login(patient.new_client(), username="nadie.existe", password="Mala1234")
    strip = re.compile(r'name="csrf_token"[^>]*>|value="[^"]*"')
    assert strip.sub("", known.get_data(as_text=True)) == strip.sub(
        "", unknown.get_data(as_text=True)
    )


def test_recover_username_lists_every_username_of_the_address(patient):
    """Accounts of one address are listed together, whether linked to records or older."""
    with patient.session_factory() as session:
        first = session.scalar(select(User).where(User.username == "ana.perez"))
        session.add(
            User(
                portal="patient",
                username="ana.segunda",
                email="ana@example.org",
                full_name="Ana",
                password_hash=first.password_hash,
                status="active",
                role="patient",
            )
        )
        session.commit()
    answer = submit(
        patient.client, "/patient/recover/username", {"email": "ANA@example.org"}, follow=True
    )
    assert "Si hay usuarios asociados" in answer.get_data(as_text=True)
    text = body_text(patient.mailbox.wait_for("ana@example.org", "Sus usuarios"))
    assert "ana.perez" in text and "ana.segunda" in text


def test_recover_username_answers_the_same_for_an_unknown_address(patient):
    known = submit(patient.client, "/patient/recover/username", {"email": "ana@example.org"})
    unknown = submit(patient.client, "/patient/recover/username", {"email": "x@example.org"})
    assert known.status_code == unknown.status_code == 302
    assert known.headers["Location"] == unknown.headers["Location"]
    patient.mailbox.wait_for("ana@example.org", "Sus usuarios")
    assert not patient.mailbox.to("x@example.org")


def recover_password(stack, email="ana@example.org", username="ana.perez"):
    return submit(stack.client, "/patient/recover/password", {"email": email, "username": username})


def temporary_password_after_confirming(stack) -> str:
    confirm = stack.mailbox.wait_for("ana@example.org", "Confirme el cambio")
    page = press_link_button(stack.client, link_in(confirm, "/patient/reset/"))
    assert "contraseña temporal" in page.get_data(as_text=True)
    message = stack.mailbox.wait_for("ana@example.org", "contraseña temporal")
    return re.search(r"^\s{4}(\S+)\s*$", body_text(message), re.M).group(1)


def test_password_recovery_unlocks_and_forces_a_new_password(patient):
    for _ in range(5):
        login(patient.client, password="Mala1234")
    recover_password(patient)
    temporary = temporary_password_after_confirming(patient)

    signed_in = login(patient.client, password=temporary)
    assert signed_in.headers["Location"].endswith("/patient/account/password")
    assert patient.client.get("/patient/").headers["Location"].endswith("/patient/account/password")
    changed = submit(
        patient.client,
        "/patient/account/password",
        {
            "current_password": temporary,
            "new_password": NEW_PASSWORD,
            "new_password_confirm": NEW_PASSWORD,
        },
    )
    assert changed.headers["Location"].endswith("/patient/")
    assert patient.client.get("/patient/").status_code == 200
    assert login(patient.new_client(), password=NEW_PASSWORD).status_code == 302


def test_temporary_password_works_only_once(patient):
    recover_password(patient)
    temporary = temporary_password_after_confirming(patient)
    assert login(patient.client, password=temporary).status_code == 302
    again = login(patient.new_client(), password=temporary).get_data(as_text=True)
    assert "contraseña temporal venció" in again


def test_reset_link_works_only_once_and_opening_it_changes_nothing(patient):
    recover_password(patient)
    link = link_in(patient.mailbox.wait_for("ana@example.org", "Confirme el cambio"), "/reset/")
    for _scan in range(2):
        assert "Enviarme una contraseña temporal" in patient.new_client().get(link).get_data(
            as_text=True
        )
    with patient.session_factory() as session:
        token = session.scalar(select(EmailToken).where(EmailToken.purpose == "password_reset"))
        assert token.used_at is None
    assert not [m for m in patient.mailbox.to("ana@example.org") if "temporal" in m["Subject"]]
    press_link_button(patient.client, link)
    assert patient.client.get(link).status_code == 410


def test_a_reset_press_retried_after_it_was_applied_gets_the_same_answer_and_one_password(
    patient,
):
    recover_password(patient)
    link = link_in(patient.mailbox.wait_for("ana@example.org", "Confirme el cambio"), "/reset/")
    path = "/" + link.split("://", 1)[-1].split("/", 1)[-1]
    token = csrf_token(patient.client, path)
    answers = [
        patient.client.post(path, data={"csrf_token": token}, follow_redirects=False)
        for _press in range(2)
    ]
    assert [a.status_code for a in answers] == [302, 302]
    assert all(a.headers["Location"].endswith("/patient/login") for a in answers)
    assert "contraseña temporal" in patient.client.get("/patient/login").get_data(as_text=True)
    patient.mailbox.wait_for("ana@example.org", "contraseña temporal")
    assert (
        len([m for m in patient.mailbox.to("ana@example.org") if "temporal" in m["Subject"]]) == 1
    )
    assert patient.client.get(link).status_code == 410


def test_password_recovery_answers_the_same_when_the_pair_does_not_match(patient):
    matching = recover_password(patient)
    wrong = recover_password(patient, username="otra.persona")
    assert matching.headers["Location"] == wrong.headers["Location"]
    patient.mailbox.wait_for("ana@example.org", "Confirme el cambio")
    assert len(patient.mailbox.to("ana@example.org")) == 1


def test_copied_cookie_stops_working_after_logout(patient):
    login(patient.client)
    thief = patient.new_client()
    for cookie in patient.client._cookies.values():
        thief.set_cookie(cookie.key, cookie.value, domain=cookie.domain)
    assert thief.get("/patient/").status_code == 200
    submit(patient.client, "/patient/logout", {}, form_page="/patient/")
    assert thief.get("/patient/").status_code == 302
    with patient.session_factory() as session:
        actions = list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
    assert actions[-2:] == ["login", "logout"]


def test_changing_the_password_ends_the_other_sessions(patient):
    login(patient.client)
    other = patient.new_client()
    login(other)
    submit(
        patient.client,
        "/patient/account/password",
        {
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "new_password_confirm": NEW_PASSWORD,
        },
    )
    assert patient.client.get("/patient/").status_code == 200
    assert other.get("/patient/").status_code == 302


def test_keep_me_signed_in_lasts_thirty_days_and_otherwise_ends_with_the_browser(patient):
    login(patient.client, remember_me="y")
    remember = patient.client.get_cookie("remember_token")
    assert remember is not None and remember.expires is not None
    browser_only = patient.new_client()
    login(browser_only)
    assert browser_only.get_cookie("remember_token") is None
    with patient.session_factory() as session:
        rows = session.scalars(select(UserSession).order_by(UserSession.created_at)).all()
        days = sorted(round((r.expires_at - r.created_at).total_seconds() / 86400) for r in rows)
    assert days == [0, 30]


def test_wrong_current_password_is_reported_beside_the_field(patient):
    login(patient.client)
    page = submit(
        patient.client,
        "/patient/account/password",
        {
            "current_password": "Incorrecta1",
            "new_password": NEW_PASSWORD,
            "new_password_confirm": NEW_PASSWORD,
        },
    ).get_data(as_text=True)
    assert "La contraseña actual no es correcta" in page
    with patient.session_factory() as session:
        user = session.scalar(select(User).where(User.username == "ana.perez"))
    assert user.must_change_password is False


def test_applicant_cannot_reach_staff_pages(patient):
    login(patient.client)
    assert patient.client.get("/staff/").status_code == 403
    assert patient.client.get("/staff/audit").status_code == 403


def test_repeated_recovery_requests_join_the_pending_one_instead_of_flooding_the_mailbox(
    patient, dev_server, background_loop
):
    from processes.recovery import service as recovery
    from processes.recovery.workflows import PasswordResetWorkflow

    with patient.app.app_context():
        portal = patient.app.extensions["acceso.portals"]["patient"]
        secret = patient.app.config["SECRET_KEY"]
        reset_id = recovery.password_reset_id(secret, portal, 1)
        reminder_id = recovery.username_reminder_id(secret, portal, "ANA@example.org")

    recover_password(patient)
    patient.mailbox.wait_for("ana@example.org", "Confirme el cambio")
    recover_password(patient)
    reset = dev_server.client.get_workflow_handle(reset_id)

    def after_second_request():
        status = background_loop.run(reset.query(PasswordResetWorkflow.get_status))
        return status if status.requests == 2 else None

    status = wait_until(after_second_request, what="the second request to reach the reset")
    assert status.links_sent == 1

    submit(patient.client, "/patient/recover/username", {"email": "ana@example.org"})
    patient.mailbox.wait_for("ana@example.org", "Sus usuarios")
    reminder = dev_server.client.get_workflow_handle(reminder_id)
    first_run = background_loop.run(reminder.describe()).run_id
    submit(patient.client, "/patient/recover/username", {"email": "Ana@Example.org"})
    assert background_loop.run(reminder.describe()).run_id == first_run
    assert (
        len([m for m in patient.mailbox.to("ana@example.org") if "usuarios" in m["Subject"]]) == 1
    )
