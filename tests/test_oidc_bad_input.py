"""Every bad request to the OIDC endpoints is refused as RFC 6749 / OIDC Core say, with no 500,
and an unregistered redirect URI is never redirected to."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

import pytest
import requests
from authlib.integrations.base_client.errors import OAuthError
from sqlalchemy import update

from portal.models import OidcAuthorizationCode, utcnow
from tests.fixtures.oidc import REDIRECT_URI, callback_params


def authorize_url(provider, portal="patient", **params) -> str:
    return f"{provider.issuer(portal)}/authorize?{urlencode(params)}"


def code_for(provider, client, browser=None, **params):
    """Runs authorize and sign-in, and returns the callback's parameters and the verifier."""
    browser = browser or provider.browser()
    oauth = provider.relying_party(client)
    url, verifier, _ = provider.start_signin(oauth, **params)
    answer = browser.walk(url)
    if "/login" in answer.url:
        answer = browser.sign_in(answer, "ana.perez")
    return callback_params(answer.headers["Location"]), verifier, oauth


def exchange(provider, client, code, verifier=None, secret=None, **extra):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, **extra}
    if verifier is not None:
        data["code_verifier"] = verifier
    auth = (client.client_id, secret or client.client_secret) if client.client_secret else None
    if auth is None:
        data["client_id"] = client.client_id
    return requests.post(provider.metadata()["token_endpoint"], data=data, auth=auth, timeout=5)


@pytest.fixture
def ready(provider):
    provider.add_user()
    return provider, provider.add_client()


def test_unknown_client_gets_a_page_and_no_redirect(ready):
    provider, _ = ready
    url = authorize_url(
        provider,
        client_id="nobody",
        redirect_uri=REDIRECT_URI,
        response_type="code",
        scope="openid",
    )
    answer = requests.get(url, allow_redirects=False, timeout=5)
    assert answer.status_code == 400
    assert "Location" not in answer.headers
    assert "no está registrada" in answer.text


@pytest.mark.parametrize(
    "redirect_uri",
    [
        REDIRECT_URI + "/evil",
        REDIRECT_URI + "?next=https://evil.example",
        REDIRECT_URI.upper(),
        "http://evil.example/callback",
        "",
    ],
)
def test_redirect_uri_not_registered_exactly_is_never_redirected_to(ready, redirect_uri):
    provider, client = ready
    browser = provider.browser()
    url = authorize_url(
        provider,
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        response_type="code",
        scope="openid",
        state="s1",
    )
    answer = browser.get(url, allow_redirects=False)
    assert answer.status_code == 400
    assert "Location" not in answer.headers
    assert "dirección de retorno" in answer.text


def test_client_of_another_portal_is_unknown_to_this_issuer(ready):
    provider, _ = ready
    member_client = provider.add_client("benefits", portal="member")
    url = authorize_url(
        provider,
        client_id=member_client.client_id,
        redirect_uri=REDIRECT_URI,
        response_type="code",
        scope="openid",
    )
    assert requests.get(url, allow_redirects=False, timeout=5).status_code == 400
    answer = exchange(provider, member_client, "whatever")
    assert (answer.status_code, answer.json()["error"]) == (401, "invalid_client")


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": "code id_token"}, "unsupported_response_type"),
        ({"scope": "profile"}, "invalid_scope"),
        ({"scope": "admin member_id"}, "invalid_scope"),
        ({"request_uri": "https://rp.test/requests/1"}, "request_uri_not_supported"),
        ({"request": "e30.e30."}, "request_not_supported"),
        ({"prompt": "none login"}, "invalid_request"),
        ({"response_mode": "form_post"}, "invalid_request"),
        ({"code_challenge": "x" * 43, "code_challenge_method": "plain"}, "invalid_request"),
        ({"max_age": "soon"}, "invalid_request"),
        ({"max_age": "9" * 30}, "invalid_request"),
        ({"max_age": "-1"}, "invalid_request"),
        ({"nonce": "n" * 256}, "invalid_request"),
        ({"code_challenge": "short", "code_challenge_method": "S256"}, "invalid_request"),
    ],
)
def test_bad_authorization_requests_return_an_error_to_the_registered_uri(ready, params, error):
    provider, client = ready
    query = {
        "client_id": client.client_id,
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "scope": "openid",
        "state": "st4te",
        **params,
    }
    answer = requests.get(authorize_url(provider, **query), allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    got = callback_params(location)
    assert (got["error"], got["state"], got["iss"]) == (error, "st4te", provider.issuer())
    assert "code" not in got


def test_public_client_without_pkce_is_refused(ready):
    provider, _ = ready
    spa = provider.add_client("spa", public=True)
    query = {
        "client_id": spa.client_id,
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "scope": "openid",
    }
    answer = requests.get(authorize_url(provider, **query), allow_redirects=False, timeout=5)
    assert callback_params(answer.headers["Location"])["error"] == "invalid_request"


@pytest.mark.parametrize("verifier", [None, "wrong-" * 8])
def test_missing_or_wrong_pkce_verifier_is_refused_and_burns_the_code(ready, verifier):
    provider, client = ready
    got, right_verifier, _ = code_for(provider, client)

    answer = exchange(provider, client, got["code"], verifier)
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_grant")

    again = exchange(provider, client, got["code"], right_verifier)
    assert again.json()["error"] == "invalid_grant"


def test_reused_code_is_refused_and_revokes_the_tokens_it_gave(ready):
    provider, client = ready
    got, verifier, _ = code_for(provider, client)
    first = exchange(provider, client, got["code"], verifier).json()
    userinfo = provider.metadata()["userinfo_endpoint"]
    bearer = {"Authorization": f"Bearer {first['access_token']}"}
    assert requests.get(userinfo, headers=bearer, timeout=5).status_code == 200

    again = exchange(provider, client, got["code"], verifier)

    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")
    assert requests.get(userinfo, headers=bearer, timeout=5).status_code == 401
    refresh = requests.post(
        provider.metadata()["token_endpoint"],
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        auth=(client.client_id, client.client_secret),
        timeout=5,
    )
    assert refresh.json()["error"] == "invalid_grant"


def test_expired_code_is_refused(ready):
    provider, client = ready
    got, verifier, _ = code_for(provider, client)
    with provider.session_factory() as session:
        session.execute(
            update(OidcAuthorizationCode).values(expires_at=utcnow() - timedelta(seconds=1))
        )
        session.commit()
    answer = exchange(provider, client, got["code"], verifier)
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_grant")


def test_code_lives_sixty_seconds_and_is_stored_hashed(ready):
    provider, client = ready
    got, _, _ = code_for(provider, client)
    with provider.session_factory() as session:
        row = session.query(OidcAuthorizationCode).one()
    assert row.code_hash != got["code"] and got["code"] not in row.code_hash
    assert timedelta(seconds=59) <= row.expires_at - row.created_at <= timedelta(seconds=61)


def test_code_for_another_redirect_uri_or_client_is_refused(ready):
    provider, client = ready
    other = provider.add_client("other", redirect_uris=[REDIRECT_URI, "http://rp.test/other"])
    got, verifier, _ = code_for(provider, client)
    assert exchange(provider, other, got["code"], verifier).json()["error"] == "invalid_grant"
    got, verifier, _ = code_for(provider, client)
    wrong_uri = exchange(provider, client, got["code"], verifier, redirect_uri="http://rp.test/x")
    assert wrong_uri.json()["error"] == "invalid_grant"


def test_wrong_client_secret_is_refused_with_401(ready):
    provider, client = ready
    got, verifier, _ = code_for(provider, client)
    answer = exchange(provider, client, got["code"], verifier, secret="not-the-secret")
    assert (answer.status_code, answer.json()["error"]) == (401, "invalid_client")
    assert answer.headers["WWW-Authenticate"].startswith("Basic")
    assert exchange(provider, client, got["code"], verifier).status_code == 200


def test_unsupported_grant_type_and_garbage_never_make_a_500(ready):
    provider, client = ready
    token_url = provider.metadata()["token_endpoint"]
    auth = (client.client_id, client.client_secret)
    assert (
        requests.post(token_url, data={"grant_type": "password"}, auth=auth, timeout=5).json()[
            "error"
        ]
        == "unsupported_grant_type"
    )
    for headers in ({"Authorization": "Basic %%%"}, {"Authorization": "Basic Zm9v"}, {}):
        answer = requests.post(token_url, data={"grant_type": "x"}, headers=headers, timeout=5)
        assert answer.status_code == 401
    for bearer in ("garbage", "a.b.c", ""):
        answer = requests.get(
            provider.metadata()["userinfo_endpoint"],
            headers={"Authorization": f"Bearer {bearer}"},
            timeout=5,
        )
        assert answer.status_code == 401
    end = provider.metadata()["end_session_endpoint"]
    assert requests.get(end, params={"id_token_hint": "x.y.z"}, timeout=5).status_code == 400
    revoke = provider.metadata()["revocation_endpoint"]
    assert requests.post(revoke, data={"token": "nothing"}, auth=auth, timeout=5).status_code == 200
    assert requests.post(revoke, data={}, auth=auth, timeout=5).status_code == 400


def test_a_token_from_another_portals_issuer_is_refused(ready):
    provider, patient_client = ready
    provider.add_user("memo", portal="member", role="member")
    member_client = provider.add_client("benefits", portal="member")
    signin = provider.sign_in(member_client, username="memo", portal="member")

    answer = requests.get(
        provider.metadata("patient")["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {signin.token['access_token']}"},
        timeout=5,
    )
    assert answer.status_code == 401
    assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]

    refresh = requests.post(
        provider.metadata("patient")["token_endpoint"],
        data={"grant_type": "refresh_token", "refresh_token": signin.token["refresh_token"]},
        auth=(patient_client.client_id, patient_client.client_secret),
        timeout=5,
    )
    assert refresh.json()["error"] == "invalid_grant"


def test_an_account_of_one_portal_cannot_sign_in_to_another_portals_issuer(ready):
    provider, client = ready
    provider.add_user("memo", portal="member", role="member")
    browser = provider.browser()
    member_login = browser.get(f"{provider.base_url}/member/login")
    browser.sign_in(member_login, "memo")

    oauth = provider.relying_party(client)
    url, _, _ = provider.start_signin(oauth)
    answer = browser.walk(url)
    assert "/patient/login" in answer.url
    refused = browser.sign_in(answer, "memo")
    assert refused.status_code == 200 and "incorrectos" in refused.text


def test_refresh_token_of_one_client_cannot_be_used_by_another(ready):
    provider, client = ready
    other = provider.add_client("other")
    signin = provider.sign_in(client)
    thief = provider.relying_party(other)
    with pytest.raises(OAuthError) as refused:
        thief.refresh_token(
            provider.metadata()["token_endpoint"], refresh_token=signin.token["refresh_token"]
        )
    assert refused.value.error == "invalid_grant"
    assert signin.oauth.refresh_token(
        provider.metadata()["token_endpoint"], refresh_token=signin.token["refresh_token"]
    )
