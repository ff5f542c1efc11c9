"""Acceso as a SMART App Launch authorization server over real HTTP: discovery, v2 scopes with
consent per resource type, the patient context and fhirUser, offline access that outlives the
portal session, and introspection for resource servers."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from sqlalchemy import func, select, update

from mail.mailer import Mailer
from portal.models import (
    AccountStatus,
    ClinicalRecord,
    EmailToken,
    MemberRecord,
    OidcAuthorizationCode,
    OidcGrant,
    User,
    utcnow,
)
from portal.smart import resource_scope
from processes.recovery.activities import RecoveryActivities, ResetConfirmed
from tests.fixtures.oidc import PASSWORD, REDIRECT_URI, _provider, callback_params

pytestmark = pytest.mark.dialects

SMART_SCOPES = (
    "openid fhirUser launch/patient offline_access patient/Patient.r patient/Observation.rs"
)
APPROVED = [*SMART_SCOPES.split(), "online_access", "profile"]


def smart_app(provider, name="mis-datos", public=True, **options):
    options.setdefault("first_party", False)
    options.setdefault("approved_scopes", APPROVED)
    return provider.add_client(name, public=public, **options)


def resource_server(provider, name="fhir"):
    return provider.add_client(name, first_party=False)


def patient_with_record(provider, username="ana.perez", fhir_id="pat-ana", linked=True):
    """An account and its clinical record; `linked=False` is an account older than the link,
    whose record is found by its e-mail."""
    user_id = provider.add_user(username)
    with provider.session_factory() as session:
        record = ClinicalRecord(
            portal="patient",
            record_number=f"HC-{user_id}",
            full_name="Ana Pérez",
            email=f"{username}@example.org",
            fhir_patient_id=fhir_id,
        )
        session.add(record)
        session.flush()
        if linked:
            session.get(User, user_id).clinical_record_id = record.id
        session.commit()
    return user_id


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize(provider, client, browser, scope=SMART_SCOPES, portal="patient", **params):
    """The authorize request as a SMART app sends it; returns the first page or redirect."""
    verifier, challenge = pkce()
    query = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": scope,
        "state": "st",
        "nonce": "n-1",
        "aud": "http://fhir.test/fhir",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **params,
    }
    answer = browser.walk(f"{provider.issuer(portal)}/authorize?{urlencode(query)}")
    return answer, verifier


def launch(provider, client, browser=None, scope=SMART_SCOPES, keep=None, username="ana.perez"):
    """Authorize, sign in, consent (keeping only `keep` resource scopes if given), exchange."""
    browser = browser or provider.browser()
    answer, verifier = authorize(provider, client, browser, scope)
    if "/login" in answer.url and answer.status_code == 200:
        answer = browser.sign_in(answer, username)
    if answer.status_code == 200:
        assert "resource" in answer.text or "Permitir" in answer.text, answer.text[:300]
        resources = keep if keep is not None else [s for s in scope.split() if resource_scope(s)]
        answer = browser.submit(answer, {"decision": "allow", "resource": resources})
    params = callback_params(answer.headers["Location"])
    assert "code" in params, params
    data = {
        "grant_type": "authorization_code",
        "code": params["code"],
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }
    return token_call(provider, client, data), browser


def token_call(provider, client, data):
    auth = (client.client_id, client.client_secret) if client.client_secret else None
    if auth is None:
        data = {**data, "client_id": client.client_id}
    return requests.post(f"{provider.issuer()}/token", data=data, auth=auth, timeout=5)


def refresh(provider, client, refresh_token):
    return token_call(
        provider, client, {"grant_type": "refresh_token", "refresh_token": refresh_token}
    )


def introspect(provider, token, server):
    return requests.post(
        f"{provider.issuer()}/introspect",
        data={"token": token},
        auth=(server.client_id, server.client_secret),
        timeout=5,
    )


def codes_issued(provider) -> int:
    with provider.session_factory() as session:
        return session.scalar(select(func.count()).select_from(OidcAuthorizationCode))


def test_smart_discovery_lists_the_capabilities_scopes_and_endpoints_on_patient_and_member(
    provider,
):
    for portal in ("patient", "member"):
        issuer = provider.issuer(portal)
        answer = requests.get(f"{issuer}/.well-known/smart-configuration", timeout=5)
        assert answer.status_code == 200
        meta = answer.json()
        assert meta["issuer"] == issuer
        assert {
            "launch-standalone",
            "client-public",
            "client-confidential-symmetric",
            "context-standalone-patient",
            "permission-patient",
            "permission-offline",
            "permission-v2",
            "sso-openid-connect",
        } <= set(meta["capabilities"])
        assert not {"launch-ehr", "context-ehr-patient", "permission-user"} & set(
            meta["capabilities"]
        )
        for endpoint in ("authorization", "token", "introspection", "revocation", "userinfo"):
            assert meta[f"{endpoint}_endpoint"].startswith(f"{issuer}/")
        assert meta["code_challenge_methods_supported"] == ["S256"]
        assert {"launch/patient", "fhirUser", "offline_access", "online_access", "openid"} <= set(
            meta["scopes_supported"]
        )
        assert "patient/*.rs" in meta["scopes_supported"]
        oidc = provider.metadata(portal)
        assert oidc["introspection_endpoint"] == meta["introspection_endpoint"]
    provider_portal = f"{provider.issuer('provider')}/.well-known/smart-configuration"
    assert requests.get(provider_portal, timeout=5).status_code == 404
    assert "launch/patient" not in provider.metadata("provider")["scopes_supported"]


def test_a_standalone_launch_gives_the_patient_context_and_fhir_user(provider):
    patient_with_record(provider)
    app = smart_app(provider)

    answer, _ = launch(provider, app)

    assert answer.status_code == 200, answer.text
    token = answer.json()
    assert token["patient"] == "pat-ana"
    assert set(token["scope"].split()) == set(SMART_SCOPES.split())
    id_token = provider.validate_id_token(token["id_token"], app, "n-1")
    assert id_token.claims["fhirUser"] == "Patient/pat-ana"


def test_consent_names_each_resource_in_plain_words_and_an_unticked_one_is_not_granted(provider):
    patient_with_record(provider)
    app = smart_app(provider)
    browser = provider.browser()
    page, _ = authorize(provider, app, browser)
    page = browser.sign_in(page, "ana.perez")
    assert "Sus resultados de laboratorio y signos vitales (leer, buscar)" in page.text
    assert "Sus datos personales" in page.text
    english = browser.get(page.url + "&lang=en")
    assert "Your lab results and vital signs (read, search)" in english.text

    answer, _ = launch(provider, app, browser, keep=["patient/Patient.r"])

    granted = answer.json()["scope"].split()
    assert "patient/Patient.r" in granted and "patient/Observation.rs" not in granted


@pytest.mark.parametrize(
    ("scope", "params", "error"),
    [
        ("openid launch/patient patient/Condition.rs", {}, "invalid_scope"),
        ("openid patient/Observation.rs", {}, "invalid_scope"),
        (SMART_SCOPES, {"code_challenge_method": "plain"}, "invalid_request"),
    ],
    ids=["scope-not-approved", "patient-scope-without-launch", "plain-pkce"],
)
def test_a_smart_request_the_specification_refuses_goes_back_with_its_error_and_no_code(
    provider, scope, params, error
):
    patient_with_record(provider)
    app = smart_app(provider)
    browser = provider.browser()
    browser.sign_in(browser.get(f"{provider.issuer()}/login"), "ana.perez")
    if params.get("code_challenge_method") == "plain":
        params["code_challenge"] = secrets.token_urlsafe(48)

    answer, _ = authorize(provider, app, browser, scope, **params)

    assert answer.status_code in (302, 303)
    assert callback_params(answer.headers["Location"])["error"] == error
    assert codes_issued(provider) == 0


def test_a_client_not_approved_for_smart_scopes_cannot_ask_for_them(provider):
    patient_with_record(provider)
    plain = provider.add_client("plain", first_party=False)
    browser = provider.browser()
    browser.sign_in(browser.get(f"{provider.issuer()}/login"), "ana.perez")

    answer, _ = authorize(provider, plain, browser, "openid launch/patient patient/*.rs")

    assert callback_params(answer.headers["Location"])["error"] == "invalid_scope"
    assert codes_issued(provider) == 0


def test_an_older_account_finds_its_record_by_e_mail_but_never_guesses_among_shared_ones(
    provider,
):
    patient_with_record(provider, linked=False)
    app = smart_app(provider)
    assert launch(provider, app)[0].json()["patient"] == "pat-ana"

    with provider.session_factory() as session:
        session.add(
            ClinicalRecord(
                portal="patient",
                record_number="HC-hijo",
                full_name="Hijo Pérez",
                email="ana.perez@example.org",
            )
        )
        session.commit()
    browser = provider.browser()
    answer, _ = authorize(provider, app, browser, prompt="consent")
    answer = browser.sign_in(answer, "ana.perez")
    answer = browser.submit(answer, {"decision": "allow", "resource": ["patient/Patient.r"]})
    assert callback_params(answer.headers["Location"])["error"] == "access_denied"


def test_launch_patient_without_a_clinical_record_is_refused(provider):
    provider.add_user()
    app = smart_app(provider)
    browser = provider.browser()
    answer, _ = authorize(provider, app, browser)
    answer = browser.sign_in(answer, "ana.perez")
    answer = browser.submit(answer, {"decision": "allow", "resource": ["patient/Patient.r"]})
    assert callback_params(answer.headers["Location"])["error"] == "access_denied"
    assert codes_issued(provider) == 0


def test_a_member_gets_the_patient_id_of_their_member_record(provider):
    provider.add_user("carlos", portal="member", client_id="100200301")
    with provider.session_factory() as session:
        session.add(
            MemberRecord(
                portal="member",
                client_id="100200301",
                first_name="Carlos",
                last_name="Santos",
                date_of_birth="1979-11-03",
            )
        )
        session.commit()
    app = smart_app(provider, portal="member")
    browser = provider.browser()
    answer, verifier = authorize(provider, app, browser, portal="member")
    answer = browser.sign_in(answer, "carlos")
    answer = browser.submit(answer, {"decision": "allow", "resource": ["patient/Patient.r"]})
    code = callback_params(answer.headers["Location"])["code"]
    token = requests.post(
        f"{provider.issuer('member')}/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
            "client_id": app.client_id,
        },
        timeout=5,
    ).json()
    assert token["patient"] == "100200301"


def test_introspection_tells_a_resource_server_the_scope_patient_and_expiry(provider):
    patient_with_record(provider)
    app = smart_app(provider)
    server = resource_server(provider)
    token = launch(provider, app)[0].json()

    answer = introspect(provider, token["access_token"], server).json()

    assert answer["active"] is True
    assert answer["client_id"] == app.client_id
    assert answer["patient"] == "pat-ana" and answer["fhirUser"] == "Patient/pat-ana"
    assert set(answer["scope"].split()) == set(SMART_SCOPES.split())
    assert answer["sub"] and answer["exp"] > 0
    assert introspect(provider, "not-a-token", server).json() == {"active": False}


def test_introspection_refuses_an_unauthenticated_caller_or_a_public_client(provider):
    patient_with_record(provider)
    app = smart_app(provider)
    token = launch(provider, app)[0].json()

    anonymous = requests.post(
        f"{provider.issuer()}/introspect", data={"token": token["access_token"]}, timeout=5
    )
    as_public = requests.post(
        f"{provider.issuer()}/introspect",
        data={"token": token["access_token"], "client_id": app.client_id},
        timeout=5,
    )
    wrong_secret = requests.post(
        f"{provider.issuer()}/introspect",
        data={"token": token["access_token"]},
        auth=(resource_server(provider).client_id, "wrong"),
        timeout=5,
    )

    for answer in (anonymous, as_public, wrong_secret):
        assert answer.status_code == 401
        assert answer.json()["error"] == "invalid_client"
        assert "active" not in answer.json()


def test_a_revoked_or_rotated_out_token_is_inactive_at_once(provider):
    patient_with_record(provider)
    app = smart_app(provider)
    server = resource_server(provider)
    token = launch(provider, app)[0].json()
    assert introspect(provider, token["refresh_token"], server).json()["active"] is True

    renewed = refresh(provider, app, token["refresh_token"]).json()
    requests.post(
        f"{provider.issuer()}/revoke",
        data={"token": renewed["access_token"], "client_id": app.client_id},
        timeout=5,
    )

    assert introspect(provider, token["refresh_token"], server).json() == {"active": False}
    assert introspect(provider, renewed["access_token"], server).json() == {"active": False}
    assert introspect(provider, renewed["refresh_token"], server).json()["active"] is True


def test_offline_access_outlives_signing_out_of_the_portal_and_is_renewed_by_use(provider):
    patient_with_record(provider)
    app = smart_app(provider)
    server = resource_server(provider)
    token, browser = launch(provider, app)
    token = token.json()

    page = browser.get(f"{provider.issuer()}/end-session")
    browser.submit(page, {})
    assert "/login" in browser.get(f"{provider.issuer()}/account/password").url

    with provider.session_factory() as session:
        session.execute(update(OidcGrant).values(expires_at=utcnow() + timedelta(days=2)))
        session.commit()
    renewed = refresh(provider, app, token["refresh_token"])
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["patient"] == "pat-ana"
    assert introspect(provider, renewed.json()["access_token"], server).json()["active"]
    with provider.session_factory() as session:
        grant = session.scalar(select(OidcGrant))
        assert grant.offline and grant.revoked_at is None
        assert grant.expires_at > utcnow() + timedelta(days=89)


def test_online_access_ends_with_the_portal_session(provider):
    patient_with_record(provider)
    app = smart_app(provider)
    token, browser = launch(
        provider, app, scope="openid launch/patient online_access patient/Patient.r"
    )
    token = token.json()

    browser.submit(browser.get(f"{provider.issuer()}/end-session"), {})

    assert refresh(provider, app, token["refresh_token"]).json()["error"] == "invalid_grant"


def test_offline_access_lapses_after_the_policy_days_unused(provider):
    patient_with_record(provider)
    app = smart_app(provider)
    server = resource_server(provider)
    token = launch(provider, app)[0].json()

    with provider.session_factory() as session:
        session.execute(update(OidcGrant).values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()

    answer = refresh(provider, app, token["refresh_token"])
    assert answer.json()["error"] == "invalid_grant"
    assert introspect(provider, token["access_token"], server).json() == {"active": False}


def test_a_password_change_ends_offline_access_by_default(provider):
    patient_with_record(provider)
    app = smart_app(provider)
    token, browser = launch(provider, app)
    token = token.json()

    page = browser.get(f"{provider.issuer()}/account/password")
    browser.submit(
        page,
        {
            "current_password": PASSWORD,
            "new_password": "OtraClave456segura",
            "new_password_confirm": "OtraClave456segura",
        },
    )

    assert refresh(provider, app, token["refresh_token"]).json()["error"] == "invalid_grant"


def test_a_disabled_account_ends_offline_access(provider):
    user_id = patient_with_record(provider)
    app = smart_app(provider)
    server = resource_server(provider)
    token = launch(provider, app)[0].json()

    with provider.session_factory() as session:
        session.execute(
            update(User).where(User.id == user_id).values(status=AccountStatus.DISABLED)
        )
        session.commit()

    assert refresh(provider, app, token["refresh_token"]).json()["error"] == "invalid_grant"
    assert introspect(provider, token["access_token"], server).json() == {"active": False}


def provider_with_policy(settings, session_factory, tmp_path, policy: str):
    """The provider with lines added to the patient portal's policy; returns it and its stop."""
    portals = Path(settings.portals_file).read_text(encoding="utf-8")
    portals = portals.replace("[portals.patient.policy]\n", f"[portals.patient.policy]\n{policy}\n")
    (tmp_path / "portals.toml").write_text(portals, encoding="utf-8")
    made, stop, _ = _provider(
        replace(settings, portals_file=tmp_path / "portals.toml"), session_factory
    )
    return made, stop


@pytest.fixture
def guarded_provider(settings, session_factory, tmp_path):
    """The provider with a patient portal that lists its one FHIR server."""
    made, stop = provider_with_policy(
        settings, session_factory, tmp_path, 'fhir_base_urls = ["http://fhir.test/fhir"]'
    )
    yield made
    stop()


@pytest.fixture
def lenient_provider(settings, session_factory, tmp_path):
    """The provider with a patient portal whose password changes keep offline access."""
    made, stop = provider_with_policy(
        settings, session_factory, tmp_path, "password_reset_ends_offline_access = false"
    )
    yield made
    stop()


def test_a_password_change_keeps_offline_access_when_the_policy_says_so(lenient_provider):
    provider = lenient_provider
    patient_with_record(provider)
    app = smart_app(provider)
    plain = provider.add_client("portal-app")
    token, browser = launch(provider, app)
    token = token.json()
    other = provider.sign_in(plain, browser)

    page = browser.get(f"{provider.issuer()}/account/password")
    browser.submit(
        page,
        {
            "current_password": PASSWORD,
            "new_password": "OtraClave456segura",
            "new_password_confirm": "OtraClave456segura",
        },
    )

    assert refresh(provider, app, token["refresh_token"]).status_code == 200
    assert refresh(provider, plain, other.token["refresh_token"]).json()["error"] == (
        "invalid_grant"
    )


def test_a_portal_that_lists_its_fhir_servers_refuses_a_token_for_another(guarded_provider):
    provider = guarded_provider
    patient_with_record(provider)
    app = smart_app(provider)
    browser = provider.browser()
    browser.sign_in(browser.get(f"{provider.issuer()}/login"), "ana.perez")

    elsewhere, _ = authorize(provider, app, browser, aud="https://evil.example/fhir")
    missing, _ = authorize(provider, app, browser, aud="")

    for answer in (elsewhere, missing):
        assert callback_params(answer.headers["Location"])["error"] == "invalid_request"
    assert codes_issued(provider) == 0
    assert launch(provider, app, browser)[0].json()["patient"] == "pat-ana"


def test_a_confidential_health_app_authenticates_with_its_secret_and_still_needs_pkce(provider):
    patient_with_record(provider)
    app = smart_app(provider, "portal-del-afiliado", public=False)
    browser = provider.browser()
    browser.sign_in(browser.get(f"{provider.issuer()}/login"), "ana.perez")

    without_pkce, _ = authorize(provider, app, browser, code_challenge="", code_challenge_method="")
    assert callback_params(without_pkce.headers["Location"])["error"] == "invalid_request"

    answer, _ = launch(provider, app, browser)
    assert answer.status_code == 200 and answer.json()["patient"] == "pat-ana"


def apply_reset(settings, session_factory, user_id: int) -> None:
    """The reset's activity, as the worker runs it once the link was followed."""
    with session_factory() as session:
        token = EmailToken(
            token_hash=secrets.token_hex(32),
            purpose="reset",
            portal="patient",
            workflow_id="password-reset/patient/test",
            user_id=user_id,
            expires_at=utcnow() + timedelta(hours=1),
        )
        session.add(token)
        session.commit()
        token_id = token.id
    RecoveryActivities(session_factory, Mailer(settings)).apply_reset(
        ResetConfirmed(
            workflow_id="password-reset/patient/test",
            portal="patient",
            token_id=token_id,
            user_id=user_id,
            mode="temporary_password",
            temporary_password_hours=24,
        )
    )


@pytest.mark.parametrize(
    ("policy", "survives"),
    [("", False), ("password_reset_ends_offline_access = false", True)],
    ids=["default-ends-it", "policy-keeps-it"],
)
def test_a_password_reset_ends_offline_access_as_the_policy_says(
    settings, session_factory, tmp_path, policy, survives
):
    provider, stop = provider_with_policy(settings, session_factory, tmp_path, policy)
    try:
        user_id = patient_with_record(provider)
        app = smart_app(provider)
        token = launch(provider, app)[0].json()

        reset_settings = replace(settings, portals_file=tmp_path / "portals.toml")
        apply_reset(reset_settings, session_factory, user_id)

        renewed = refresh(provider, app, token["refresh_token"])
        assert (renewed.status_code == 200) is survives, renewed.text
    finally:
        stop()


def test_consent_is_remembered_as_granted_and_asked_again_for_what_was_unticked(provider):
    patient_with_record(provider)
    app = smart_app(provider)
    token, browser = launch(provider, app, keep=["patient/Patient.r"])
    assert "patient/Observation.rs" not in token.json()["scope"]

    narrower = "openid fhirUser launch/patient offline_access patient/Patient.r"
    again, _ = authorize(provider, app, browser, narrower)
    assert again.status_code in (302, 303) and "code" in callback_params(again.headers["Location"])

    wider, _ = authorize(provider, app, browser)
    assert wider.status_code == 200 and "Sus resultados de laboratorio" in wider.text


def test_removing_the_app_on_the_activity_page_ends_its_offline_access(provider):
    patient_with_record(provider)
    app = smart_app(provider)
    server = resource_server(provider)
    token, browser = launch(provider, app)
    token = token.json()
    browser.submit(browser.get(f"{provider.issuer()}/end-session"), {})
    assert refresh(provider, app, token["refresh_token"]).status_code == 200

    page = browser.sign_in(browser.get(f"{provider.issuer()}/login"), "ana.perez")
    page = browser.get(f"{provider.issuer()}/account/activity")
    assert "mis-datos" in page.text
    assert "Sus resultados de laboratorio y signos vitales (leer, buscar)" in page.text
    with provider.session_factory() as session:
        grant = session.scalar(select(OidcGrant))
    browser.post(
        f"{provider.issuer()}/account/activity/applications/remove",
        data={"client": grant.client_pk, "csrf_token": csrf_of(page)},
    )

    assert refresh(provider, app, token["refresh_token"]).json()["error"] == "invalid_grant"
    assert introspect(provider, token["access_token"], server).json() == {"active": False}
    smart = requests.get(f"{provider.issuer()}/.well-known/smart-configuration", timeout=5)
    assert smart.json()["management_endpoint"] == f"{provider.issuer()}/account/activity"


def csrf_of(page) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text).group(1)
