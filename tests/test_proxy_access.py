"""Proxy access over HTTP on the real stack (dev server, worker, SMTP, database): an adult invites
someone who accepts with their own account; a parent asks for a child and staff approve; a
relative asks for an adult who approves by e-mailed link; either side ends a grant; a proxy acts
for the person (header, audit lines naming both) until the grant ends, and the next request
goes back to their own view. Bad input (a mismatch, a request for oneself, a duplicate, a used
link, the wrong person) changes nothing."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from portal.models import (
    AuditEvent,
    ClinicalRecord,
    EmailToken,
    IdentityStrikes,
    ProxyGrant,
    utcnow,
)
from tests.fixtures.patients import PASSWORD, confirm_by_email, login, register
from tests.fixtures.smtp import body_text, link_in
from tests.fixtures.stack import csrf_token, press_link_button, submit
from tests.fixtures.staff import add_staff, sign_in_staff
from tests.fixtures.waiting import wait_until

ANA = "ana@example.org"
LUIS = "luis@example.org"
STAFF_PASSWORD = "una frase de paso larga"


@pytest.fixture
def family(clinic):
    """Ana and Luis, each registered and signed in in their own browser; Ana's daughter Sofía
    has a record (and no account)."""
    with clinic.session_factory() as session:
        session.execute(
            update(ClinicalRecord)
            .where(ClinicalRecord.record_number == "HC-1")
            .values(date_of_birth="1980-04-02")
        )
        session.execute(
            update(ClinicalRecord)
            .where(ClinicalRecord.record_number == "HC-2")
            .values(date_of_birth="1975-09-30")
        )
        session.add(
            ClinicalRecord(
                portal="patient",
                record_number="HC-3",
                full_name="Sofía Pérez",
                email=ANA,
                date_of_birth="2019-06-15",
            )
        )
        session.commit()
    register(clinic.client)
    confirm_by_email(clinic)
    register(clinic.client, email=LUIS, username="luis.gomez", full_name="Luis Gómez")
    confirm_by_email(clinic, to=LUIS)
    clinic.mailbox.wait_for(LUIS, "Usuario confirmado")
    clinic.ana = clinic.new_client()
    login(clinic.ana)
    clinic.luis = clinic.new_client()
    login(clinic.luis, username="luis.gomez")
    return clinic


def grants(stack) -> list[tuple[str, str]]:
    with stack.session_factory() as session:
        return [
            (g.relationship, g.status)
            for g in session.scalars(select(ProxyGrant).order_by(ProxyGrant.id))
        ]


def the_grant(stack) -> ProxyGrant:
    with stack.session_factory() as session:
        return session.scalars(select(ProxyGrant).order_by(ProxyGrant.id.desc())).first()


def events(stack, action: str) -> list[AuditEvent]:
    with stack.session_factory() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def invite(client, email=LUIS, access="view", ends_on=""):
    return submit(
        client, "/patient/account/proxies", {"email": email, "access": access, "ends_on": ends_on}
    )


def ask(client, record="HC-3", born="2019-06-15", relationship="parent", note=""):
    return submit(
        client,
        "/patient/proxy/request",
        {
            "record_number": record,
            "date_of_birth": born,
            "relationship": relationship,
            "note": note,
        },
    )


def press_again(client, link: str):
    """A second press of a link's button, from the page opened before the first one."""
    token = csrf_token(client, "/patient/login")
    return client.post("/" + link.split("/", 3)[3], data={"csrf_token": token})


def act_for(client, reference: str = ""):
    return submit(client, "/patient/proxy/act", {"reference": reference}, form_page="/patient/")


def accepted(stack) -> ProxyGrant:
    """Ana invites Luis, Luis accepts signed in; returns the grant once its process is told."""
    assert invite(stack.ana).status_code == 302
    link = link_in(stack.mailbox.wait_for(LUIS, "lo invita"), "/patient/proxy/accept/")
    press_link_button(stack.luis, link)
    stack.mailbox.wait_for(LUIS, "está activo")
    return the_grant(stack)


def test_an_invited_person_accepts_with_their_own_account_and_acts_for_the_inviter(family):
    answer = invite(family.ana)
    assert answer.headers["Location"].endswith("/patient/account/proxies")
    page = family.ana.get("/patient/account/proxies").get_data(as_text=True)
    assert "Personas que pueden actuar por mí" in page and LUIS in page
    link = link_in(family.mailbox.wait_for(LUIS, "lo invita"), "/patient/proxy/accept/")

    anonymous = family.new_client().get("/" + link.split("/", 3)[3])
    assert anonymous.status_code == 200 and "inicie sesión" in anonymous.get_data(as_text=True)
    assert grants(family) == [("chosen", "invited")], "opening the link changes nothing"
    refused = press_link_button(family.ana, link, follow=False)
    assert refused.status_code == 403, "the inviter cannot accept their own invitation"

    press_link_button(family.luis, link)
    assert grants(family) == [("chosen", "active")]
    grant = the_grant(family)
    assert grant.workflow_id == f"proxy/patient/{grant.reference}"
    assert "@" not in grant.workflow_id
    assert "Luis Gómez" in body_text(family.mailbox.wait_for(ANA, "está activo"))
    again = press_again(family.new_client(), link)
    assert again.status_code == 410

    home = family.luis.get("/patient/").get_data(as_text=True)
    assert "Actuando por: usted" in home and "Ana Pérez" in home
    act_for(family.luis, grant.reference)
    home = family.luis.get("/patient/").get_data(as_text=True)
    assert "Actuando por:" in home and "<strong>Ana Pérez</strong>" in home
    started = events(family, "proxy.acting_started")
    assert started and started[0].detail["acting_for"] == f"user:{grant.subject_user_id}"
    assert started[0].detail["acting_as"] == f"user:{grant.proxy_user_id}"

    submit(
        family.luis,
        "/patient/account/password",
        {
            "current_password": PASSWORD,
            "new_password": "OtraClave456segura",
            "new_password_confirm": "OtraClave456segura",
        },
    )
    changed = events(family, "password.changed")
    assert changed and changed[0].detail["acting_for"] == f"user:{grant.subject_user_id}"
    assert changed[0].detail["acting_as"] == f"user:{grant.proxy_user_id}"


def test_the_subject_revokes_and_the_proxy_s_next_request_goes_back_to_their_own_view(family):
    grant = accepted(family)
    act_for(family.luis, grant.reference)
    submit(
        family.ana,
        f"/patient/account/proxies/{grant.reference}/revoke",
        {},
        form_page="/patient/account/proxies",
    )
    assert grants(family) == [("chosen", "revoked")]
    bounced = family.luis.get("/patient/account/email")
    assert bounced.status_code == 302 and bounced.headers["Location"].endswith("/patient/")
    home = family.luis.get("/patient/").get_data(as_text=True)
    assert "Ya no puede actuar por esa persona" in home and "Actuando por:" not in home
    assert "Ya no puede actuar en nombre de" in body_text(family.mailbox.wait_for(LUIS, "terminó"))
    revoked = events(family, "proxy.revoked")
    assert revoked[0].actor == f"user:{grant.subject_user_id}"


def test_the_proxy_leaves(family):
    grant = accepted(family)
    submit(
        family.luis,
        f"/patient/account/proxies/{grant.reference}/leave",
        {},
        form_page="/patient/account/proxies",
    )
    assert grants(family) == [("chosen", "left")]
    assert "ya no puede actuar en su nombre" in body_text(family.mailbox.wait_for(ANA, "terminó"))
    assert "Actuando por" not in family.luis.get("/patient/").get_data(as_text=True)


def test_a_parent_s_request_for_a_child_is_approved_by_staff(family):
    answer = ask(family.ana, note="Soy la madre")
    assert answer.status_code == 302
    assert grants(family) == [("parent", "in_review")]
    add_staff(family.session_factory, "rosa", STAFF_PASSWORD, roles="reviewer")
    staff = family.new_client()
    sign_in_staff(staff, family.session_factory, "rosa", STAFF_PASSWORD)
    queue = staff.get("/staff/proxies").get_data(as_text=True)
    grant = the_grant(family)
    assert grant.reference in queue and "Sofía Pérez" in queue
    refused = submit(
        staff,
        f"/staff/proxies/{grant.reference}/decision",
        {"decision": "decline", "reason": ""},
        form_page=f"/staff/proxies/{grant.reference}",
    )
    assert refused.status_code == 422 and "motivo" in refused.get_data(as_text=True)
    submit(
        staff,
        f"/staff/proxies/{grant.reference}/decision",
        {"decision": "approve", "reason": ""},
        form_page=f"/staff/proxies/{grant.reference}",
    )
    assert grants(family) == [("parent", "active")]
    assert "Sofía Pérez" in body_text(family.mailbox.wait_for(ANA, "está activo"))
    detail = staff.get(f"/staff/proxies/{grant.reference}").get_data(as_text=True)
    assert "pidió actuar en nombre de otra persona" in detail
    assert "aprobó el pedido de acceso" in detail
    act_for(family.ana, grant.reference)
    assert "<strong>Sofía Pérez</strong>" in family.ana.get("/patient/").get_data(as_text=True)

    submit(
        staff,
        f"/staff/proxies/{grant.reference}/end",
        {"note": "Orden judicial"},
        form_page=f"/staff/proxies/{grant.reference}",
    )
    assert grants(family) == [("parent", "revoked")]
    assert "Orden judicial" in body_text(family.mailbox.wait_for(ANA, "terminó"))


def test_staff_denial_is_e_mailed_with_its_reason(family):
    ask(family.ana)
    grant = the_grant(family)
    add_staff(family.session_factory, "rosa", STAFF_PASSWORD, roles="reviewer")
    staff = family.new_client()
    sign_in_staff(staff, family.session_factory, "rosa", STAFF_PASSWORD)
    submit(
        staff,
        f"/staff/proxies/{grant.reference}/decision",
        {"decision": "decline", "reason": "Falta la partida de nacimiento"},
        form_page=f"/staff/proxies/{grant.reference}",
    )
    assert grants(family) == [("parent", "denied")]
    denied = body_text(family.mailbox.wait_for(ANA, "rechazado"))
    assert "Falta la partida de nacimiento" in denied


def test_an_adult_approves_a_relative_s_request_by_e_mailed_link(family):
    assert (
        ask(family.luis, record="HC-1", born="1980-04-02", relationship="other").status_code == 302
    )
    assert grants(family) == [("other", "awaiting_subject")]
    link = link_in(family.mailbox.wait_for(ANA, "pidió actuar"), "/patient/proxy/consent/")
    page = family.new_client().get("/" + link.split("/", 3)[3]).get_data(as_text=True)
    assert "Luis Gómez" in page and "Aprobar" in page
    wrong = submit(family.luis, "/" + link.split("/", 3)[3], {"decision": "approve"})
    assert wrong.status_code == 403 and grants(family) == [("other", "awaiting_subject")]
    submit(family.ana, "/" + link.split("/", 3)[3], {"decision": "approve"})
    assert grants(family) == [("other", "active")]
    family.mailbox.wait_for(LUIS, "está activo")
    assert "Ana Pérez" in family.luis.get("/patient/").get_data(as_text=True)


def test_an_adult_declines_and_the_requester_is_told(family):
    ask(family.luis, record="HC-1", born="1980-04-02", relationship="other")
    link = link_in(family.mailbox.wait_for(ANA, "pidió actuar"), "/patient/proxy/consent/")
    submit(family.new_client(), "/" + link.split("/", 3)[3], {"decision": "decline"})
    assert grants(family) == [("other", "declined")]
    family.mailbox.wait_for(LUIS, "no fue aceptado")


@pytest.mark.dialects
def test_a_mismatch_counts_a_strike_never_says_which_field_and_blocks_at_the_limit(family):
    wrong_date = ask(family.luis, record="HC-1", born="1980-04-03")
    wrong_number = ask(family.luis, record="HC-9", born="1980-04-02")
    for answer in (wrong_date, wrong_number):
        assert answer.status_code == 422
        assert "ese número y esa fecha de nacimiento" in answer.get_data(as_text=True)
    assert wrong_date.get_data(as_text=True).count("ese número") == wrong_number.get_data(
        as_text=True
    ).count("ese número")
    third = ask(family.luis, record="HC-1", born="1999-01-01")
    assert "demasiados intentos" in third.get_data(as_text=True)
    right = ask(family.luis, record="HC-1", born="1980-04-02")
    assert right.status_code == 422 and "demasiados intentos" in right.get_data(as_text=True)
    assert grants(family) == []
    with family.session_factory() as session:
        assert session.scalar(select(IdentityStrikes.strikes)) == 3


def test_a_request_for_oneself_and_a_duplicate_request_change_nothing(family):
    own = ask(family.ana, record="HC-1", born="1980-04-02", relationship="other")
    assert own.status_code == 422 and "su propia historia" in own.get_data(as_text=True)
    ask(family.ana)
    duplicate = ask(family.ana)
    assert duplicate.status_code == 422 and "Ya tiene un pedido" in duplicate.get_data(as_text=True)
    assert grants(family) == [("parent", "in_review")]


def test_inviting_oneself_or_the_same_person_twice_is_refused_beside_the_field(family):
    own = invite(family.ana, email=ANA)
    assert own.status_code == 422 and "su propia dirección" in own.get_data(as_text=True)
    invite(family.ana)
    twice = invite(family.ana)
    assert twice.status_code == 422 and "Ya invitó" in twice.get_data(as_text=True)
    assert grants(family) == [("chosen", "invited")]


def test_the_proxy_pages_need_a_signed_in_account(family):
    anonymous = family.new_client()
    for path in ("/patient/account/proxies", "/patient/proxy/request"):
        assert anonymous.get(path).status_code == 302
    staff_page = anonymous.get("/staff/proxies")
    assert staff_page.status_code in (302, 403)


def test_the_grant_s_process_is_named_by_reference_and_searchable_by_step(
    family, dev_server, background_loop
):
    grant = accepted(family)
    handle = dev_server.client.get_workflow_handle(grant.workflow_id)

    def step() -> list[str]:
        described = background_loop.run(handle.describe())
        return described.search_attributes.get("AccesoStep", [])

    wait_until(lambda: step() == ["active"], what="the process to say active")
    described = background_loop.run(handle.describe())
    assert described.search_attributes["AccesoReference"] == [grant.reference]
    assert described.search_attributes["AccesoPortal"] == ["patient"]


def test_an_expired_or_unknown_invitation_link_changes_nothing(family):
    invite(family.ana)
    link = link_in(family.mailbox.wait_for(LUIS, "lo invita"), "/patient/proxy/accept/")
    with family.session_factory() as session:
        session.execute(update(EmailToken).values(expires_at=utcnow() - timedelta(minutes=1)))
        session.commit()
    late = press_again(family.luis, link)
    assert late.status_code == 410 and "venció" in late.get_data(as_text=True)
    unknown = family.luis.get("/patient/proxy/accept/no-such-token")
    assert unknown.status_code == 404
    assert grants(family) == [("chosen", "invited")]


def test_the_subject_renews_an_adult_s_grant_and_the_process_moves_its_date(family):
    grant = accepted(family)
    wait_until(lambda: the_grant(family).renew_by is not None, what="the renewal date")
    first = the_grant(family).renew_by
    page = family.ana.get("/patient/account/proxies").get_data(as_text=True)
    assert "Renovar antes del" in page
    submit(
        family.ana,
        f"/patient/account/proxies/{grant.reference}/renew",
        {},
        form_page="/patient/account/proxies",
    )
    assert events(family, "proxy.renewed")
    wait_until(lambda: the_grant(family).renew_by > first, what="the renewed date")
    refused = submit(
        family.luis,
        f"/patient/account/proxies/{grant.reference}/renew",
        {},
        form_page="/patient/account/proxies",
    )
    assert refused.status_code == 404, "only the subject renews"


def test_a_double_click_on_invite_or_ask_gets_the_first_answer_and_makes_one_grant(family):
    for client, path, data in (
        (family.ana, "/patient/account/proxies", {"email": LUIS, "access": "view"}),
        (
            family.ana,
            "/patient/proxy/request",
            {"record_number": "HC-3", "date_of_birth": "2019-06-15", "relationship": "parent"},
        ),
    ):
        page = client.get(path).get_data(as_text=True)
        fields = {
            name: re.search(rf'name="{name}" type="hidden" value="([^"]+)"', page).group(1)
            for name in ("csrf_token", "form_key")
        }
        answers = [client.post(path, data={**fields, **data}) for _ in range(2)]
        assert [a.status_code for a in answers] == [302, 302]
        assert answers[1].headers["Location"] == answers[0].headers["Location"]
    assert grants(family) == [("chosen", "invited"), ("parent", "in_review")]
