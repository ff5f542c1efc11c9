"""Tokens are signed and checked with `cryptography` directly (the token endpoint's hot path):
what any JOSE library accepts, and nothing a forger could slip past a generic library's checks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from joserfc import jwt

from portal.oidc import SigningAlg, decode, ensure_signing_keys, sealing_keys, sign, signing_key


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def with_header(token: str, **header) -> str:
    _, payload, signature = token.split(".")
    return f"{b64(json.dumps(header).encode())}.{payload}.{signature}"


@pytest.fixture
def keyed(settings, session_factory):
    """A session on a database whose signing keys exist, and the sealing keys to read them."""
    keys = sealing_keys(settings)
    with session_factory() as session:
        ensure_signing_keys(session, keys)
        yield session, keys


@pytest.mark.parametrize("alg", list(SigningAlg))
def test_a_signed_token_verifies_with_a_jose_library_and_with_the_provider(keyed, alg):
    session, keys = keyed
    key = signing_key(session, keys, alg)
    token = sign(key, {"sub": "abc", "name": "Ñandú"}, typ="at+jwt")

    checked = jwt.decode(token, key, algorithms=[alg])
    header, claims = decode(session, token)

    assert checked.header == header == {"alg": alg, "kid": key.kid, "typ": "at+jwt"}
    assert checked.claims == claims == {"sub": "abc", "name": "Ñandú"}


def test_a_token_a_jose_library_signed_with_a_published_key_verifies(keyed):
    session, keys = keyed
    key = signing_key(session, keys, SigningAlg.ES256)
    token = jwt.encode({"alg": "ES256", "kid": key.kid}, {"sub": "abc"}, key)

    assert decode(session, token)[1] == {"sub": "abc"}


def test_a_changed_payload_or_signature_verifies_nothing(keyed):
    session, keys = keyed
    token = sign(signing_key(session, keys, SigningAlg.ES256), {"sub": "abc"})
    header, _, signature = token.split(".")
    other = b64(json.dumps({"sub": "someone-else"}).encode())

    assert decode(session, f"{header}.{other}.{signature}") is None
    assert decode(session, f"{token[:-4]}AAAA") is None
    assert decode(session, f"{token}AA") is None
    assert decode(session, f"{header}.{other}.") is None


def test_the_algorithm_is_the_keys_never_the_headers(keyed):
    session, keys = keyed
    key = signing_key(session, keys, SigningAlg.ES256)
    token = sign(key, {"sub": "abc"})
    signing_input = with_header(token, alg="HS256", kid=key.kid).rsplit(".", 1)[0]
    mac = hmac.new(key.as_pem(private=False), signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{b64(mac)}"
    unsigned = with_header(token, alg="none", kid=key.kid).rsplit(".", 1)[0] + "."

    assert decode(session, forged) is None
    assert decode(session, unsigned) is None
    assert decode(session, with_header(token, alg="RS256", kid=key.kid)) is None


def test_a_header_the_provider_does_not_understand_or_cannot_read_is_refused(keyed):
    session, keys = keyed
    key = signing_key(session, keys, SigningAlg.ES256)
    token = sign(key, {"sub": "abc"})

    assert decode(session, with_header(token, alg="ES256", kid=key.kid, crit=["exp"])) is None
    assert decode(session, with_header(token, alg="ES256", kid="unknown")) is None
    assert decode(session, "not.a.token") is None
    assert decode(session, "a+b.c/d.e=f") is None
    assert decode(session, token.replace(".", "..", 1)) is None
