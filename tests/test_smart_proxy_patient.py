"""A person who acts for others gives a health app one person's record: after sign-in a page asks
whose, the token's `patient` is the chosen record and `fhirUser` names the person themself
(`Patient/<own id>`, or `RelatedPerson/<proxy grant>` for someone they act for), and the app's
access rests on the proxy grant: once it ends (revoked, or by its timers) the refresh token is
refused and introspection says inactive at once."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select, update
from temporalio.worker import Worker

from mail.mailer import Mailer
from portal.config import load_portals
from portal.models import (
    AuditEvent,
    ClinicalRecord,
    OidcClient,
    OidcGrant,
    OutboxMessage,
    ProxyGrant,
    User,
    utcnow,
)
from processes.proxy_grant import service
from processes.proxy_grant.activities import GrantSettling, ProxyGrantActivities
from processes.proxy_grant.vocabulary import GrantAccepted, Origin, ProxyGrantStart, Step
from processes.proxy_grant.workflows import ProxyGrantWorkflow
from tests.fixtures.oidc import REDIRECT_URI, callback_params
from tests.test_smart_on_fhir import (
    SMART_SCOPES,
    authorize,
    codes_issued,
    introspect,
    refresh,
    resource_server,
    smart_app,
    token_call,
)

CHILD = "XCHILD0001"
OTHERS = "XOTHER0001"
PICKER = "¿De quién es el expediente que usará esta aplicación?"
CHILD_NAME = "Sofía <b>Gómez</b>"


def record(session, number: str, name: str, fhir_id: str, email: str) -> ClinicalRecord:
    row = ClinicalRecord(
        portal="patient", record_number=number, full_name=name, email=email, fhir_patient_id=fhir_id
    )
    session.add(row)
    session.flush()
    return row


def proxy_grant(session, reference: str, proxy_id: int, record_id: int, **fields) -> None:
    session.add(
        ProxyGrant(
            reference=reference,
            portal="patient",
            workflow_id=f"proxy/patient/{reference}",
            origin="request",
            status=fields.pop("status", Step.ACTIVE),
            subject_record_id=record_id,
            proxy_user_id=proxy_id,
            relationship=fields.pop("relationship", "parent"),
            access=fields.pop("access", "manage"),
            activated_at=utcnow() - timedelta(days=1),
            **fields,
        )
    )


@pytest.fixture
def family(provider):
    """Luis (record pat-luis) acts for his daughter (record pat-sofia, no account) under CHILD;
    Marta, a stranger with her own record, acts for someone else under OTHERS."""
    luis = provider.add_user("luis.gomez", full_name="Luis Gómez")
    marta = provider.add_user("marta.ruiz", full_name="Marta Ruiz")
    with provider.session_factory() as session:
        own = record(session, "HC-L", "Luis Gómez", "pat-luis", "luis.gomez@example.org")
        session.get(User, luis).clinical_record_id = own.id
        hers = record(session, "HC-M", "Marta Ruiz", "pat-marta", "marta.ruiz@example.org")
        session.get(User, marta).clinical_record_id = hers.id
        child = record(session, "HC-S", CHILD_NAME, "pat-sofia", "familia@example.org")
        other = record(session, "HC-O", "Otra Persona", "pat-otra", "otra@example.org")
        proxy_grant(session, CHILD, luis, child.id)
        proxy_grant(session, OTHERS, marta, other.id, relationship="other", access="view")
        session.commit()
    provider.luis, provider.marta = luis, marta
    provider.app_client = smart_app(provider)
    provider.server = resource_server(provider)
    return provider


def signed_in_to_picker(provider, username="luis.gomez", scope=SMART_SCOPES, **params):
    """Authorize and sign in; returns the page after sign-in, the browser and the verifier."""
    browser = provider.browser()
    answer, verifier = authorize(provider, provider.app_client, browser, scope, **params)
    return browser.sign_in(answer, username), browser, verifier


def consent_and_exchange(provider, browser, page, verifier):
    answer = page
    if page.status_code == 200:
        assert "Permitir" in page.text, page.text[:500]
        answer = browser.submit(page, {"decision": "allow", "resource": SMART_SCOPES.split()})
    code = callback_params(answer.headers["Location"])["code"]
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }
    answer = token_call(provider, provider.app_client, data)
    assert answer.status_code == 200, answer.text
    return answer.json()


def launch_for(provider, choice: str, username="luis.gomez"):
    page, browser, verifier = signed_in_to_picker(provider, username)
    assert PICKER in page.text
    consent = browser.submit(page, {"choose_patient": "1", "record": choice})
    return consent_and_exchange(provider, browser, consent, verifier), consent


def active(provider, token: str) -> dict:
    answer = introspect(provider, token, provider.server)
    assert answer.status_code == 200
    return answer.json()


def test_a_proxy_is_asked_whose_record_and_sees_themself_and_each_person_escaped(family):
    page, _, _ = signed_in_to_picker(family)

    assert page.status_code == 200
    assert PICKER in page.text
    assert "Yo (Luis Gómez)" in page.text
    assert "Sofía &lt;b&gt;Gómez&lt;/b&gt;" in page.text and "<b>Gómez</b>" not in page.text
    assert f'value="{CHILD}"' in page.text and 'value="self"' in page.text
    assert OTHERS not in page.text and "Otra Persona" not in page.text


def test_the_picker_is_in_english_for_an_english_reader(family):
    page, browser, _ = signed_in_to_picker(family)
    english = browser.get(page.url + "&lang=en")
    assert "Whose record will this app use?" in english.text
    assert "Me (Luis Gómez)" in english.text
    consent = browser.submit(english, {"choose_patient": "1", "record": CHILD})
    assert "The record it will use: Sofía" in consent.text
    spanish = browser.get(consent.url.replace("&lang=en", "") + "&lang=es")
    assert "Expediente que usará: el de Sofía" in spanish.text, "the choice outlives the language"


def test_choosing_the_child_gives_her_patient_id_and_names_the_proxy_a_related_person(family):
    token, consent = launch_for(family, CHILD)

    assert "el de Sofía &lt;b&gt;Gómez&lt;/b&gt;" in consent.text
    assert token["patient"] == "pat-sofia"
    id_token = family.validate_id_token(token["id_token"], family.app_client, "n-1")
    assert id_token.claims["fhirUser"] == f"RelatedPerson/{CHILD}"
    for raw in (token["access_token"], token["refresh_token"]):
        seen = active(family, raw)
        assert seen["active"] is True
        assert seen["patient"] == "pat-sofia"
        assert seen["fhirUser"] == f"RelatedPerson/{CHILD}"
    userinfo = requests.get(
        f"{family.issuer()}/userinfo",
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=5,
    ).json()
    assert userinfo["fhirUser"] == f"RelatedPerson/{CHILD}"
    renewed = refresh(family, family.app_client, token["refresh_token"]).json()
    assert renewed["patient"] == "pat-sofia"
    with family.session_factory() as session:
        given = session.scalar(
            select(AuditEvent).where(AuditEvent.workflow_id == f"proxy/patient/{CHILD}")
        )
    assert given.action == "proxy.app_given" and given.detail["client"] == "mis-datos"


def test_choosing_oneself_gives_one_s_own_record_and_patient_fhir_user(family):
    token, _ = launch_for(family, "self")

    assert token["patient"] == "pat-luis"
    id_token = family.validate_id_token(token["id_token"], family.app_client, "n-1")
    assert id_token.claims["fhirUser"] == "Patient/pat-luis"
    seen = active(family, token["access_token"])
    assert seen["patient"] == "pat-luis" and seen["fhirUser"] == "Patient/pat-luis"


def test_a_proxy_without_a_record_of_their_own_is_offered_only_the_people_they_act_for(family):
    with family.session_factory() as session:
        session.get(User, family.luis).clinical_record_id = None
        session.scalar(
            select(ClinicalRecord).where(ClinicalRecord.record_number == "HC-L")
        ).email = "archivo@example.org"
        session.commit()
    page, _, _ = signed_in_to_picker(family)
    assert f'value="{CHILD}"' in page.text and 'value="self"' not in page.text


def test_the_person_a_proxy_is_acting_for_in_the_portal_is_chosen_already(family):
    browser = family.browser()
    browser.sign_in(browser.walk(f"{family.base_url}/patient/login"), "luis.gomez")
    home = browser.get(f"{family.base_url}/patient/account/proxies")
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', home.text).group(1)
    browser.post(
        f"{family.base_url}/patient/proxy/act",
        data={"csrf_token": token, "reference": CHILD},
        allow_redirects=False,
    )
    page, _ = authorize(family, family.app_client, browser)
    assert re.search(rf'value="{CHILD}"[^>]*checked|checked[^>]*value="{CHILD}"', page.text)


def test_a_forged_or_missing_choice_is_refused_beside_the_list_and_nothing_is_issued(family):
    page, browser, _ = signed_in_to_picker(family)

    for forged in (OTHERS, "NOSUCHREF1", "", "pat-otra"):
        answer = browser.submit(page, {"choose_patient": "1", "record": forged})
        assert answer.status_code == 400
        assert "Elija una de las personas de la lista." in answer.text
        assert PICKER in answer.text
    assert codes_issued(family) == 0
    again = browser.get(page.url)
    assert PICKER in again.text, "no choice was remembered"


def test_the_choice_needs_the_form_s_csrf_token(family):
    page, browser, _ = signed_in_to_picker(family)
    answer = browser.post(page.url, data={"choose_patient": "1", "record": CHILD})
    assert answer.status_code == 400
    assert codes_issued(family) == 0


def test_a_person_without_proxy_access_goes_straight_to_consent(family):
    with family.session_factory() as session:
        session.scalar(
            select(ProxyGrant).where(ProxyGrant.reference == OTHERS)
        ).status = Step.REVOKED
        session.commit()
    page, browser, verifier = signed_in_to_picker(family, "marta.ruiz")

    assert PICKER not in page.text
    token = consent_and_exchange(family, browser, page, verifier)
    assert token["patient"] == "pat-marta"


def test_a_limited_grant_gives_apps_nothing_and_a_view_grant_no_app_that_writes(family):
    page, _, _ = signed_in_to_picker(family, "marta.ruiz")
    assert PICKER in page.text and "Otra Persona" in page.text, "a view grant may let apps read"
    writing = f"{SMART_SCOPES} patient/Observation.cruds"
    approved = [*SMART_SCOPES.split(), "patient/Observation.cruds"]
    family.app_client = smart_app(family, "escritora", approved_scopes=approved)
    page, _, _ = signed_in_to_picker(family, "marta.ruiz", scope=writing)
    assert PICKER not in page.text, "a view grant lets no app write"

    with family.session_factory() as session:
        session.scalar(
            select(ProxyGrant).where(ProxyGrant.reference == CHILD)
        ).status = Step.LIMITED
        session.commit()
    family.app_client = smart_app(family, "lectora")
    page, _, _ = signed_in_to_picker(family)
    assert PICKER not in page.text


def test_prompt_none_cannot_choose_for_a_proxy(family):
    browser = family.browser()
    answer, _ = authorize(family, family.app_client, browser)
    browser.sign_in(answer, "luis.gomez")
    silent, _ = authorize(family, family.app_client, browser, prompt="none")
    assert callback_params(silent.headers["Location"])["error"] == "interaction_required"


@pytest.mark.dialects
def test_revoking_the_proxy_grant_ends_the_app_s_access_to_the_child_at_once(family):
    child, _ = launch_for(family, CHILD)
    own, _ = launch_for(family, "self")

    with family.session_factory() as session:
        grant = service.grant_by_reference(session, CHILD)
        assert service.end_grant(session, grant, by="staff:ana")
        ended = session.scalars(select(OidcGrant).where(OidcGrant.acting_for == CHILD)).all()
        assert ended and all(row.revoked_at is not None for row in ended), "in the same commit"

    refused = refresh(family, family.app_client, child["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert active(family, child["access_token"]) == {"active": False}
    assert active(family, child["refresh_token"]) == {"active": False}
    assert active(family, own["access_token"])["active"] is True, "their own record goes on"
    assert refresh(family, family.app_client, own["refresh_token"]).status_code == 200


@pytest.mark.dialects
@pytest.mark.parametrize("ending", [Step.MAJORITY, Step.ENDED, Step.LAPSED, Step.LIMITED])
def test_a_timer_that_ends_or_limits_the_grant_ends_the_app_s_access_once(family, settings, ending):
    child, _ = launch_for(family, CHILD)
    with family.session_factory() as session:
        session.execute(update(OidcClient).values(backchannel_logout_uri="https://app.test/bye"))
        session.commit()
        grant = service.grant_by_reference(session, CHILD)
        settling = GrantSettling(
            grant_id=grant.id,
            workflow_id=grant.workflow_id,
            status=ending,
            sources=[Step.ACTIVE, Step.LIMITED] if ending != Step.LIMITED else [Step.ACTIVE],
        )
    activities = ProxyGrantActivities(family.session_factory, Mailer(settings), {})

    assert activities.settle_grant(settling).status == ending
    with family.session_factory() as session:
        revoked_at = session.scalar(
            select(OidcGrant.revoked_at).where(OidcGrant.patient.isnot(None))
        )
    assert revoked_at is not None
    assert activities.settle_grant(settling).status == ending, "a retried activity"
    with family.session_factory() as session:
        again = session.scalar(select(OidcGrant.revoked_at).where(OidcGrant.patient.isnot(None)))
    assert again == revoked_at, "nothing ended twice"
    with family.session_factory() as session:
        told = session.scalars(
            select(OutboxMessage.workflow).where(OutboxMessage.workflow == "LogoutDeliveryWorkflow")
        ).all()
    assert len(told) == 1, "the app hears once, by back-channel logout"

    assert active(family, child["access_token"]) == {"active": False}
    refused = refresh(family, family.app_client, child["refresh_token"])
    assert refused.json()["error"] == "invalid_grant"


def test_a_code_exchanged_after_the_grant_ended_gives_nothing(family):
    page, browser, verifier = signed_in_to_picker(family)
    consent = browser.submit(page, {"choose_patient": "1", "record": CHILD})
    answer = browser.submit(consent, {"decision": "allow", "resource": SMART_SCOPES.split()})
    code = callback_params(answer.headers["Location"])["code"]
    with family.session_factory() as session:
        service.end_grant(session, service.grant_by_reference(session, CHILD), by="staff:ana")

    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }
    refused = token_call(family, family.app_client, data)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


async def test_the_grant_s_end_date_on_the_real_process_ends_the_app_s_access(
    family, time_skipping_env, settings, session_factory, task_queue
):
    """The ProxyGrantWorkflow with its real activities on the time-skipping server: the end date
    passes, the grant ends, and the app's tokens for the child end in the same commit."""
    child, _ = launch_for(family, CHILD)
    env = time_skipping_env
    ends = ((await env.get_current_time()) + timedelta(days=3)).date().isoformat()
    with session_factory() as session:
        grant = service.grant_by_reference(session, CHILD)
        grant.ends_on = ends
        session.commit()
        grant_id, workflow_id = grant.id, grant.workflow_id
    real = ProxyGrantActivities(
        session_factory, Mailer(settings), load_portals(settings.portals_file)
    )
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[ProxyGrantWorkflow],
        activities=[real.settle_grant, real.send_grant_mail],
        activity_executor=ThreadPoolExecutor(2),
    ):
        handle = await env.client.start_workflow(
            ProxyGrantWorkflow.run,
            ProxyGrantStart(
                portal="patient", grant_id=grant_id, origin=Origin.INVITATION, ends_on=ends
            ),
            id=workflow_id,
            task_queue=task_queue,
        )
        await handle.signal(ProxyGrantWorkflow.accept, GrantAccepted(proxy_user_id=family.luis))
        assert (await handle.result()).status == Step.ENDED

    with session_factory() as session:
        revoked = session.scalar(select(OidcGrant.revoked_at).where(OidcGrant.acting_for == CHILD))
    assert revoked is not None, "revoked by the activity that ended the grant"
    assert active(family, child["access_token"]) == {"active": False}
    assert active(family, child["refresh_token"]) == {"active": False}
    refused = refresh(family, family.app_client, child["refresh_token"])
    assert refused.json()["error"] == "invalid_grant"
