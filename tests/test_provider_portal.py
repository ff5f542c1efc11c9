"""The provider portal as seed 000 describes it, through the web forms, the real worker on the
dev server, the SMTP sink and the database: the three-step wizard, the reviewer's decision, the
e-mails on each side, office employees, recovery and the support phones."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.models import (
    AuditEvent,
    Invitation,
    Registration,
    RegistrationDraft,
    User,
    UserSession,
)
from processes.registration.vocabulary import ReviewDecision
from tests.fixtures.second_factor import complete_second_factor
from tests.fixtures.smtp import body_text, link_in
from tests.fixtures.stack import press_link_button, submit
from tests.fixtures.staff import add_staff, sign_in_staff
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.dialects

PASSWORD = "clave-segura-1"
NPI = "1234567893"
TAX_ID = "04-3456789"
QUESTIONS = [
    "¿Cuál es el nombre de su primera mascota?",
    "¿En qué ciudad nació su madre?",
    "¿Cuál fue su primera escuela?",
]
ANSWERS = ["Firulais", "Ponce", "Escuela Central"]
REVIEWER_PASSWORD = "Revisora-2026"


def user_step(**overrides) -> dict:
    data = {
        "first_name": "Marta",
        "last_name": "Rivera",
        "email": "marta@clinica.example",
        "phone": "(787) 758-2000",
        "username": "mrivera",
        "password": PASSWORD,
        "password_confirm": PASSWORD,
    }
    for n, (question, answer) in enumerate(zip(QUESTIONS, ANSWERS, strict=True), 1):
        data[f"security_question_{n}"] = question
        data[f"security_answer_{n}"] = answer
    return {**data, **overrides}


def office_step(**overrides) -> dict:
    return {
        "organization_name": "Centro Médico Rivera",
        "tax_id": TAX_ID,
        "npi": NPI,
        "address_line1": "Calle Luna 12",
        "address_line2": "Suite 3",
        "city": "San Juan",
        "state": "pr",
        "postal_code": "00901",
        **overrides,
    }


def register(client, user=None, office=None):
    """Walks the three steps; returns the Finish response."""
    first = submit(client, "/provider/register", user or user_step())
    assert first.status_code == 302, first.get_data(as_text=True)
    second = submit(client, "/provider/register/office", office or office_step())
    assert second.status_code == 302, second.get_data(as_text=True)
    return submit(client, "/provider/register/summary", {"action": "finish"})


def reference_of(response) -> str:
    return response.headers["Location"].rsplit("/", 1)[1]


def confirm(stack, to="marta@clinica.example"):
    message = stack.mailbox.wait_for(to, "Confirme")
    return press_link_button(stack.new_client(), link_in(message, "/provider/confirm/"))


def registration(stack, reference) -> Registration:
    with stack.session_factory() as session:
        return session.scalar(select(Registration).where(Registration.reference == reference))


def awaiting_review(stack, reference):
    wait_until(
        lambda: registration(stack, reference).status == "review", what="review step reached"
    )


def login(client, username="mrivera", password=PASSWORD):
    """Password, then the second factor when the account has one or the portal requires it."""
    answer = submit(client, "/provider/login", {"username": username, "password": password})
    return complete_second_factor(client, answer)


@pytest.fixture
def reviewer(stack):
    add_staff(
        stack.session_factory,
        "rita",
        REVIEWER_PASSWORD,
        roles="reviewer",
        full_name="Rita Revisora",
    )
    client = stack.new_client()
    response = sign_in_staff(client, stack.session_factory, "rita", REVIEWER_PASSWORD)
    assert response.status_code == 302
    return client


def decide(client, reference, action, reason=""):
    return submit(
        client,
        f"/staff/reviews/{reference}",
        {"action": action, "reason": reason},
        form_page=f"/staff/reviews/{reference}",
    )


def approved_provider(stack, reviewer, user=None, office=None) -> str:
    reference = reference_of(register(stack.new_client(), user, office))
    confirm(stack, (user or user_step())["email"])
    awaiting_review(stack, reference)
    assert decide(reviewer, reference, "approve").status_code == 302
    wait_until(lambda: registration(stack, reference).status == "approved", what="approval applied")
    return reference


def test_application_is_confirmed_reviewed_approved_and_mailed(stack, reviewer):
    finish = register(stack.client)
    assert finish.status_code == 302
    reference = reference_of(finish)
    done = stack.client.get(finish.headers["Location"]).get_data(as_text=True)
    assert reference in done and "24 horas" in done

    with stack.session_factory() as session:
        user = session.scalar(select(User).where(User.username == "mrivera"))
        assert (user.status, user.role, user.phone) == (
            "unconfirmed",
            "provider_primary",
            "+17877582000",
        )
        assert user.password_hash.startswith("$argon2id$")
        answers = user.security_answers
        assert [a.question for a in answers] == QUESTIONS
        assert all(a.answer_hash.startswith("$argon2id$") for a in answers)
        assert session.scalar(select(RegistrationDraft)) is None

    page = confirm(stack).get_data(as_text=True)
    assert "en revisión" in page
    awaiting_review(stack, reference)
    assert "pendiente de aprobación" in login(stack.new_client()).get_data(as_text=True)

    queue = reviewer.get("/staff/reviews").get_data(as_text=True)
    assert reference in queue and "Centro Médico Rivera" in queue
    detail = reviewer.get(f"/staff/reviews/{reference}").get_data(as_text=True)
    assert "NPI válido" in detail and "EIN válido" in detail
    assert "marta@clinica.example" in detail and "+17877582000" in detail
    assert "confirmó su correo electrónico." in detail
    assert "Empezó la revisión; vence el" in detail
    assert "Ninguna otra oficina" in detail

    assert decide(reviewer, reference, "approve").status_code == 302
    approved = stack.mailbox.wait_for("marta@clinica.example", "aprobada")
    assert reference in body_text(approved)
    wait_until(lambda: registration(stack, reference).status == "approved")

    first = submit(stack.client, "/provider/login", {"username": "mrivera", "password": PASSWORD})
    assert first.headers["Location"].endswith("/provider/login/enrol")  # required for primaries
    signed_in = complete_second_factor(stack.client, first)
    assert "Códigos de recuperación" in signed_in.get_data(as_text=True)
    home = stack.client.get("/provider/").get_data(as_text=True)
    assert "Empleados de la oficina" in home

    again = decide(reviewer, reference, "deny", reason="otra opinión")
    assert again.status_code == 409
    assert "ya fue decidida por staff:rita" in again.get_data(as_text=True)
    with stack.session_factory() as session:
        decided = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "registration.approved")
        ).one()
        assert decided.actor == "staff:rita"
        assert registration(stack, reference).decided_by == "staff:rita"


def test_denial_needs_a_reason_mails_it_and_login_says_denied(stack, reviewer):
    reference = reference_of(register(stack.client))
    confirm(stack)
    awaiting_review(stack, reference)
    missing = decide(reviewer, reference, "deny")
    assert missing.status_code == 400
    assert "Escriba el motivo" in missing.get_data(as_text=True)

    assert decide(reviewer, reference, "deny", reason="El NPI no corresponde.").status_code == 302
    denied = stack.mailbox.wait_for("marta@clinica.example", "denegada")
    assert "El NPI no corresponde." in body_text(denied)
    wait_until(lambda: registration(stack, reference).status == "denied")
    assert "fue denegada" in login(stack.new_client()).get_data(as_text=True)
    assert decide(reviewer, reference, "approve").status_code == 409


def test_decision_from_outside_the_console_takes_the_same_path(
    stack, reviewer, dev_server, background_loop
):
    """As `temporal workflow signal` or the Temporal UI would: the signal by name."""
    reference = reference_of(register(stack.client))
    confirm(stack)
    awaiting_review(stack, reference)
    workflow_id = registration(stack, reference).workflow_id
    background_loop.run(
        dev_server.client.get_workflow_handle(workflow_id).signal(
            "review_decision", ReviewDecision(approved=True, reviewer="ops:cli")
        )
    )
    stack.mailbox.wait_for("marta@clinica.example", "aprobada")
    wait_until(lambda: registration(stack, reference).decided_by == "ops:cli")
    refused = decide(reviewer, reference, "deny", reason="tarde")
    assert refused.status_code == 409 and "ops:cli" in refused.get_data(as_text=True)


def test_denial_signalled_with_the_temporal_cli_is_applied_and_mailed(stack):
    """An operator's `temporal workflow signal`, plain JSON and no codec, as from a terminal."""
    import json
    import subprocess

    from tests.fixtures.temporal import venv_binary

    reference = reference_of(register(stack.client))
    confirm(stack)
    awaiting_review(stack, reference)
    decision = {"approved": False, "reviewer": "ops:terminal", "reason": "NPI no corresponde"}
    subprocess.run(
        [
            venv_binary("temporal"),
            "workflow",
            "signal",
            "--address",
            stack.settings.temporal_address,
            "--workflow-id",
            registration(stack, reference).workflow_id,
            "--name",
            "review_decision",
            "--input",
            json.dumps(decision),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    denial = stack.mailbox.wait_for("marta@clinica.example", "denegada")
    assert "NPI no corresponde" in body_text(denial)
    wait_until(lambda: registration(stack, reference).decided_by == "ops:terminal")


def test_wizard_checks_each_field_and_keeps_what_was_typed(stack):
    bad = submit(
        stack.client,
        "/provider/register",
        user_step(
            phone="123",
            password="corta",
            password_confirm="corta",
            security_question_2=QUESTIONS[0],
        ),
    )
    page = bad.get_data(as_text=True)
    assert bad.status_code == 200
    assert "número de teléfono válido" in page
    assert "al menos 8 caracteres" in page
    assert "Elija preguntas distintas" in page
    assert 'value="Marta"' in page and 'value="marta@clinica.example"' in page
    assert "corta" not in page and "Firulais" not in page

    assert submit(stack.client, "/provider/register", user_step()).status_code == 302
    office = submit(
        stack.client,
        "/provider/register/office",
        office_step(npi="1234567890", tax_id="00-1234567", postal_code="9"),
    )
    page = office.get_data(as_text=True)
    assert "dígito verificador" in page
    assert "Tax ID (EIN) no es válido" in page
    assert "código postal" in page
    assert 'value="Centro Médico Rivera"' in page

    assert submit(stack.client, "/provider/register/office", office_step()).status_code == 302
    summary = stack.client.get("/provider/register/summary").get_data(as_text=True)
    for shown in ("Marta", "mrivera", "+17877582000", "04-3456789", NPI, "PR 00901", QUESTIONS[0]):
        assert shown in summary
    for secret in (PASSWORD, *ANSWERS):
        assert secret not in summary

    back = submit(stack.client, "/provider/register/summary", {"action": "previous"})
    assert back.headers["Location"].endswith("/provider/register/office")
    kept = stack.client.get("/provider/register/office").get_data(as_text=True)
    assert 'value="Calle Luna 12"' in kept and f'value="{NPI}"' in kept

    with stack.client.session_transaction() as cookie:
        assert set(cookie) <= {"provider_draft", "csrf_token", "_fresh", "_flashes"}
    with stack.session_factory() as session:
        draft = session.scalars(select(RegistrationDraft)).one()
        stored = str(draft.data)
    assert PASSWORD not in stored and not any(answer in stored for answer in ANSWERS)

    # Back on step 1 the password and answers may stay blank: the hashed ones are kept.
    revisit = dict(user_step(first_name="Marta Luisa"), password="", password_confirm="")
    for n in (1, 2, 3):
        revisit[f"security_answer_{n}"] = ""
    assert submit(stack.client, "/provider/register", revisit).status_code == 302
    finish = submit(stack.client, "/provider/register/summary", {"action": "finish"})
    assert finish.status_code == 302
    with stack.session_factory() as session:
        user = session.scalar(select(User).where(User.username == "mrivera"))
        assert user.first_name == "Marta Luisa"
    assert login(stack.new_client()).status_code == 200  # pending, but the password matched
    assert "aún no está activada" in login(stack.new_client()).get_data(as_text=True)


def test_duplicate_npi_or_tax_id_is_flagged_to_the_reviewer(stack, reviewer):
    first = reference_of(register(stack.new_client()))
    second = reference_of(
        register(
            stack.new_client(),
            user_step(username="otro", email="otro@clinica.example"),
            office_step(organization_name="Otra Clínica", tax_id="04-1111111"),
        )
    )
    confirm(stack, "otro@clinica.example")
    awaiting_review(stack, second)
    detail = reviewer.get(f"/staff/reviews/{second}").get_data(as_text=True)
    assert "mismo NPI" in detail and "Centro Médico Rivera" in detail and first in detail
    assert "mismo Tax ID" not in detail


def test_applicants_and_employees_cannot_reach_the_staff_console(stack, reviewer):
    approved_provider(stack, reviewer)
    login(stack.client)
    for path in ("/staff/", "/staff/reviews", "/staff/audit"):
        assert stack.client.get(path).status_code == 403


def test_primary_invites_an_employee_who_accepts_and_can_be_disabled(stack, reviewer):
    approved_provider(stack, reviewer)
    primary = stack.client
    login(primary)
    invited = submit(
        primary,
        "/provider/account/employees",
        {"first_name": "Pedro", "last_name": "Ortiz", "email": "pedro@clinica.example"},
    )
    assert invited.status_code == 302
    message = stack.mailbox.wait_for("pedro@clinica.example", "Invitación")
    assert "Centro Médico Rivera" in body_text(message)
    link = link_in(message, "/provider/invitation/")
    with stack.session_factory() as session:
        invitation = session.scalars(select(Invitation)).one()
        assert invitation.workflow_id.startswith("invitation/provider/")
        assert "pedro" not in invitation.workflow_id

    employee = stack.new_client()
    form = employee.get(link).get_data(as_text=True)
    assert "Pedro Ortiz" in form
    accepted = submit(
        employee,
        link,
        {"username": "portiz", "password": "empleado-123", "password_confirm": "empleado-123"},
    )
    assert accepted.status_code == 302
    assert employee.get(link).status_code == 410
    assert login(employee, "portiz", "empleado-123").status_code == 302
    with stack.session_factory() as session:
        pedro = session.scalar(select(User).where(User.username == "portiz"))
        mrivera = session.scalar(select(User).where(User.username == "mrivera"))
        assert (pedro.role, pedro.office_id, pedro.status) == (
            "provider_employee",
            mrivera.office_id,
            "active",
        )
        pedro_id = pedro.id

    assert employee.get("/provider/account/employees").status_code == 403
    assert employee.get("/staff/reviews").status_code == 403
    listing = primary.get("/provider/account/employees").get_data(as_text=True)
    assert "portiz" in listing and "Activo" in listing

    disabled = submit(
        primary,
        f"/provider/account/employees/{pedro_id}/disable",
        {},
        form_page="/provider/account/employees",
    )
    assert disabled.status_code == 302
    with stack.session_factory() as session:
        assert (
            session.scalars(select(UserSession).where(UserSession.user_id == pedro_id)).all() == []
        )
    assert employee.get("/provider/").status_code == 302
    assert "acceso fue desactivado" in login(employee, "portiz", "empleado-123").get_data(
        as_text=True
    )

    submit(
        primary,
        f"/provider/account/employees/{pedro_id}/enable",
        {},
        form_page="/provider/account/employees",
    )
    assert login(employee, "portiz", "empleado-123").status_code == 302
    with stack.session_factory() as session:
        actions = [
            e.action
            for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))
            if e.action.startswith(("invitation.", "employee."))
        ]
    assert actions == [
        "invitation.sent",
        "invitation.accepted",
        "employee.disabled",
        "employee.enabled",
    ]


def test_primary_revokes_a_pending_invitation_and_its_link_stops_working(stack, reviewer):
    approved_provider(stack, reviewer)
    login(stack.client)
    submit(
        stack.client,
        "/provider/account/employees",
        {"first_name": "Ana", "last_name": "Soto", "email": "ana@clinica.example"},
    )
    link = link_in(stack.mailbox.wait_for("ana@clinica.example", "Invitación"), "/invitation/")
    with stack.session_factory() as session:
        invitation_id = session.scalars(select(Invitation.id)).one()
    revoked = submit(
        stack.client,
        f"/provider/account/invitations/{invitation_id}/revoke",
        {},
        form_page="/provider/account/employees",
    )
    assert revoked.status_code == 302

    def status():
        with stack.session_factory() as session:
            return session.get(Invitation, invitation_id).status

    wait_until(lambda: status() == "revoked", what="invitation revoked")
    assert stack.new_client().get(link).status_code == 410
    listing = stack.client.get("/provider/account/employees").get_data(as_text=True)
    assert "No hay invitaciones pendientes" in listing


def test_forgotten_username_and_password_for_a_provider(stack, reviewer):
    approved_provider(stack, reviewer)
    client = stack.new_client()
    mistyped = submit(
        client,
        "/provider/recover/username",
        {"first_name": "Martha", "last_name": "Rivera", "email": "marta@clinica.example"},
    )
    response = submit(
        client,
        "/provider/recover/username",
        {"first_name": "Marta", "last_name": "Rivera", "email": "marta@clinica.example"},
    )
    assert mistyped.headers["Location"] == response.headers["Location"]
    reminder = stack.mailbox.wait_for("marta@clinica.example", "Sus usuarios")
    assert "mrivera" in body_text(reminder)

    requested = submit(client, "/provider/recover/password", {"username": "mrivera"})
    assert requested.status_code == 302
    mail = stack.mailbox.wait_for("marta@clinica.example", "Cambie su contraseña")
    link = link_in(mail, "/provider/reset/")
    form = client.get(link).get_data(as_text=True)
    assert 'name="password"' in form
    changed = submit(
        client, link, {"password": "nueva-clave-9", "password_confirm": "nueva-clave-9"}
    )
    assert changed.status_code == 302
    fresh = stack.new_client()
    login(fresh, password="nueva-clave-9")
    assert fresh.get("/provider/account/password").status_code == 200  # signed in
    assert login(stack.new_client()).status_code == 200


@pytest.mark.parametrize(
    "path", ["/provider/login", "/provider/register", "/provider/faq", "/provider/recover/username"]
)
def test_every_page_shows_the_support_phones_from_the_portal_config(stack, path):
    page = stack.client.get(path).get_data(as_text=True)
    assert "1-877-814-9909" in page and "1-800-611-1474" in page
    assert "Servicio al Proveedor" in page


def test_queue_lists_oldest_first_with_time_left_and_overdue_flag(stack, reviewer):
    """Rendered from the read model and the audit trail alone, as the workflow leaves them."""
    from datetime import timedelta

    from portal.models import utcnow

    now = utcnow()
    with stack.session_factory() as session:
        for reference, started, overdue in (("NEWER00001", 2, False), ("OLDER00001", 30, True)):
            workflow_id = f"registration/provider/{reference}"
            session.add(
                Registration(
                    reference=reference,
                    portal="provider",
                    workflow_id=workflow_id,
                    status="review",
                    overdue=overdue,
                    details={"office": {"organization_name": f"Oficina {reference}"}},
                )
            )
            session.add(
                AuditEvent(
                    at=now - timedelta(hours=started),
                    actor="system",
                    action="registration.review_started",
                    portal="provider",
                    workflow_id=workflow_id,
                    detail={"due_at": (now + timedelta(hours=24 - started)).isoformat()},
                )
            )
        session.commit()
    page = reviewer.get("/staff/reviews").get_data(as_text=True)
    assert page.index("OLDER00001") < page.index("NEWER00001")
    assert "Vencida" in page and "vencido hace 6 h" in page
    assert "21 h" in page
