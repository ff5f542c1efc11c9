"""Third-party apps through the web: the developer's form (bad input refused beside its field
and kept, CSRF, English), the staff pages' access checks, the single-use credentials link
(a page, a POST that shows the secret once, a second use and an expired link refused), and the
whole way on the real stack: submit, checks, staff approval, credentials, a token request
authenticated with the new secret."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from mail.mailer import Mailer
from portal.config import load_portals
from portal.models import (
    AppRegistration,
    AuditEvent,
    EmailToken,
    OidcClient,
    OutboxMessage,
    User,
    utcnow,
)
from portal.passwords import hash_password
from processes.app_registration import service
from processes.app_registration.activities import (
    AppClientRequest,
    AppMail,
    AppRegistrationActivities,
)
from processes.app_registration.vocabulary import ClientType, Decision, Mail, Step
from tests.fixtures.patients import PASSWORD as PATIENT_PASSWORD
from tests.fixtures.patients import login
from tests.fixtures.smtp import body_text, link_in
from tests.fixtures.stack import csrf_token, submit
from tests.fixtures.staff import add_staff, sign_in_staff
from tests.fixtures.waiting import wait_until
from web import create_app

DEVELOPER = "dev@apps.example"
STAFF_PASSWORD = "Revisora-segura-2026"
GOOD = {
    "app_name": "Mi Salud App",
    "portal": "patient",
    "redirect_uris": "https://app.example/callback\nhttp://127.0.0.1/callback",
    "scopes": ["openid", "fhirUser", "launch/patient", "patient/*.rs"],
    "client_type": "confidential",
    "privacy_url": "https://app.example/privacy",
    "contact_name": "Dana Dev",
    "contact_email": DEVELOPER,
}


@pytest.fixture
def web(settings, session_factory):
    app = create_app({"SETTINGS": settings, "TESTING": True})
    yield app
    app.extensions["acceso.temporal"].close()


def stored(session_factory) -> int:
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(AppRegistration))


def test_bad_input_is_refused_beside_each_field_and_the_rest_is_kept(web, session_factory):
    client = web.test_client()
    answer = submit(
        client,
        "/developers/apps/new",
        {
            **GOOD,
            "redirect_uris": "http://app.example/callback",
            "scopes": [],
            "contact_email": "no-es-un-correo",
            "privacy_url": "privacidad",
        },
    )
    page = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert re.search(r'id="redirect_uris-error">[^<]*https://', page)
    assert 'id="scopes-error">Marque al menos un permiso.' in page
    assert re.search(r'id="contact_email-error">[^<]*correo electrónico válida', page)
    assert re.search(r'id="privacy_url-error">[^<]*dirección web completa', page)
    assert 'value="Mi Salud App"' in page and 'value="Dana Dev"' in page
    assert "http://app.example/callback</textarea>" in page
    assert stored(session_factory) == 0


def test_a_ticked_scope_stays_ticked_when_another_field_is_refused(web, session_factory):
    answer = submit(
        web.test_client(),
        "/developers/apps/new",
        {**GOOD, "scopes": ["openid", "patient/*.rs"], "client_type": ""},
    )
    page = answer.get_data(as_text=True)
    assert answer.status_code == 422 and 'id="client_type-error"' in page
    assert re.search(r'<input[^>]*checked[^>]*value="patient/\*\.rs"', page)
    assert re.search(r'<input[^>]*checked[^>]*value="openid"', page)
    assert not re.search(r'<input[^>]*checked[^>]*value="fhirUser"', page)
    assert stored(session_factory) == 0


def test_a_submission_without_its_csrf_token_stores_nothing(web, session_factory):
    client = web.test_client()
    answer = client.post("/developers/apps/new", data=GOOD)
    assert answer.status_code in (400, 422)
    assert stored(session_factory) == 0
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 0


def test_the_form_is_spanish_by_default_and_english_on_request(web):
    client = web.test_client()
    assert "Registrar una aplicación de salud" in client.get("/developers/apps/new").get_data(
        as_text=True
    )
    english = client.get("/developers/apps/new?lang=en").get_data(as_text=True)
    assert "Register a health app" in english
    assert "Redirect URIs" in english


def test_a_good_application_is_stored_once_with_its_process_start_and_answered_with_a_reference(
    web, session_factory
):
    client = web.test_client()
    page = client.get("/developers/apps/new").get_data(as_text=True)
    fields = {
        name: re.search(rf'name="{name}" type="hidden" value="([^"]+)"', page).group(1)
        for name in ("csrf_token", "form_key")
    }
    answers = [client.post("/developers/apps/new", data={**fields, **GOOD}) for _ in range(2)]
    assert [a.status_code for a in answers] == [302, 302]
    assert answers[1].headers["Location"] == answers[0].headers["Location"]
    answer = client.get(answers[0].headers["Location"])
    assert answer.status_code == 200
    reference = re.search(r'class="reference">([A-Z0-9]+)<', answer.get_data(as_text=True))[1]
    assert stored(session_factory) == 1
    with session_factory() as session:
        row = service.application_by_reference(session, reference)
        assert row.status == Step.CHECKING
        assert row.redirect_uris == ["https://app.example/callback", "http://127.0.0.1/callback"]
        start = session.scalar(
            select(OutboxMessage).where(
                OutboxMessage.workflow_id == f"app-registration/{reference}"
            )
        )
        assert start.workflow == "AppRegistrationWorkflow"
        assert start.payload["application_id"] == row.id
        assert start.payload["review_sla_hours"] == 72


def test_the_staff_pages_refuse_anonymous_people_portal_accounts_and_staff_without_the_role(
    web, session_factory
):
    with session_factory() as session:
        reference = service.submit(
            session,
            load_portals(web.config["SETTINGS"].portals_file)["patient"],
            service.Application(
                app_name="X",
                redirect_uris=["https://x.example/cb"],
                scopes=["openid"],
                client_type=ClientType.PUBLIC,
                privacy_url="https://x.example/p",
                contact_name="X",
                contact_email=DEVELOPER,
            ),
        )
    anonymous = web.test_client()
    for path in ("/staff/apps", f"/staff/apps/{reference}"):
        answer = anonymous.get(path)
        assert answer.status_code == 302 and "/staff/login" in answer.headers["Location"]
    assert anonymous.post(f"/staff/apps/{reference}/decision").status_code in (302, 400)
    with session_factory() as session:
        session.add(
            User(
                portal="patient",
                username="ana.perez",
                email="ana@example.org",
                full_name="Ana Pérez",
                password_hash=hash_password(PATIENT_PASSWORD),
                status="active",
                role="patient",
                activated_at=utcnow(),
            )
        )
        session.commit()
    patient = web.test_client()
    assert login(patient).status_code == 302
    assert patient.get("/staff/apps").status_code == 403
    assert patient.get(f"/staff/apps/{reference}").status_code == 403
    add_staff(session_factory, "sara", STAFF_PASSWORD, roles="support")
    support = web.test_client()
    sign_in_staff(support, session_factory, "sara", STAFF_PASSWORD)
    assert support.get("/staff/apps").status_code == 403
    assert support.get(f"/staff/apps/{reference}").status_code == 403
    add_staff(session_factory, "mara", STAFF_PASSWORD, roles="reviewer", portals="member")
    other_portal = web.test_client()
    sign_in_staff(other_portal, session_factory, "mara", STAFF_PASSWORD)
    assert reference not in other_portal.get("/staff/apps").get_data(as_text=True)
    assert other_portal.get(f"/staff/apps/{reference}").status_code == 404


def approved_with_link(
    settings, session_factory, mailbox, client_type=ClientType.CONFIDENTIAL, locale="es"
):
    """An approved application whose client and credentials e-mail the real activities made;
    returns its row's reference and the e-mailed link."""
    portals = load_portals(settings.portals_file)
    with session_factory() as session:
        reference = service.submit(
            session,
            portals["patient"],
            service.Application(
                app_name="Mi Salud App",
                redirect_uris=["https://app.example/callback"],
                scopes=["openid", "launch/patient", "patient/*.rs"],
                client_type=client_type,
                privacy_url="https://app.example/privacy",
                contact_name="Dana Dev",
                contact_email=DEVELOPER,
                locale=locale,
            ),
        )
        session.execute(
            update(AppRegistration)
            .where(AppRegistration.reference == reference)
            .values(status=Step.APPROVED)
        )
        session.commit()
        row = service.application_by_reference(session, reference)
    real = AppRegistrationActivities(session_factory, Mailer(settings), portals)
    real.create_client(AppClientRequest(application_id=row.id, workflow_id=row.workflow_id))
    real.send_app_mail(
        AppMail(
            application_id=row.id,
            workflow_id=row.workflow_id,
            kind=Mail.CREDENTIALS,
            send_key=f"{row.workflow_id}/test/credentials",
            lifetime_hours=72,
        )
    )
    subject = "was approved" if locale == "en" else "fue aprobada"
    return reference, link_in(mailbox.wait_for(DEVELOPER, subject), "/credentials/")


def path_of(link: str) -> str:
    return "/" + link.split("://", 1)[1].split("/", 1)[1]


def test_the_credentials_link_shows_a_page_and_only_its_post_shows_the_secret_once(
    web, settings, session_factory, mailbox
):
    reference, link = approved_with_link(settings, session_factory, mailbox)
    developer = web.test_client()
    page = developer.get(path_of(link))
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert "client-id" not in page.get_data(as_text=True)
    with session_factory() as session:
        client = session.scalar(select(OidcClient))
        hash_before = client.secret_hash
    shown = submit(developer, path_of(link), {})
    text = shown.get_data(as_text=True)
    assert shown.status_code == 200 and shown.headers["Cache-Control"] == "no-store"
    client_id = re.search(r'class="client-id">([^<]+)<', text).group(1)
    secret = re.search(r'class="client-secret">([^<]+)<', text).group(1)
    with session_factory() as session:
        client = session.scalar(select(OidcClient))
        assert client.client_id == client_id
        assert client.secret_hash != hash_before and secret not in client.secret_hash
        assert session.scalar(select(EmailToken.used_at)) is not None
        details = session.scalars(select(AuditEvent.detail)).all()
    assert secret not in str(details)
    again = developer.post(
        path_of(link), data={"csrf_token": csrf_token(developer, "/developers/apps/new")}
    )
    assert again.status_code == 410
    assert secret not in again.get_data(as_text=True) and "ya se usó" in again.get_data(
        as_text=True
    )
    assert developer.get(path_of(link)).status_code == 410


def test_a_public_client_s_link_in_english_shows_its_client_id_and_no_secret(
    web, settings, session_factory, mailbox
):
    _, link = approved_with_link(settings, session_factory, mailbox, ClientType.PUBLIC, "en")
    text = submit(web.test_client(), path_of(link), {}).get_data(as_text=True)
    assert 'class="client-id"' in text and "client-secret" not in text


def test_an_expired_or_unknown_credentials_link_shows_nothing(
    web, settings, session_factory, mailbox
):
    _, link = approved_with_link(settings, session_factory, mailbox)
    with session_factory() as session:
        session.execute(update(EmailToken).values(expires_at=utcnow() - timedelta(minutes=1)))
        session.commit()
    developer = web.test_client()
    assert developer.get(path_of(link)).status_code == 410
    answer = submit(developer, path_of(link), {}, form_page="/developers/apps/new")
    assert answer.status_code == 410 and "venció" in answer.get_data(as_text=True)
    assert "client-id" not in answer.get_data(as_text=True)
    with session_factory() as session:
        assert session.scalar(select(EmailToken.used_at)) is None
    assert developer.get("/developers/apps/credentials/no-such-link").status_code == 404


def test_an_app_is_submitted_checked_approved_by_staff_and_its_new_secret_authenticates(
    stack, privacy_page
):
    developer = stack.new_client()
    answer = submit(
        developer, "/developers/apps/new", {**GOOD, "privacy_url": privacy_page}, follow=True
    )
    reference = re.search(r'class="reference">([A-Z0-9]+)<', answer.get_data(as_text=True))[1]
    assert reference in body_text(stack.mailbox.wait_for(DEVELOPER, "Recibimos"))

    def status() -> str:
        with stack.session_factory() as session:
            return service.application_by_reference(session, reference).status

    wait_until(lambda: status() == Step.IN_REVIEW, what="the checks to finish")
    unregistered = developer.get(
        "/patient/authorize?response_type=code&client_id=Mi+Salud+App"
        "&redirect_uri=https%3A%2F%2Fapp.example%2Fcallback&scope=openid"
    )
    assert unregistered.status_code == 400 and "Location" not in unregistered.headers

    add_staff(stack.session_factory, "rosa", STAFF_PASSWORD, roles="reviewer")
    staff = stack.new_client()
    sign_in_staff(staff, stack.session_factory, "rosa", STAFF_PASSWORD)
    assert reference in staff.get("/staff/apps").get_data(as_text=True)
    detail = staff.get(f"/staff/apps/{reference}").get_data(as_text=True)
    assert detail.count("badge success") == 2
    refused = submit(
        staff,
        f"/staff/apps/{reference}/decision",
        {"decision": Decision.DENY, "reason": ""},
        form_page=f"/staff/apps/{reference}",
    )
    assert refused.status_code == 422 and 'id="reason-error"' in refused.get_data(as_text=True)
    decided = submit(
        staff,
        f"/staff/apps/{reference}/decision",
        {"decision": Decision.APPROVE, "reason": ""},
        form_page=f"/staff/apps/{reference}",
    )
    assert decided.status_code == 302
    wait_until(lambda: status() == Step.REGISTERED, what="the client to be made")

    link = link_in(stack.mailbox.wait_for(DEVELOPER, "aprobada"), "/credentials/")
    shown = submit(developer, path_of(link), {}).get_data(as_text=True)
    client_id = re.search(r'class="client-id">([^<]+)<', shown)[1]
    secret = re.search(r'class="client-secret">([^<]+)<', shown)[1]

    token = stack.app.test_client().post(
        "/patient/token",
        data={"grant_type": "authorization_code", "code": "none", "redirect_uri": "x"},
        auth=(client_id, secret),
    )
    assert (token.status_code, token.get_json()["error"]) == (400, "invalid_grant")
    wrong = stack.app.test_client().post(
        "/patient/token",
        data={"grant_type": "authorization_code", "code": "none"},
        auth=(client_id, "not-the-secret"),
    )
    assert (wrong.status_code, wrong.get_json()["error"]) == (401, "invalid_client")
    authorize = developer.get(
        f"/patient/authorize?response_type=code&client_id={client_id}"
        "&redirect_uri=https%3A%2F%2Fapp.example%2Fcallback&scope=openid+launch%2Fpatient"
        "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
    )
    assert authorize.status_code == 302
    assert (
        authorize.headers["Location"].startswith("/patient/login")
        or "login" in (authorize.headers["Location"])
    )


def authenticates(stack, client_id: str, secret: str) -> bool:
    """A token request with a made-up code: a client that authenticates is told the code is
    bad (invalid_grant), one that does not is refused as a client (invalid_client)."""
    answer = stack.app.test_client().post(
        "/patient/token",
        data={"grant_type": "authorization_code", "code": "none", "redirect_uri": "x"},
        auth=(client_id, secret),
    )
    return answer.get_json()["error"] == "invalid_grant"


def test_a_developer_who_lost_the_secret_gets_a_new_one_by_the_contact_s_mailbox_and_the_old_stops(
    stack,
):
    reference, link = approved_with_link(stack.settings, stack.session_factory, stack.mailbox)
    developer = stack.new_client()
    shown = submit(developer, path_of(link), {}).get_data(as_text=True)
    client_id = re.search(r'class="client-id">([^<]+)<', shown)[1]
    old_secret = re.search(r'class="client-secret">([^<]+)<', shown)[1]
    assert "Pedir un secreto nuevo" in shown
    with stack.session_factory() as session:
        session.execute(
            update(AppRegistration)
            .where(AppRegistration.reference == reference)
            .values(status=Step.REGISTERED)
        )
        session.commit()

    stranger = stack.new_client()
    answers = [
        submit(stranger, "/developers/apps/credentials/new", fields, follow=True)
        for fields in (
            {"client_id": client_id, "contact_email": "otra@apps.example"},
            {"client_id": "no-such-client", "contact_email": DEVELOPER},
            {"client_id": client_id, "contact_email": DEVELOPER.upper()},
        )
    ]
    flashes = [
        re.search(r'class="flash[^"]*"[^>]*>(.*?)<', a.get_data(as_text=True)) for a in answers
    ]
    assert len({f.group(1) for f in flashes}) == 1, "every answer is the same"
    mail = stack.mailbox.wait_for(DEVELOPER, "Un secreto nuevo")
    new_link = link_in(mail, "/credentials/")
    assert new_link != link and reference in body_text(mail)

    again = submit(
        stranger,
        "/developers/apps/credentials/new",
        {"client_id": client_id, "contact_email": DEVELOPER},
    )
    assert again.status_code == 302
    with stack.session_factory() as session:
        starts = session.scalars(
            select(OutboxMessage).where(OutboxMessage.workflow == "AppCredentialsWorkflow")
        ).all()
        assert [s.workflow_id for s in starts] == [f"app-credentials/{reference}"] * 2
    wait_until(
        lambda: all(
            row.relayed_at is not None
            for row in stack.session_factory().scalars(select(OutboxMessage))
        ),
        what="the repeated request's start to be relayed (and refused as a duplicate)",
    )
    assert len([m for m in stack.mailbox.to(DEVELOPER) if "secreto nuevo" in m["Subject"]]) == 1

    page = developer.get(path_of(new_link)).get_data(as_text=True)
    assert "dejará de funcionar" in page
    assert authenticates(stack, client_id, old_secret), "opening the page changes nothing"
    shown = submit(developer, path_of(new_link), {}).get_data(as_text=True)
    new_secret = re.search(r'class="client-secret">([^<]+)<', shown)[1]
    assert new_secret != old_secret
    assert authenticates(stack, client_id, new_secret)
    assert not authenticates(stack, client_id, old_secret)
    with stack.session_factory() as session:
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.action.like("app_registration.%"))
        ).all()
    assert actions.count("app_registration.new_credentials_requested") == 2
    assert actions.count("app_registration.credentials_shown") == 2


def test_the_new_secret_form_refuses_bad_input_beside_its_field(web):
    answer = submit(
        web.test_client(),
        "/developers/apps/credentials/new",
        {"client_id": "", "contact_email": "no-es-correo"},
    )
    page = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert 'id="client_id-error"' in page and 'id="contact_email-error"' in page
    assert 'value="no-es-correo"' in page
