"""Applications see who acts for whom: with the `proxy` scope, a proxy who chose someone signs in
with their own `sub` and an `acting_for` claim (the person's `sub`, the relationship, the
access) in the ID token and at userinfo; ending the grant ends the proxy's tokens made under it and
every client with a back-channel URI is told, while the proxy's own sign-ins go on."""

from __future__ import annotations

import re

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from portal.models import OidcSubject, ProxyGrant
from processes.proxy_grant import service
from tests.fixtures.waiting import wait_until
from tests.test_oidc_logout import receiver  # noqa: F401  (the back-channel endpoint fixture)

REFERENCE = "XOIDC0001"


@pytest.fixture
def family(provider_with_worker):
    provider = provider_with_worker
    ana = provider.add_user("ana.perez")
    luis = provider.add_user("luis.gomez", full_name="Luis Gómez")
    with provider.session_factory() as session:
        session.add(
            ProxyGrant(
                reference=REFERENCE,
                portal="patient",
                workflow_id=f"proxy/patient/{REFERENCE}",
                origin="request",
                status="active",
                subject_user_id=ana,
                proxy_user_id=luis,
                relationship="other",
                access="view",
            )
        )
        session.commit()
    provider.ana, provider.luis = ana, luis
    return provider


def sub_of(provider, user_id: int) -> str:
    with provider.session_factory() as session:
        return session.scalar(select(OidcSubject.subject).where(OidcSubject.user_id == user_id))


def signed_in_as_proxy(provider, reference: str = REFERENCE):
    browser = provider.browser()
    browser.sign_in(browser.walk(f"{provider.base_url}/patient/login"), "luis.gomez")
    if reference:
        page = browser.get(f"{provider.base_url}/patient/account/proxies")
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text).group(1)
        switched = browser.post(
            f"{provider.base_url}/patient/proxy/act",
            data={"csrf_token": token, "reference": reference},
            allow_redirects=False,
        )
        assert switched.status_code == 302
    return browser


def id_claims(provider, id_token: str) -> dict:
    keys = KeySet.import_key_set(requests.get(provider.metadata()["jwks_uri"], timeout=5).json())
    return jwt.decode(id_token, keys, algorithms=["ES256"]).claims


def test_the_proxy_scope_is_published_for_the_patient_portal(family):
    assert "proxy" in family.metadata()["scopes_supported"]


def test_a_proxy_who_chose_someone_carries_acting_for_in_the_id_token_and_userinfo(
    family,
    receiver,  # noqa: F811
):
    receiver.up = True
    client = family.add_client(backchannel_logout_uri=receiver.url)
    own = family.sign_in(client, signed_in_as_proxy(family, reference=""), username="luis.gomez")
    browser = signed_in_as_proxy(family)
    signin = family.sign_in(client, browser, username="luis.gomez", scope="openid proxy")
    claims = id_claims(family, signin.token["id_token"])
    assert claims["sub"] == sub_of(family, family.luis)
    expected = {"sub": sub_of(family, family.ana), "relationship": "other", "access": "view"}
    assert claims["acting_for"] == expected
    userinfo = signin.oauth.get(family.metadata()["userinfo_endpoint"]).json()
    assert userinfo["sub"] == claims["sub"] and userinfo["acting_for"] == expected

    with family.session_factory() as session:
        grant = session.scalar(select(ProxyGrant))
        assert service.end_grant(session, grant, by=f"user:{family.ana}")
    assert signin.oauth.get(family.metadata()["userinfo_endpoint"]).status_code == 401
    assert own.oauth.get(family.metadata()["userinfo_endpoint"]).status_code == 200, (
        "the proxy's own sign-in goes on"
    )
    wait_until(lambda: receiver.tokens, timeout=30, what="the back-channel logout")


def test_without_the_scope_or_without_a_choice_there_is_no_acting_for(family):
    client = family.add_client()
    chose = signed_in_as_proxy(family)
    plain = family.sign_in(client, chose, username="luis.gomez", scope="openid profile")
    assert "acting_for" not in id_claims(family, plain.token["id_token"])
    own = signed_in_as_proxy(family, reference="")
    mine = family.sign_in(client, own, username="luis.gomez", scope="openid proxy")
    assert "acting_for" not in id_claims(family, mine.token["id_token"])
