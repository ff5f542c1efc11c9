"""Confidential clients' secrets: stored as a keyed SHA-256, checked in constant time, and an
argon2id hash from before that rewritten on its first successful use."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
import requests
from sqlalchemy import select

from portal.models import OidcClient
from portal.oidc import CLIENT_SECRET_HMAC, client_secret_matches
from portal.passwords import hash_password
from portal.server_keys import ServerKeyError, client_secret_key
from portal.settings import Settings


def introspect(provider, client_id: str, secret: str) -> requests.Response:
    """A client authentication that writes nothing else: introspecting a token that is not one."""
    return requests.post(
        f"{provider.issuer()}/introspect",
        data={"token": "not-a-token"},
        auth=(client_id, secret),
        timeout=30,
    )


def stored_hash(provider, pk: int) -> str:
    with provider.session_factory() as session:
        return session.scalar(select(OidcClient.secret_hash).where(OidcClient.id == pk))


def make_legacy(provider, pk: int, secret: str) -> str:
    """The client's secret as it was stored before keyed hashes: argon2id."""
    legacy = hash_password(secret)
    with provider.session_factory() as session:
        session.get(OidcClient, pk).secret_hash = legacy
        session.commit()
    return legacy


def test_a_new_secret_is_stored_as_a_keyed_hash_that_verifies(provider):
    client = provider.add_client("server", first_party=False)
    stored = stored_hash(provider, client.pk)
    assert stored.startswith(CLIENT_SECRET_HMAC)
    assert client.client_secret not in stored
    assert introspect(provider, client.client_id, client.client_secret).json() == {"active": False}
    with provider.session_factory() as session:
        row = session.get(OidcClient, client.pk)
        key = provider.client_secret_key
        assert client_secret_matches(session, key, row, client.client_secret)
        assert not client_secret_matches(session, b"another key" * 3, row, client.client_secret)


def test_a_wrong_secret_is_refused(provider):
    client = provider.add_client("server", first_party=False)
    refused = introspect(provider, client.client_id, client.client_secret + "x")
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    assert introspect(provider, client.client_id, "").status_code == 401
    assert introspect(provider, "unknown-client", client.client_secret).status_code == 401


def test_an_argon2_secret_is_rewritten_as_a_keyed_hash_on_first_use_and_still_works(provider):
    client = provider.add_client("server", first_party=False)
    legacy = make_legacy(provider, client.pk, client.client_secret)

    assert introspect(provider, client.client_id, client.client_secret + "x").status_code == 401
    assert stored_hash(provider, client.pk) == legacy, "a wrong secret rewrites nothing"

    assert introspect(provider, client.client_id, client.client_secret).status_code == 200
    migrated = stored_hash(provider, client.pk)
    assert migrated.startswith(CLIENT_SECRET_HMAC)
    assert introspect(provider, client.client_id, client.client_secret).status_code == 200
    assert introspect(provider, client.client_id, client.client_secret + "x").status_code == 401
    assert stored_hash(provider, client.pk) == migrated


@pytest.mark.dialects
def test_eight_concurrent_first_uses_of_an_argon2_secret_all_succeed(provider):
    client = provider.add_client("server", first_party=False)
    make_legacy(provider, client.pk, client.client_secret)

    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda _: introspect(provider, client.client_id, client.client_secret), range(8)
            )
        )

    assert [a.status_code for a in answers] == [200] * 8
    assert stored_hash(provider, client.pk).startswith(CLIENT_SECRET_HMAC)
    assert introspect(provider, client.client_id, client.client_secret).status_code == 200


def test_the_client_secret_key_follows_the_secret_key_and_can_be_pinned_before_rotating_it(
    tmp_path,
):
    old = Settings(data_dir=tmp_path, secret_key="o" * 40, dev_mode=False)
    rotated = replace(old, secret_key="n" * 40)
    pinned = replace(rotated, client_secret_key=old.secret_key)

    assert client_secret_key(old) != client_secret_key(rotated)
    assert client_secret_key(pinned) == client_secret_key(old)
    with pytest.raises(ServerKeyError, match="ACCESO_SECRET_KEY must be set"):
        client_secret_key(replace(old, secret_key=""))


def test_in_dev_mode_the_cli_and_the_web_tier_derive_one_key_from_the_data_dir(tmp_path):
    cli = Settings(data_dir=tmp_path, secret_key="", dev_mode=True)
    web = Settings(data_dir=tmp_path, secret_key="", dev_mode=True, public_base_url="http://x")

    assert client_secret_key(cli) == client_secret_key(web)
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
