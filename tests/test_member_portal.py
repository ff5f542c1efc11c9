"""The member portal as seed 001 describes it, and its help desk, through the web forms, the real
worker on the dev server, the SMTP sink and the database."""

from __future__ import annotations

import re

import pytest
from limits import parse_many
from sqlalchemy import select

from portal.models import (
    IdentityTry,
    MemberRecord,
    Registration,
    SecurityAnswer,
    SupportCase,
    User,
)
from portal.passwords import hash_password, verify_answer
from processes.registration.workflows import RegistrationWorkflow
from tests.fixtures.smtp import body_text, link_in
from tests.fixtures.stack import press_link_button, submit
from tests.fixtures.staff import add_staff, sign_in_staff

pytestmark = pytest.mark.dialects

PASSWORD = "Clave123segura"
STAFF_PASSWORD = "Mesa-de-ayuda-1"
HELPDESK = "WebSupport@CHNCT.org"
SEED_MESSAGE = "La información personal que usted ha puesto no se puede validar con nuestro sistema"
CARLOS = {
    "birth_day": "3",
    "birth_month": "11",
    "birth_year": "1979",
    "first_name": "Carlos",
    "last_name": "Santos",
    "suffix": "Jr.",
    "client_id": "100200301",
}
WRONG = {**CARLOS, "suffix": ""}


@pytest.fixture
def members(stack):
    with stack.session_factory() as session:
        session.add_all(
            [
                MemberRecord(
                    portal="member",
                    client_id="100200301",
                    first_name="Carlos",
                    last_name="Santos",
                    suffix="Jr.",
                    date_of_birth="1979-11-03",
                    email="carlos.santos@example.com",
                ),
                MemberRecord(
                    portal="member",
                    client_id="100200300",
                    first_name="Ana",
                    last_name="Rodríguez",
                    suffix="",
                    date_of_birth="1985-04-12",
                    email="ana.rodriguez@example.com",
                ),
            ]
        )
        session.commit()
    return stack


def staff_client(stack, username="marta", roles="support", portals=""):
    add_staff(stack.session_factory, username, STAFF_PASSWORD, roles=roles, portals=portals)
    client = stack.new_client()
    response = sign_in_staff(client, stack.session_factory, username, STAFF_PASSWORD)
    assert response.status_code == 302
    return client


def accept(client):
    response = submit(client, "/member/register", {"agreement": "accept"})
    assert response.status_code == 302, response.get_data(as_text=True)
    return response


def identity(client, data, form_page=""):
    return submit(client, "/member/register", data, form_page=form_page)


def credentials(client, **overrides):
    data = {
        "username": "carlos.santos",
        "email": "carlos@example.org",
        "email_confirm": "carlos@example.org",
        "password": PASSWORD,
        "password_confirm": PASSWORD,
        "security_question_1": "1",
        "security_answer_1": "Hartford",
        **overrides,
    }
    return submit(client, "/member/register", data)


def review(client, **data):
    return submit(client, "/member/register", data)


def page(client) -> str:
    return client.get("/member/register").get_data(as_text=True)


def registration_of(stack, client) -> Registration:
    with client.session_transaction() as flask_session:
        reference = flask_session["member_registration"]["reference"]
    with stack.session_factory() as session:
        return session.scalar(select(Registration).where(Registration.reference == reference))


def strike_out(client):
    for _ in range(3):
        response = identity(client, WRONG)
    return response


def test_declining_the_agreement_returns_to_login_and_keeps_nothing(members):
    text = page(members.client)
    assert "De acuerdo" in text and "En desacuerdo" in text and "Acuerdo de licencia" in text
    response = submit(members.client, "/member/register", {"agreement": "decline"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/member/login")
    with members.client.session_transaction() as flask_session:
        assert "member_registration" not in flask_session
    with members.session_factory() as session:
        assert session.scalar(select(Registration.id)) is None


def test_accepting_again_after_a_lost_answer_resumes_the_same_registration(members):
    client = members.client
    text = page(client)
    form = {
        "csrf_token": re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', text)[1],
        "form_key": re.search(r'name="form_key" type="hidden" value="([^"]+)"', text)[1],
        "agreement": "accept",
    }
    assert client.post("/member/register", data=form).status_code == 302
    started = registration_of(members, client)
    with client.session_transaction() as flask_session:
        flask_session.pop("member_registration")

    again = client.post("/member/register", data=form)

    assert again.status_code == 302 and again.headers["Location"].endswith("/member/register")
    assert registration_of(members, client).reference == started.reference
    assert "Información personal" in page(client)
    with members.session_factory() as session:
        assert session.scalars(select(Registration.reference)).all() == [started.reference]


def test_date_of_birth_is_typed_as_day_month_and_year_with_one_clear_message(members):
    client = members.client
    accept(client)
    impossible = identity(client, {**CARLOS, "birth_day": "31", "birth_month": "2"})
    text = impossible.get_data(as_text=True)
    assert "Esa fecha no existe. Revise el día y el mes" in text
    assert '<a href="#birth_day">Fecha de nacimiento: Esa fecha' in text
    assert 'id="birth-error"' in text and 'aria-describedby="birth-help birth-error"' in text
    assert 'value="31"' in text and '<option selected value="2">' in text
    assert 'value="Carlos"' in text
    missing = identity(client, {**CARLOS, "birth_year": ""}).get_data(as_text=True)
    assert "Escriba su fecha de nacimiento completa" in missing
    with members.session_factory() as session:
        assert session.scalar(select(IdentityTry.id)) is None  # never reached the record


def test_each_step_says_where_you_are_and_every_step_after_the_first_goes_back(members):
    client = members.client
    first = page(client)
    assert "Paso 1 de 4" in first and 'aria-current="step">Acuerdo de licencia' in first
    accept(client)
    second = page(client)
    assert "Paso 2 de 4" in second and 'aria-current="step">Información personal' in second
    assert submit(client, "/member/register", {"action": "previous"}).status_code == 302
    assert "Paso 1 de 4" in page(client)
    accept(client)
    with members.session_factory() as session:
        assert len(session.scalars(select(Registration.id)).all()) == 1  # not a second one

    assert identity(client, CARLOS).status_code == 302
    assert "Paso 3 de 4" in page(client)
    assert submit(client, "/member/register", {"action": "previous"}).status_code == 302
    validated = page(client)
    assert "Paso 2 de 4" in validated and "Ya validamos su información personal" in validated
    assert "3 nov 1979" in validated
    assert submit(client, "/member/register", {"action": "next"}).status_code == 302
    assert "Paso 3 de 4" in page(client)
    assert credentials(client).status_code == 302
    assert "Paso 4 de 4" in page(client)


def test_whole_path_creates_an_inactive_account_confirmed_by_email(members):
    client = members.client
    accept(client)

    failed = identity(client, WRONG).get_data(as_text=True)
    assert SEED_MESSAGE in failed
    assert 'value="100200301"' in failed and 'value="1979"' in failed

    # Exact as on the card, but spaces and letter case do not matter.
    matched = identity(
        client, {**CARLOS, "first_name": "  carlos ", "last_name": "SANTOS", "suffix": "jr."}
    )
    assert matched.status_code == 302

    bad = credentials(client, email_confirm="otro@example.org", password_confirm="Distinta123")
    text = bad.get_data(as_text=True)
    assert "Los correos electrónicos no coinciden" in text
    assert "Las contraseñas no coinciden" in text
    assert 'value="carlos.santos"' in text and PASSWORD not in text

    assert credentials(client).status_code == 302
    summary = page(client)
    for shown in ("carlos.santos", "carlos@example.org", "100200301", "3 nov 1979", "Jr."):
        assert shown in summary
    assert "¿En qué ciudad nació su madre?" in summary
    assert PASSWORD not in summary and "Hartford" not in summary
    with client.session_transaction() as flask_session:
        cookie_state = str(flask_session["member_registration"])
    assert PASSWORD not in cookie_state and "Hartford" not in cookie_state

    # Previous keeps the values; the password and answer may stay blank (kept as hashes).
    assert review(client, action="previous").status_code == 302
    back = page(client)
    assert 'value="carlos.santos"' in back and 'value="carlos@example.org"' in back
    assert (
        credentials(client, password="", password_confirm="", security_answer_1="").status_code
        == 302
    )

    uncertified = review(client, action="finish").get_data(as_text=True)
    assert "certificación de usuario" in uncertified.lower() and "Marque la casilla" in uncertified

    done = review(client, action="finish", certify="y")
    assert done.status_code == 302 and "/member/register/done/" in done.headers["Location"]
    with members.session_factory() as session:
        user = session.scalar(select(User).where(User.username == "carlos.santos"))
        answer = session.scalar(select(SecurityAnswer).where(SecurityAnswer.user_id == user.id))
    assert (user.status, user.client_id, user.role) == ("unconfirmed", "100200301", "member")
    assert user.password_hash.startswith("$argon2id$")
    assert answer.question == "¿En qué ciudad nació su madre?"
    assert verify_answer(answer.answer_hash, "HARTFORD") and "Hartford" not in answer.answer_hash

    message = members.mailbox.wait_for("carlos@example.org", "Confirme")
    confirmed = press_link_button(client, link_in(message, "/member/confirm/"))
    assert "Su usuario está confirmado" in confirmed.get_data(as_text=True)
    login = submit(
        members.new_client(), "/member/login", {"username": "carlos.santos", "password": PASSWORD}
    )
    assert login.status_code == 302 and login.headers["Location"].endswith("/member/")


def test_second_account_for_a_client_id_is_told_to_recover_its_username(members):
    with members.session_factory() as session:
        session.add(
            User(
                portal="member",
                username="carlos.viejo",
                email="carlos@example.org",
                password_hash=hash_password(PASSWORD),
                status="active",
                role="member",
                client_id="100200301",
            )
        )
        session.commit()
    accept(members.client)
    response = identity(members.client, CARLOS)
    assert response.status_code == 409
    assert "Recuperar usuario" in response.get_data(as_text=True)


def test_three_strikes_send_the_applicant_to_the_help_desk_and_retry_is_allowed(members):
    client = members.client
    accept(client)
    escalated = strike_out(client)
    assert escalated.status_code == 302
    text = page(client)
    assert HELPDESK in text and "Pida ayuda" in text

    # Further tries for this registration are refused.
    again = identity(client, CARLOS, form_page="/member/login")
    assert HELPDESK in again.get_data(as_text=True)
    with members.session_factory() as session:
        assert len(session.scalars(select(IdentityTry)).all()) == 3

    alert = members.mailbox.wait_for(HELPDESK, "validación de identidad")
    case_link = link_in(alert, "/staff/cases/")
    assert "100200301" not in body_text(alert) and "Carlos" not in body_text(alert)
    case_path = re.sub(r"^https?://[^/]+", "", case_link)

    agent = staff_client(members)
    listing = agent.get("/staff/cases").get_data(as_text=True)
    assert "•••301" in listing and "100200301" not in listing
    assert "(1979)" in listing and "1979-11-03" not in listing
    assert "/workflows/registration/member/" in listing  # Temporal UI link
    detail = agent.get(case_path).get_data(as_text=True)
    assert "En la mesa de ayuda" in detail and detail.count("no coincide") == 3
    assert "Qué no coincidió con el expediente en el último intento:</strong> sufijo" in detail

    resolved = submit(
        agent, case_path, {"outcome": "allow_retry", "note": "Llamó; el sufijo es Jr."}
    )
    assert resolved.status_code == 302
    mail = members.mailbox.wait_for("carlos.santos@example.com", "Puede continuar")
    link = re.sub(r"^https?://[^/]+", "", link_in(mail, "/member/register/continue/"))
    with members.session_factory() as session:
        case = session.scalar(select(SupportCase))
    assert (case.status, case.resolved_by) == ("retry_allowed", "staff:marta")

    # The link works in another browser, once, and restores the identity step.
    applicant = members.new_client()
    scanned = members.new_client().get(link).get_data(as_text=True)
    assert "Continuar mi registro" in scanned
    restored = press_link_button(applicant, link).get_data(as_text=True)
    assert "Número de ID del Cliente" in restored
    retried = identity(applicant, CARLOS)
    assert retried.status_code == 302, retried.get_data(as_text=True)
    assert "Cree su usuario" in page(applicant)
    assert members.new_client().get(link).status_code == 410


def test_help_desk_closes_the_case_and_the_applicant_is_told(members, dev_server, background_loop):
    client = members.client
    accept(client)
    strike_out(client)
    members.mailbox.wait_for(HELPDESK, "validación de identidad")
    workflow_id = registration_of(members, client).workflow_id
    with members.session_factory() as session:
        case_id = session.scalar(select(SupportCase.id))
    agent = staff_client(members)
    submit(agent, f"/staff/cases/{case_id}", {"outcome": "close", "note": "No es el miembro"})

    mail = members.mailbox.wait_for("carlos.santos@example.com", "cerrado")
    assert HELPDESK in body_text(mail)
    handle = dev_server.client.get_workflow_handle_for(RegistrationWorkflow.run, workflow_id)
    outcome = background_loop.run(handle.result())
    assert outcome.status == "closed"
    assert registration_of(members, client).status == "closed"
    assert "Puede empezar uno nuevo" in client.get(
        "/member/register", follow_redirects=True
    ).get_data(as_text=True)


def test_resolve_case_sent_like_the_cli_does_has_the_same_effect(
    members, dev_server, background_loop
):
    client = members.client
    accept(client)
    strike_out(client)
    members.mailbox.wait_for(HELPDESK, "validación de identidad")
    workflow_id = registration_of(members, client).workflow_id
    handle = dev_server.client.get_workflow_handle(workflow_id)
    # A plain JSON object, as `temporal workflow signal --input '{...}'` sends it.
    background_loop.run(handle.signal("resolve_case", {"outcome": "allow_retry", "agent": "ops"}))
    members.mailbox.wait_for("carlos.santos@example.com", "Puede continuar")
    with members.session_factory() as session:
        case = session.scalar(select(SupportCase))
    assert (case.status, case.resolved_by) == ("retry_allowed", "ops")
    # The same browser continues at the identity step, even before the workflow reopened it.
    assert identity(client, CARLOS).status_code == 302
    assert "Cree su usuario" in page(client)


def test_a_new_registration_does_not_reset_the_strikes_of_a_client_id(members):
    first = members.client
    accept(first)
    identity(first, WRONG)
    identity(first, WRONG)

    second = members.new_client()
    accept(second)
    response = identity(second, WRONG)
    assert response.status_code == 302 and HELPDESK in page(second)

    # At the limit with a case open, even the right data goes straight to the help desk.
    third = members.new_client()
    accept(third)
    identity(third, CARLOS)
    assert HELPDESK in page(third)
    with members.session_factory() as session:
        cases = session.scalars(select(SupportCase).order_by(SupportCase.id)).all()
    assert [c.client_id for c in cases] == ["100200301", "100200301"]
    assert cases[1].duplicate_of == cases[0].id


def test_a_retried_identity_press_gets_its_first_answer_and_spends_one_try(members):
    """A browser that resends the same form (a dropped connection, a double click) joins the
    first press's check; the page it then shows carries a new key, so the next press counts."""
    client = members.client
    accept(client)
    shown = page(client)
    form = {
        "csrf_token": re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', shown)[1],
        "form_key": re.search(r'name="form_key" type="hidden" value="([^"]+)"', shown)[1],
        **WRONG,
    }
    answers = [client.post("/member/register", data=form).get_data(as_text=True) for _ in "12"]
    assert all("Le quedan 2 intentos" in answer for answer in answers)
    with members.session_factory() as session:
        assert len(session.scalars(select(IdentityTry)).all()) == 1
    fresh_key = re.search(r'name="form_key" type="hidden" value="([^"]+)"', answers[1])[1]
    assert fresh_key != form["form_key"]
    third = client.post("/member/register", data={**form, "form_key": fresh_key})
    assert "Le quedan 1 intentos" in third.get_data(as_text=True)


def test_identity_tries_from_one_connection_are_limited_and_the_form_is_kept(members):
    """Ten tries per connection in 15 minutes by default; the eleventh keeps what was typed and
    says how long to wait, whatever the client ID."""
    members.app.extensions["acceso.rate_limits"].items["identity"] = parse_many("2/15 minutes")
    client = members.client
    accept(client)
    for _ in range(2):
        assert identity(client, WRONG).status_code == 200
    over = identity(client, CARLOS)
    assert over.status_code == 429 and int(over.headers["Retry-After"]) >= 60
    text = over.get_data(as_text=True)
    assert "demasiados intentos" in text.lower() and "15 minutos" in text
    assert 'value="100200301"' in text and 'value="1979"' in text


def test_the_default_identity_limit_is_ten_tries_in_fifteen_minutes(members):
    limits = members.app.extensions["acceso.rate_limits"].items["identity"]
    assert [(item.amount, item.get_expiry()) for item in limits] == [(10, 900), (100, 3600)]


def test_support_staff_of_another_portal_cannot_see_member_cases(members):
    accept(members.client)
    strike_out(members.client)
    members.mailbox.wait_for(HELPDESK, "validación de identidad")
    with members.session_factory() as session:
        case_id = session.scalar(select(SupportCase.id))

    patient_desk = staff_client(members, username="pablo", portals="patient")
    assert "•••301" not in patient_desk.get("/staff/cases").get_data(as_text=True)
    assert patient_desk.get(f"/staff/cases/{case_id}").status_code == 404

    member_desk = staff_client(members, username="mia", portals="member")
    assert "•••301" in member_desk.get("/staff/cases").get_data(as_text=True)

    reviewer = staff_client(members, username="rita", roles="reviewer")
    assert reviewer.get("/staff/cases").status_code == 403


def test_an_applicant_cannot_reach_staff_pages(members):
    with members.session_factory() as session:
        session.add(
            User(
                portal="member",
                username="ana.r",
                email="ana.rodriguez@example.com",
                password_hash=hash_password(PASSWORD),
                status="active",
                role="member",
                client_id="100200300",
            )
        )
        session.commit()
    anonymous = members.new_client()
    assert "/staff/login" in anonymous.get("/staff/cases").headers["Location"]
    applicant = members.new_client()
    login = submit(applicant, "/member/login", {"username": "ana.r", "password": PASSWORD})
    assert login.status_code == 302
    assert applicant.get("/staff/cases").status_code == 403
    assert applicant.get("/staff/cases/1").status_code == 403


def test_faq_page_tells_the_seeds_help_desk_steps(members):
    text = members.client.get("/member/faq").get_data(as_text=True)
    assert HELPDESK in text and "tres veces seguidas" in text
