"""The patient portal as seed 002 describes it, through the web forms, the real worker, the
dev server, the SMTP sink and the database."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from portal.models import AuditEvent, EmailToken, User
from tests.fixtures.patients import PASSWORD, confirm_by_email, login, register
from tests.fixtures.smtp import body_text, link_in
from tests.fixtures.stack import press_link_button, submit
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.dialects

CSRF_VALUE = re.compile(r'name="csrf_token" type="hidden" value="[^"]+"')


def test_registration_sends_a_confirmation_link_that_activates_the_account(clinic):
    response = register(clinic.client)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/patient/register/check-mail")

    before = login(clinic.client)
    assert "aún no está activada" in before.get_data(as_text=True)

    page = confirm_by_email(clinic).get_data(as_text=True)
    assert "Su usuario está confirmado" in page
    confirmed = clinic.mailbox.wait_for("ana@example.org", "Usuario confirmado")
    assert "ana.perez" in body_text(confirmed)

    after = login(clinic.client)
    assert after.status_code == 302 and after.headers["Location"].endswith("/patient/")
    home = clinic.client.get("/patient/").get_data(as_text=True)
    assert "Bienvenido/a, Ana Pérez" in home


def test_confirmation_link_works_only_once(clinic):
    register(clinic.client)
    message = clinic.mailbox.wait_for("ana@example.org", "Confirme")
    link = link_in(message, "/patient/confirm/")
    press_link_button(clinic.client, link)
    again = clinic.client.get(link, follow_redirects=True).get_data(as_text=True)
    assert "ya estaba confirmado" in again


def test_password_is_hashed_before_anything_else_sees_it(clinic):
    register(clinic.client)
    with clinic.session_factory() as session:
        user = session.scalar(select(User).where(User.username == "ana.perez"))
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash


def test_bad_fields_get_messages_beside_them_and_keep_what_was_typed(clinic):
    response = register(clinic.client, password="corta", password_confirm="otra", username="x")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "al menos 8 caracteres" in page
    assert "al menos una letra mayúscula" in page
    assert "al menos un número" in page
    assert "Las contraseñas no coinciden" in page
    assert "Entre 3 y 64 caracteres" in page
    assert 'value="ana@example.org"' in page
    assert 'value="Ana Pérez"' in page
    assert "corta" not in page


def test_taken_username_asks_for_another_whatever_its_case(clinic):
    register(clinic.client)
    second = register(
        clinic.new_client(), email="luis@example.org", username="ANA.PEREZ", full_name="Luis"
    )
    page = second.get_data(as_text=True)
    assert "Ese nombre de usuario ya existe" in page
    assert 'value="luis@example.org"' in page


def test_the_screen_answers_alike_and_the_mailbox_owner_learns_the_truth(clinic):
    """Being a patient is health information: on a record, off the records and already
    registered get the same redirect and the same page; only the e-mails differ."""
    register(clinic.client)
    clinic.mailbox.wait_for("ana@example.org", "Confirme")
    answers = [
        register(clinic.new_client(), email="luis@example.org", username="luis.m"),
        register(clinic.new_client(), email="nadie@example.org", username="nadie"),
        register(clinic.new_client(), email="ana@example.org", username="ana.otra"),
    ]
    assert {(a.status_code, a.headers["Location"]) for a in answers} == {
        (302, "/patient/register/check-mail")
    }
    pages = {
        CSRF_VALUE.sub("", clinic.new_client().get(a.headers["Location"]).get_data(as_text=True))
        for a in answers
    }
    assert len(pages) == 1

    assert link_in(clinic.mailbox.wait_for("luis@example.org", "Confirme"), "/patient/confirm/")
    no_record = body_text(clinic.mailbox.wait_for("nadie@example.org", "Sobre su registro"))
    assert "ninguna Historia Clínica" in no_record and "ayuda@clinica.example" in no_record
    existing = body_text(clinic.mailbox.wait_for("ana@example.org", "Sobre su registro"))
    assert "ya tiene un usuario" in existing and "/patient/recover/username" in existing
    with clinic.session_factory() as session:
        usernames = set(session.scalars(select(User.username)))
    assert usernames == {"ana.perez", "luis.m"}


def test_opening_the_link_as_a_mail_scanner_does_changes_nothing(clinic):
    register(clinic.client)
    link = link_in(clinic.mailbox.wait_for("ana@example.org", "Confirme"), "/patient/confirm/")
    scanned = clinic.new_client().get(link)
    assert scanned.status_code == 200
    assert "Confirmar mi correo electrónico" in scanned.get_data(as_text=True)
    with clinic.session_factory() as session:
        user = session.scalar(select(User).where(User.username == "ana.perez"))
        token = session.scalar(select(EmailToken).where(EmailToken.purpose == "confirm_email"))
    assert user.status == "unconfirmed" and token.used_at is None
    assert "Su usuario está confirmado" in press_link_button(clinic.client, link).get_data(
        as_text=True
    )


def test_the_same_form_sent_twice_gets_the_first_answer(clinic):
    page = clinic.client.get("/patient/register").get_data(as_text=True)
    form = {
        "csrf_token": re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)[1],
        "form_key": re.search(r'name="form_key" type="hidden" value="([^"]+)"', page)[1],
        "email": "ana@example.org",
        "username": "ana.perez",
        "password": PASSWORD,
        "password_confirm": PASSWORD,
        "full_name": "Ana Pérez",
    }
    first = clinic.client.post("/patient/register", data=form)
    again = clinic.client.post("/patient/register", data=form)
    assert first.headers["Location"] == again.headers["Location"]
    assert again.headers["Location"].endswith("/patient/register/check-mail")
    clinic.mailbox.wait_for("ana@example.org", "Confirme")
    with clinic.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 1


def test_forms_without_csrf_token_are_refused(clinic):
    response = clinic.client.post(
        "/patient/register",
        data={"email": "ana@example.org", "username": "ana", "password": PASSWORD},
    )
    assert response.status_code == 400


def test_confirmation_can_be_resent_from_the_login_page(clinic):
    register(clinic.client)
    first = link_in(clinic.mailbox.wait_for("ana@example.org", "Confirme"), "/confirm/")
    page = login(clinic.client).get_data(as_text=True)
    assert "Reenviar el correo de confirmación" in page
    submit(
        clinic.client,
        "/patient/confirm/resend",
        {"username": "ana.perez"},
        form_page="/patient/login",
    )
    deadline_messages = clinic.mailbox.to("ana@example.org")
    assert deadline_messages
    second_message = wait_for_new_link(clinic, first)
    assert "ya no sirve" in clinic.client.get(first).get_data(as_text=True)
    assert "Su usuario está confirmado" in press_link_button(
        clinic.client, second_message
    ).get_data(as_text=True)


def wait_for_new_link(stack, old_link):
    def new_link():
        for message in stack.mailbox.to("ana@example.org"):
            if "Confirme" in str(message["Subject"]):
                link = link_in(message, "/confirm/")
                if link != old_link:
                    return link
        return None

    return wait_until(new_link, what="a second confirmation link")


def test_every_step_leaves_an_audit_event(clinic):
    """The e-mail's audit line is written after the SMTP server answers, so it may follow the
    message into the mailbox by a moment: the test waits for it rather than reading at once."""
    register(clinic.client)
    confirm_by_email(clinic)
    wanted = {"registration.submitted", "email.confirm_email", "registration.email_confirmed"}

    def actions():
        with clinic.session_factory() as session:
            return set(session.scalars(select(AuditEvent.action)))

    wait_until(lambda: wanted <= actions(), what="the registration's audit lines")


def test_login_page_is_spanish_by_default_and_english_on_request(clinic):
    assert "Iniciar sesión" in clinic.client.get("/patient/login").get_data(as_text=True)
    english = clinic.client.get("/patient/login?lang=en").get_data(as_text=True)
    assert re.search(r"Sign in|Log in", english)


def test_submit_while_temporal_is_down_is_accepted_and_its_start_waits_in_the_outbox(
    settings, session_factory
):
    from dataclasses import replace

    from portal.models import ClinicalRecord, OutboxMessage
    from tests.fixtures.smtp import free_port
    from web import create_app

    with session_factory() as session:
        session.add(
            ClinicalRecord(
                portal="patient", record_number="HC-9", full_name="Ana", email="ana@example.org"
            )
        )
        session.commit()
    down = replace(settings, temporal_address=f"127.0.0.1:{free_port()}")
    client = create_app({"SETTINGS": down, "TESTING": True}).test_client()
    answer = register(client)
    assert answer.headers["Location"].endswith("/patient/register/check-mail")
    with session_factory() as session:
        user = session.scalar(select(User))
        owed = session.scalar(select(OutboxMessage))
    assert user.username == "ana.perez" and user.status == "unconfirmed"
    assert owed.workflow == "RegistrationWorkflow" and owed.relayed_at is None
