"""What strict relying parties trip on, each driven by Authlib's client as a relying party would:
discovery that claims only what is supported, a key set that is never empty, authorization by
POST, unknown scopes and empty parameters, RS256 clients, CORS for browser apps, native apps'
redirects, and nothing expired ever accepted."""

from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import parse_qsl, urljoin, urlsplit

import pytest
import requests
from authlib.integrations.base_client.errors import OAuthError
from joserfc import jwt
from joserfc.errors import JoseError
from sqlalchemy import delete, select, update

from cli import main
from portal.models import (
    OidcAccessToken,
    OidcClient,
    OidcGrant,
    OidcRefreshToken,
    OidcSigningKey,
    utcnow,
)
from portal.oidc import ClientError, add_client, sealing_keys, sign, signing_key
from tests.fixtures.codec import TEST_CODEC_KEYS
from tests.fixtures.oidc import REDIRECT_URI, RegisteredClient, callback_params

SPA_ORIGIN = "https://spa.example"
OTHER_ORIGIN = "https://elsewhere.example"


def cli_client(provider, database_url, monkeypatch, capsys, name, *options) -> RegisteredClient:
    """A client made as an administrator makes one: `acceso client add`, with the web tier's
    secret key (its secret is hashed with a key derived from it)."""
    monkeypatch.setenv("ACCESO_DATABASE_URL", database_url)
    monkeypatch.setenv("ACCESO_SECRET_KEY", provider.app.config["SETTINGS"].secret_key)
    assert main(["client", "add", name, "--portal", "patient", *options]) == 0
    shown = dict(
        line.split(": ", 1) for line in capsys.readouterr().out.splitlines() if ": " in line
    )
    with provider.session_factory() as session:
        pk = session.scalar(select(OidcClient.id).where(OidcClient.name == name))
    return RegisteredClient(shown["client_id"], shown.get("client_secret"), pk)


def authorization_params(provider, oauth, **params) -> tuple[dict[str, str], str, str]:
    """The parameters Authlib would send to the authorization endpoint, with its verifier."""
    url, verifier, nonce = provider.start_signin(oauth, **params)
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True)), verifier, nonce


# --- 1. discovery and request_uri -----------------------------------------------------------


def test_discovery_publishes_only_what_is_supported(provider):
    meta = provider.metadata()

    assert meta["request_uri_parameter_supported"] is False
    assert meta["request_parameter_supported"] is False
    assert meta["claims_parameter_supported"] is False
    assert meta["frontchannel_logout_supported"] is False
    assert meta["backchannel_logout_supported"] is True
    assert meta["backchannel_logout_session_supported"] is True
    assert meta["id_token_signing_alg_values_supported"] == ["ES256", "RS256"]
    assert meta["response_types_supported"] == ["code"]
    assert meta["response_modes_supported"] == ["query"]
    assert {"sid", "azp"} <= set(meta["claims_supported"])


def test_every_published_scope_is_granted_when_asked(provider):
    provider.add_user("rosa", portal="provider", role="provider_primary", office="Clínica Sur")
    client = provider.add_client("claims", portal="provider")
    scopes = provider.metadata("provider")["scopes_supported"]

    signin = provider.sign_in(client, username="rosa", portal="provider", scope=" ".join(scopes))

    assert set(signin.token["scope"].split()) == set(scopes)


def test_a_request_uri_is_answered_request_uri_not_supported_at_the_redirect_uri(provider):
    provider.add_user()
    client = provider.add_client()
    oauth = provider.relying_party(client)
    url, _, _ = provider.start_signin(oauth, request_uri="https://rp.test/requests/1")

    answer = provider.browser().get(url, allow_redirects=False)

    assert answer.status_code == 302
    got = callback_params(answer.headers["Location"])
    assert answer.headers["Location"].startswith(REDIRECT_URI + "?")
    assert got["error"] == "request_uri_not_supported" and "code" not in got
    assert got["state"] == dict(parse_qsl(urlsplit(url).query))["state"]


def test_a_request_uri_with_an_unregistered_redirect_uri_gets_a_page_not_a_redirect(provider):
    client = provider.add_client()
    oauth = provider.relying_party(client, redirect_uri="http://evil.example/cb")
    url, _, _ = provider.start_signin(oauth, request_uri="https://rp.test/requests/1")

    answer = provider.browser().get(url, allow_redirects=False)

    assert answer.status_code == 400 and "Location" not in answer.headers


def test_prompt_consent_shows_the_consent_page_even_to_a_first_party_client(provider):
    provider.add_user()
    client = provider.add_client()
    oauth = provider.relying_party(client)
    url, _, _ = provider.start_signin(oauth, prompt="consent")
    browser = provider.browser()

    consent = browser.sign_in(browser.walk(url), "ana.perez")

    assert consent.status_code == 200 and "Autorizar" in consent.text
    assert "code" in callback_params(
        browser.submit(consent, {"decision": "allow"}).headers["Location"]
    )


# --- 2. a key set that is never empty -------------------------------------------------------


@pytest.mark.dialects
def test_jwks_fetched_before_the_first_sign_in_verifies_the_first_id_tokens(provider):
    provider.add_user()
    es256 = provider.add_client()
    rs256 = provider.add_client("rsa-app", signing_alg="RS256")

    loaded_first = provider.jwks()
    assert {key.key_type for key in loaded_first.keys} == {"EC", "RSA"}

    first = provider.sign_in(es256)
    provider.validate_id_token(first.token["id_token"], es256, first.nonce, keys=loaded_first)
    second = provider.sign_in(rs256)
    provider.validate_id_token(
        second.token["id_token"], rs256, second.nonce, alg="RS256", keys=loaded_first
    )


def test_jwks_is_not_empty_even_when_no_key_was_made_at_start(provider):
    with provider.session_factory() as session:
        session.execute(delete(OidcSigningKey))
        session.commit()

    answer = requests.get(provider.metadata()["jwks_uri"], timeout=5).json()

    assert sorted(key["alg"] for key in answer["keys"]) == ["ES256", "RS256"]


# --- 3. authorization requests by POST ------------------------------------------------------


def test_an_authorization_request_by_post_signs_in(provider):
    provider.add_user()
    client = provider.add_client()
    oauth = provider.relying_party(client)
    params, verifier, nonce = authorization_params(provider, oauth)
    browser = provider.browser()

    posted = browser.post(
        provider.metadata()["authorization_endpoint"], data=params, allow_redirects=False
    )
    assert posted.status_code == 303
    answer = browser.sign_in(
        browser.walk(urljoin(posted.url, posted.headers["Location"])), "ana.perez"
    )
    callback = answer.headers["Location"]
    assert callback.startswith(REDIRECT_URI)

    token = oauth.fetch_token(
        provider.metadata()["token_endpoint"],
        authorization_response=callback,
        code_verifier=verifier,
    )
    provider.validate_id_token(token["id_token"], client, nonce)


def test_a_posted_request_still_needs_the_consent_forms_own_csrf_token(provider):
    provider.add_user()
    client = provider.add_client("third-party", first_party=False)
    oauth = provider.relying_party(client)
    params, _, _ = authorization_params(provider, oauth)
    browser = provider.browser()
    browser.sign_in(browser.get(f"{provider.base_url}/patient/login"), "ana.perez")
    endpoint = provider.metadata()["authorization_endpoint"]

    forged = browser.post(endpoint, data={**params, "decision": "allow"}, allow_redirects=False)
    consent = browser.walk(urljoin(forged.url, forged.headers["Location"]))
    assert consent.status_code == 200 and "Autorizar" in consent.text
    no_token = browser.post(consent.url, data={"decision": "allow"}, allow_redirects=False)
    assert no_token.status_code == 200 and "Location" not in no_token.headers

    allowed = browser.submit(consent, {"decision": "allow"})
    assert "code" in callback_params(allowed.headers["Location"])


# --- 4. unknown scopes and empty parameters -------------------------------------------------


def test_unknown_scopes_are_ignored_and_the_known_ones_granted(provider):
    provider.add_user()
    client = provider.add_client()

    signin = provider.sign_in(client, scope="openid email phone")

    assert signin.token["scope"] == "openid email"
    info = signin.oauth.get(provider.metadata()["userinfo_endpoint"]).json()
    assert set(info) == {"sub", "email", "email_verified"}


def test_empty_parameters_are_treated_as_omitted(provider):
    provider.add_user()
    client = provider.add_client()
    oauth = provider.relying_party(client)
    url, verifier, nonce = provider.start_signin(oauth, max_age="", prompt="", login_hint="")
    assert "max_age=&" in url or url.endswith("max_age=")
    browser = provider.browser()

    answer = browser.sign_in(browser.walk(url), "ana.perez")
    token = oauth.fetch_token(
        provider.metadata()["token_endpoint"],
        authorization_response=answer.headers["Location"],
        code_verifier=verifier,
    )

    provider.validate_id_token(token["id_token"], client, nonce)


# --- 5. RS256 -------------------------------------------------------------------------------


def test_an_rs256_client_verifies_its_id_token_with_the_jwks(
    provider, database_url, monkeypatch, capsys
):
    provider.add_user()
    client = cli_client(
        provider,
        database_url,
        monkeypatch,
        capsys,
        "rsa-app",
        "--redirect-uri",
        REDIRECT_URI,
        "--first-party",
        "--signing-alg",
        "RS256",
    )
    assert main(["client", "list"]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("rsa-app")]
    columns = listed[0].split("\t")
    assert (columns[1], columns[-1]) == ("patient", "RS256")

    signin = provider.sign_in(client)

    decoded = provider.validate_id_token(
        signin.token["id_token"], client, signin.nonce, alg="RS256"
    )
    assert decoded.header["alg"] == "RS256"
    assert provider.jwks().get_by_kid(decoded.header["kid"]).key_type == "RSA"
    assert signin.oauth.get(provider.metadata()["userinfo_endpoint"]).status_code == 200
    refreshed = signin.oauth.refresh_token(
        provider.metadata()["token_endpoint"], refresh_token=signin.token["refresh_token"]
    )
    again = jwt.decode(refreshed["id_token"], provider.jwks(), algorithms=["RS256"])
    assert again.claims["aud"] == client.client_id
    with pytest.raises(JoseError):
        provider.validate_id_token(signin.token["id_token"], client, signin.nonce, alg="ES256")


def test_a_client_cannot_ask_for_an_algorithm_not_offered(provider):
    with provider.session_factory() as session, pytest.raises(ClientError):
        add_client(
            session, "weak", portal="patient", redirect_uris=[REDIRECT_URI], signing_alg="HS256"
        )


# --- 7. browser and native apps -------------------------------------------------------------


@pytest.mark.dialects
def test_cors_preflight_and_answers_for_a_public_clients_registered_origin(provider):
    provider.add_user()
    spa = provider.add_client("spa", public=True, redirect_uris=[f"{SPA_ORIGIN}/callback"])
    provider.add_client("server-app", redirect_uris=[f"{OTHER_ORIGIN}/callback"])
    meta = provider.metadata()
    signin = provider.sign_in(spa, redirect_uri=f"{SPA_ORIGIN}/callback")

    preflight = requests.options(
        meta["token_endpoint"],
        headers={
            "Origin": SPA_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
        timeout=5,
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == SPA_ORIGIN
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "content-type" in preflight.headers["Access-Control-Allow-Headers"].lower()
    userinfo_preflight = requests.options(
        meta["userinfo_endpoint"],
        headers={
            "Origin": SPA_ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
        timeout=5,
    )
    assert userinfo_preflight.headers["Access-Control-Allow-Origin"] == SPA_ORIGIN
    assert "authorization" in userinfo_preflight.headers["Access-Control-Allow-Headers"].lower()

    from_spa = {"Origin": SPA_ORIGIN}
    answers = [
        requests.get(
            f"{provider.issuer()}/.well-known/openid-configuration", headers=from_spa, timeout=5
        ),
        requests.get(meta["jwks_uri"], headers=from_spa, timeout=5),
        signin.oauth.get(meta["userinfo_endpoint"], headers=from_spa),
        requests.post(
            meta["token_endpoint"],
            data={
                "grant_type": "refresh_token",
                "refresh_token": signin.token["refresh_token"],
                "client_id": spa.client_id,
            },
            headers=from_spa,
            timeout=5,
        ),
        requests.post(
            meta["revocation_endpoint"],
            data={"token": "unknown", "client_id": spa.client_id},
            headers=from_spa,
            timeout=5,
        ),
    ]
    assert answers[3].status_code == 200 and answers[3].json()["id_token"]
    for answer in answers:
        assert answer.headers["Access-Control-Allow-Origin"] == SPA_ORIGIN
        assert "Origin" in answer.headers["Vary"]


def test_no_cors_for_an_origin_no_public_client_registered(provider):
    provider.add_client("spa", public=True, redirect_uris=[f"{SPA_ORIGIN}/callback"])
    provider.add_client("server-app", redirect_uris=[f"{OTHER_ORIGIN}/callback"])
    meta = provider.metadata()

    for origin in (OTHER_ORIGIN, "https://evil.example", "null"):
        preflight = requests.options(
            meta["token_endpoint"],
            headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
            timeout=5,
        )
        assert "Access-Control-Allow-Origin" not in preflight.headers
        jwks = requests.get(meta["jwks_uri"], headers={"Origin": origin}, timeout=5)
        assert "Access-Control-Allow-Origin" not in jwks.headers
    login = requests.get(f"{provider.issuer()}/login", headers={"Origin": SPA_ORIGIN}, timeout=5)
    assert "Access-Control-Allow-Origin" not in login.headers


def test_an_allowed_origin_given_to_the_cli_gets_cors(provider, database_url, monkeypatch, capsys):
    cli_client(
        provider,
        database_url,
        monkeypatch,
        capsys,
        "mobile-web",
        "--public",
        "--redirect-uri",
        "com.example.app:/callback",
        "--allowed-origin",
        "https://app.example",
    )
    answer = requests.get(
        provider.metadata()["jwks_uri"], headers={"Origin": "https://app.example"}, timeout=5
    )
    assert answer.headers["Access-Control-Allow-Origin"] == "https://app.example"
    monkeypatch.setenv("ACCESO_DATABASE_URL", database_url)
    refused = main(
        [
            "client",
            "add",
            "server",
            "--portal",
            "patient",
            "--redirect-uri",
            "https://server.example/cb",
            "--allowed-origin",
            "https://server.example",
        ]
    )
    assert refused == 1 and "public client" in capsys.readouterr().err


def test_a_native_app_signs_in_through_a_loopback_redirect_on_any_port(provider):
    provider.add_user()
    app = provider.add_client(
        "desktop", public=True, redirect_uris=["http://127.0.0.1/callback", "http://[::1]/cb"]
    )

    for port in (51234, 60001):
        redirect_uri = f"http://127.0.0.1:{port}/callback"
        signin = provider.sign_in(app, redirect_uri=redirect_uri)
        provider.validate_id_token(signin.token["id_token"], app, signin.nonce)
    provider.sign_in(app, redirect_uri="http://[::1]:40000/cb")


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://127.0.0.1:5000/other",
        "http://localhost:5000/callback",
        "https://127.0.0.1:5000/callback",
        "http://user@127.0.0.1:5000/callback",
    ],
)
def test_a_loopback_redirect_must_match_all_but_the_port(provider, redirect_uri):
    app = provider.add_client("desktop", public=True, redirect_uris=["http://127.0.0.1/callback"])
    oauth = provider.relying_party(app, redirect_uri=redirect_uri)
    url, _, _ = provider.start_signin(oauth)
    answer = requests.get(url, allow_redirects=False, timeout=5)
    assert answer.status_code == 400 and "Location" not in answer.headers


def test_only_public_clients_get_any_port_on_loopback(provider):
    server = provider.add_client("server", redirect_uris=["http://127.0.0.1/callback"])
    oauth = provider.relying_party(server, redirect_uri="http://127.0.0.1:5000/callback")
    url, _, _ = provider.start_signin(oauth)
    assert requests.get(url, allow_redirects=False, timeout=5).status_code == 400


def test_a_native_app_signs_in_through_its_private_use_scheme(provider):
    provider.add_user()
    app = provider.add_client(
        "mobile", public=True, first_party=False, redirect_uris=["com.example.app:/callback"]
    )
    oauth = provider.relying_party(app, redirect_uri="com.example.app:/callback")
    url, verifier, nonce = provider.start_signin(oauth)
    browser = provider.browser()
    consent = browser.sign_in(browser.walk(url), "ana.perez")
    assert "com.example.app:" in consent.headers["Content-Security-Policy"]

    answer = browser.submit(consent, {"decision": "allow"})
    callback = answer.headers["Location"]
    assert callback.startswith("com.example.app:/callback?")
    token = oauth.fetch_token(
        provider.metadata()["token_endpoint"],
        authorization_response=callback,
        code_verifier=verifier,
    )
    provider.validate_id_token(token["id_token"], app, nonce)


def test_only_public_clients_may_register_a_private_use_scheme(provider):
    with provider.session_factory() as session:
        for uri in ("com.example.app:/callback", "javascript:/alert", "myapp:/cb"):
            with pytest.raises(ClientError):
                add_client(session, f"c-{uri}", portal="patient", redirect_uris=[uri])
        for uri in ("javascript:/alert", "myapp:/cb", "com.example.app://x#f"):
            with pytest.raises(ClientError):
                add_client(session, f"p-{uri}", portal="patient", redirect_uris=[uri], public=True)


# --- 8. nothing expired is accepted ---------------------------------------------------------


def test_an_expired_refresh_token_is_refused(provider):
    provider.add_user()
    client = provider.add_client()
    signin = provider.sign_in(client)
    with provider.session_factory() as session:
        session.execute(update(OidcRefreshToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()

    with pytest.raises(OAuthError) as refused:
        signin.oauth.refresh_token(
            provider.metadata()["token_endpoint"], refresh_token=signin.token["refresh_token"]
        )
    assert refused.value.error == "invalid_grant"


def test_an_access_token_whose_row_expired_is_refused_at_userinfo(provider):
    provider.add_user()
    client = provider.add_client()
    signin = provider.sign_in(client)
    userinfo = provider.metadata()["userinfo_endpoint"]
    assert signin.oauth.get(userinfo).status_code == 200
    with provider.session_factory() as session:
        session.execute(update(OidcAccessToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()

    assert signin.oauth.get(userinfo).status_code == 401


def test_an_access_token_signed_with_a_past_exp_is_refused_at_userinfo(provider):
    """The provider's own key signs two tokens alike but for `exp`: only the live one is read."""
    provider.add_user()
    client = provider.add_client()
    provider.sign_in(client)
    now = int(time.time())
    with provider.session_factory() as session:
        grant = session.scalar(select(OidcGrant))
        key = signing_key(session, sealing_keys(provider.app.config["SETTINGS"]))

        def minted(jti: str, exp: int) -> str:
            session.add(
                OidcAccessToken(
                    jti=jti, grant_id=grant.id, expires_at=utcnow() + timedelta(minutes=5)
                )
            )
            session.commit()
            claims = {
                "iss": provider.issuer(),
                "sub": "x",
                "aud": client.client_id,
                "client_id": client.client_id,
                "scope": grant.scope,
                "iat": now - 600,
                "exp": exp,
                "jti": jti,
            }
            return sign(key, claims, typ="at+jwt")

        expired, live = minted("expired-jti", now - 300), minted("live-jti", now + 300)

    def userinfo(token: str) -> int:
        return requests.get(
            provider.metadata()["userinfo_endpoint"],
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        ).status_code

    assert (userinfo(expired), userinfo(live)) == (401, 200)


@pytest.mark.dialects
def test_migrate_makes_the_first_signing_key_of_each_algorithm(
    database_url, session_factory, monkeypatch, capsys
):
    monkeypatch.setenv("ACCESO_DATABASE_URL", database_url)
    monkeypatch.setenv("ACCESO_CODEC_KEYS", TEST_CODEC_KEYS)

    assert main(["migrate"]) == 0
    assert main(["migrate"]) == 0

    with session_factory() as session:
        made = session.scalars(select(OidcSigningKey)).all()
    assert sorted(key.alg for key in made) == ["ES256", "RS256"]
    shown = capsys.readouterr().out
    assert all(shown.count(key.kid) == 1 for key in made)
