"""Discovery and JWKS are read by every relying party before every sign-in: they may be cached
publicly and revalidated with a 304, and a rotated key is never hidden behind an old ETag. The
provider caches its own published keys to check tokens, and a new key is never missed."""

from __future__ import annotations

import pytest
import requests
from sqlalchemy import delete, update

from portal import oidc
from portal.models import OidcSigningKey, utcnow
from portal.oidc import RETIRED_KEY_PUBLISHED, rotate_keys, sealing_keys

CACHED = (
    ("/.well-known/openid-configuration", 3600),
    ("/.well-known/smart-configuration", 3600),
    ("/jwks", 300),
)


@pytest.mark.parametrize(("path", "max_age"), CACHED)
def test_discovery_and_keys_are_publicly_cacheable_and_revalidate_with_a_304(
    provider, path, max_age
):
    url = f"{provider.issuer()}{path}"
    first = requests.get(url, timeout=5)
    assert first.status_code == 200
    assert first.headers["Cache-Control"] == f"public, max-age={max_age}"
    etag = first.headers["ETag"]

    again = requests.get(url, headers={"If-None-Match": etag}, timeout=5)
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["ETag"] == etag

    stale = requests.get(url, headers={"If-None-Match": '"something-else"'}, timeout=5)
    assert stale.status_code == 200
    assert stale.json() == first.json()


def test_a_rotated_key_changes_the_jwks_etag(provider):
    url = f"{provider.issuer()}/jwks"
    before = requests.get(url, timeout=5)
    with provider.session_factory() as session:
        made = rotate_keys(session, sealing_keys(provider.app.config["SETTINGS"]))
        session.commit()
        new_kids = {key.kid for key in made}

    after = requests.get(url, headers={"If-None-Match": before.headers["ETag"]}, timeout=5)
    assert after.status_code == 200
    assert after.headers["ETag"] != before.headers["ETag"]
    assert new_kids <= {key["kid"] for key in after.json()["keys"]}


def test_each_portal_has_its_own_discovery_etag(provider):
    discovery = "/.well-known/openid-configuration"
    patient = requests.get(f"{provider.issuer('patient')}{discovery}", timeout=5)
    member = requests.get(
        f"{provider.issuer('member')}{discovery}",
        headers={"If-None-Match": patient.headers["ETag"]},
        timeout=5,
    )
    assert member.status_code == 200
    assert member.json()["issuer"].endswith("/member")


def userinfo(provider, access_token: str) -> int:
    return requests.get(
        provider.metadata()["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=5,
    ).status_code


def test_a_token_signed_with_a_key_made_after_the_keys_were_read_is_accepted_at_once(provider):
    provider.add_user()
    client = provider.add_client()
    before = provider.sign_in(client)
    assert userinfo(provider, before.token["access_token"]) == 200

    with provider.session_factory() as session:
        rotate_keys(session, sealing_keys(provider.app.config["SETTINGS"]))
        session.commit()
    after = provider.sign_in(client)

    assert userinfo(provider, after.token["access_token"]) == 200
    assert userinfo(provider, before.token["access_token"]) == 200


def test_a_key_retired_past_its_hour_verifies_nothing_once_the_keys_are_read_again(
    provider, monkeypatch
):
    provider.add_user()
    client = provider.add_client()
    signin = provider.sign_in(client)
    assert userinfo(provider, signin.token["access_token"]) == 200

    with provider.session_factory() as session:
        session.execute(
            update(OidcSigningKey).values(retired_at=utcnow() - RETIRED_KEY_PUBLISHED * 2)
        )
        session.commit()
    monkeypatch.setattr(oidc, "VERIFYING_KEYS_SECONDS", 0.0)

    assert userinfo(provider, signin.token["access_token"]) == 401


def test_the_token_endpoint_makes_a_signing_key_when_none_is_left(provider):
    provider.add_user()
    rs256 = provider.add_client("rsa-app", signing_alg="RS256")
    with provider.session_factory() as session:
        session.execute(delete(OidcSigningKey))
        session.commit()

    signin = provider.sign_in(rs256)

    provider.validate_id_token(signin.token["id_token"], rs256, signin.nonce, alg="RS256")
    assert userinfo(provider, signin.token["access_token"]) == 200
