"""Discovery and JWKS are read by every relying party before every sign-in: they may be cached
publicly and revalidated with a 304, and a rotated key is never hidden behind an old ETag."""

from __future__ import annotations

import pytest
import requests

from portal.oidc import rotate_keys, sealing_keys

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
