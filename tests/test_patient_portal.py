"""The patient portal as seed 002 describes it, through the web forms, the real worker, the
dev server, the SMTP sink and the database."""

from __future__ import annotations

import re

from sqlalchemy import select

from portal.models import AuditEvent, User
from tests.fixtures.patients import PASSWORD, confirm_by_email, login, register
from tests.fixtures.smtp import body_text, link_in
from tests.fixtures.stack import submit
from tests.fixtures.waiting import wait_until


def test_registration_sends_a_confirmation_link_that_activates_the_account(clinic):
    response = register(clinic.client)
    assert response.status_code == 302
    assert "/patient/register/done/" in response.headers["Location"]

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
    clinic.client.get(link)
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


def test_email_not_on_a_clinical_record_is_sent_to_the_clinic(clinic):
    unknown = register(clinic.client, email="nadie@example.org", username="nadie")
    other = register(clinic.new_client(), email="luis@example.org", username="otro")
    assert "contáctese con la clínica" in unknown.get_data(as_text=True)
    assert other.status_code == 302
    with clinic.session_factory() as session:
        assert session.scalar(select(User).where(User.username == "nadie")) is None


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
    assert "Su usuario está confirmado" in clinic.client.get(
        second_message, follow_redirects=True
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
    register(clinic.client)
    confirm_by_email(clinic)
    with clinic.session_factory() as session:
        actions = set(session.scalars(select(AuditEvent.action)))
    assert {"registration.submitted", "email.confirm_email", "registration.email_confirmed"} <= (
        actions
    )


def test_login_page_is_spanish_by_default_and_english_on_request(clinic):
    assert "Iniciar sesión" in clinic.client.get("/patient/login").get_data(as_text=True)
    english = clinic.client.get("/patient/login?lang=en").get_data(as_text=True)
    assert re.search(r"Sign in|Log in", english)


def test_submit_while_temporal_is_down_keeps_the_form_and_stores_nothing(settings, session_factory):
    from dataclasses import replace

    from portal.models import ClinicalRecord
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
    page = register(client).get_data(as_text=True)
    assert "No pudimos completar su registro en este momento" in page
    assert 'value="ana.perez"' in page and 'value="ana@example.org"' in page
    with session_factory() as session:
        assert session.scalar(select(User)) is None
