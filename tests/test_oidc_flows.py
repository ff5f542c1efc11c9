"""An application signs people in with Acceso over real HTTP, with Authlib's OAuth 2.0 client:
discovery, the code flow with PKCE, ID tokens checked against JWKS, userinfo, refresh rotation,
revocation and key rotation."""

from __future__ import annotations

import pytest
import requests
from authlib.integrations.base_client.errors import OAuthError
from joserfc.errors import JoseError
from sqlalchemy import select

from cli import main
from portal.models import OidcGrant, OidcSubject, User
from tests.fixtures.codec import TEST_CODEC_KEYS

pytestmark = pytest.mark.dialects


def test_each_portal_publishes_its_own_issuer_and_endpoints(provider):
    for portal in ("patient", "member", "provider"):
        meta = provider.metadata(portal)
        issuer = provider.issuer(portal)
        assert meta["issuer"] == issuer
        for endpoint in ("authorization", "token", "userinfo", "revocation", "end_session"):
            assert meta[f"{endpoint}_endpoint"].startswith(f"{issuer}/")
        assert meta["code_challenge_methods_supported"] == ["S256"]
        assert meta["id_token_signing_alg_values_supported"] == ["ES256", "RS256"]
    assert "office_identifiers" in provider.metadata("provider")["scopes_supported"]
    assert "member_id" not in provider.metadata("patient")["scopes_supported"]
    assert (
        requests.get(
            f"{provider.base_url}/nowhere/.well-known/openid-configuration", timeout=5
        ).status_code
        == 404
    )


def test_code_flow_with_pkce_gives_an_id_token_valid_against_jwks(provider):
    provider.add_user()
    client = provider.add_client()

    signin = provider.sign_in(client)

    decoded = provider.validate_id_token(signin.token["id_token"], client, signin.nonce)
    claims = decoded.claims
    assert decoded.header["kid"] in {
        k["kid"] for k in requests.get(provider.metadata()["jwks_uri"], timeout=5).json()["keys"]
    }
    assert claims["preferred_username"] == "ana.perez"
    assert claims["email"] == "ana.perez@example.org" and claims["email_verified"] is True
    with provider.session_factory() as session:
        user = session.scalar(select(User).where(User.username == "ana.perez"))
        subject = session.get(OidcSubject, user.id).subject
    assert claims["sub"] == subject
    assert claims["sub"] not in (str(user.id), user.username)
    assert signin.token["token_type"].lower() == "bearer" and signin.token["expires_in"] == 300


def test_id_token_with_another_nonce_or_audience_is_rejected_by_the_client(provider):
    provider.add_user()
    client = provider.add_client()
    other = provider.add_client("other")
    signin = provider.sign_in(client)
    with pytest.raises(JoseError):
        provider.validate_id_token(signin.token["id_token"], client, "not-the-nonce")
    with pytest.raises(JoseError):
        provider.validate_id_token(signin.token["id_token"], other, signin.nonce)


def test_userinfo_releases_only_the_claims_of_the_granted_scopes(provider):
    provider.add_user()
    client = provider.add_client()

    signin = provider.sign_in(client, scope="openid email")
    info = signin.oauth.get(provider.metadata()["userinfo_endpoint"]).json()

    assert set(info) == {"sub", "email", "email_verified"}

    signin = provider.sign_in(client, scope="openid profile roles")
    info = signin.oauth.get(provider.metadata()["userinfo_endpoint"]).json()
    assert set(info) == {"sub", "preferred_username", "name", "locale", "portal", "roles"}
    assert (info["portal"], info["roles"], info["name"]) == ("patient", ["patient"], "Ana Pérez")


def test_provider_office_claims_and_identifiers_only_in_their_scopes(provider):
    provider.add_user("rosa", portal="provider", role="provider_primary", office="Clínica Sur")
    client = provider.add_client("claims", portal="provider")

    plain = provider.sign_in(client, username="rosa", portal="provider", scope="openid office")
    office = plain.oauth.get(provider.metadata("provider")["userinfo_endpoint"]).json()["office"]
    assert office == {"name": "Clínica Sur", "relationship": "primary_registrant"}

    full = provider.sign_in(
        client, username="rosa", portal="provider", scope="openid office office_identifiers"
    )
    office = full.oauth.get(provider.metadata("provider")["userinfo_endpoint"]).json()["office"]
    assert (office["npi"], office["tax_id"]) == ("1234567893", "123456789")


def test_member_client_id_only_in_its_scope(provider):
    provider.add_user("memo", portal="member", role="member", client_id="M123456")
    client = provider.add_client("benefits", portal="member")
    userinfo = provider.metadata("member")["userinfo_endpoint"]

    plain = provider.sign_in(client, username="memo", portal="member", scope="openid profile")
    assert "member_client_id" not in plain.oauth.get(userinfo).json()
    scoped = provider.sign_in(client, username="memo", portal="member", scope="openid member_id")
    assert scoped.oauth.get(userinfo).json()["member_client_id"] == "M123456"


def test_refresh_rotates_and_reusing_an_old_refresh_token_revokes_the_family(provider):
    provider.add_user()
    client = provider.add_client()
    signin = provider.sign_in(client)
    token_url = provider.metadata()["token_endpoint"]
    first_refresh = signin.token["refresh_token"]

    rotated = signin.oauth.refresh_token(token_url, refresh_token=first_refresh)
    assert rotated["refresh_token"] != first_refresh
    assert signin.oauth.get(provider.metadata()["userinfo_endpoint"]).status_code == 200

    with pytest.raises(OAuthError) as reused:
        signin.oauth.refresh_token(token_url, refresh_token=first_refresh)
    assert reused.value.error == "invalid_grant"

    with pytest.raises(OAuthError):
        signin.oauth.refresh_token(token_url, refresh_token=rotated["refresh_token"])
    assert signin.oauth.get(provider.metadata()["userinfo_endpoint"]).status_code == 401


def test_revoking_a_refresh_token_ends_its_access_tokens_too(provider):
    provider.add_user()
    client = provider.add_client()
    signin = provider.sign_in(client)
    meta = provider.metadata()

    answer = signin.oauth.revoke_token(
        meta["revocation_endpoint"], signin.token["refresh_token"], token_type_hint="refresh_token"
    )

    assert answer.status_code == 200
    assert signin.oauth.get(meta["userinfo_endpoint"]).status_code == 401
    with pytest.raises(OAuthError):
        signin.oauth.refresh_token(
            meta["token_endpoint"], refresh_token=signin.token["refresh_token"]
        )


def test_revoking_an_access_token_leaves_the_refresh_token(provider):
    provider.add_user()
    client = provider.add_client()
    signin = provider.sign_in(client)
    meta = provider.metadata()

    signin.oauth.revoke_token(meta["revocation_endpoint"], signin.token["access_token"])

    assert signin.oauth.get(meta["userinfo_endpoint"]).status_code == 401
    fresh = signin.oauth.refresh_token(
        meta["token_endpoint"], refresh_token=signin.token["refresh_token"]
    )
    assert signin.oauth.get(meta["userinfo_endpoint"]).status_code == 200
    assert fresh["access_token"] != signin.token["access_token"]


def test_public_client_signs_in_with_pkce_and_no_secret(provider):
    provider.add_user()
    client = provider.add_client("spa", public=True)
    assert client.client_secret is None

    signin = provider.sign_in(client)

    provider.validate_id_token(signin.token["id_token"], client, signin.nonce)


def test_key_rotation_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_key(
    provider, database_url, monkeypatch
):
    provider.add_user()
    client = provider.add_client()
    before = provider.sign_in(client)
    old_kid = provider.validate_id_token(before.token["id_token"], client, before.nonce).header[
        "kid"
    ]

    monkeypatch.setenv("ACCESO_DATABASE_URL", database_url)
    monkeypatch.setenv("ACCESO_CODEC_KEYS", TEST_CODEC_KEYS)
    assert main(["keys", "rotate"]) == 0

    published = {
        k["kid"] for k in requests.get(provider.metadata()["jwks_uri"], timeout=5).json()["keys"]
    }
    assert old_kid in published
    provider.validate_id_token(before.token["id_token"], client, before.nonce)
    assert before.oauth.get(provider.metadata()["userinfo_endpoint"]).status_code == 200

    after = provider.sign_in(client)
    new_kid = provider.validate_id_token(after.token["id_token"], client, after.nonce).header["kid"]
    assert new_kid != old_kid and new_kid in published


def test_confidential_client_may_authenticate_with_client_secret_post(provider):
    provider.add_user()
    client = provider.add_client()
    browser = provider.browser()
    oauth = provider.relying_party(client, auth_method="client_secret_post")
    url, verifier, _ = provider.start_signin(oauth)
    callback = browser.sign_in(browser.walk(url), "ana.perez").headers["Location"]

    token = oauth.fetch_token(
        provider.metadata()["token_endpoint"],
        authorization_response=callback,
        code_verifier=verifier,
    )

    assert token["access_token"]
    with provider.session_factory() as session:
        assert session.scalar(select(OidcGrant)).scope == "openid profile email"
