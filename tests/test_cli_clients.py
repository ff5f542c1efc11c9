"""`acceso client ...` and `acceso keys rotate`: what an administrator types to connect an app."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from cli import main
from portal.models import OidcClient, OidcSigningKey
from portal.oidc import CLIENT_SECRET_HMAC, client_secret_matches
from portal.server_keys import client_secret_key
from portal.settings import load_settings
from tests.fixtures.codec import TEST_CODEC_KEYS

SECRET_KEY = "cli-test-secret-key-of-at-least-32-characters"


@pytest.fixture(autouse=True)
def server_secret_key(monkeypatch):
    """The web tier's secret key, which client secrets' HMAC key is derived from."""
    monkeypatch.setenv("ACCESO_SECRET_KEY", SECRET_KEY)
    monkeypatch.delenv("ACCESO_CLIENT_SECRET_KEY", raising=False)


def verifies(session_factory, name: str, secret: str) -> bool:
    """Whether the web tier, with the same secret key, accepts `secret` for the client."""
    key = client_secret_key(load_settings())
    with session_factory() as session:
        row = session.scalar(select(OidcClient).where(OidcClient.name == name))
        return client_secret_matches(session, key, row, secret)


def printed(capsys) -> dict[str, str]:
    out = capsys.readouterr().out
    return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)


def client(session_factory, name):
    with session_factory() as session:
        return session.scalar(select(OidcClient).where(OidcClient.name == name))


def test_confidential_client_gets_an_id_and_a_secret_shown_once_and_stored_hashed(
    database_url, session_factory, monkeypatch, capsys
):
    monkeypatch.setenv("ACCESO_DATABASE_URL", database_url)
    code = main(
        [
            "client",
            "add",
            "claims",
            "--portal",
            "provider",
            "--redirect-uri",
            "https://claims.example.org/cb",
            "--redirect-uri",
            "https://claims.example.org/cb2",
            "--post-logout-redirect-uri",
            "https://claims.example.org/bye",
            "--backchannel-logout-uri",
            "https://claims.example.org/logout",
        ]
    )
    assert code == 0
    shown = printed(capsys)
    row = client(session_factory, "claims")
    assert row.client_id == shown["client_id"]
    assert row.secret_hash.startswith(CLIENT_SECRET_HMAC)
    assert shown["client_secret"] not in row.secret_hash
    assert verifies(session_factory, "claims", shown["client_secret"])
    assert row.redirect_uris == ["https://claims.example.org/cb", "https://claims.example.org/cb2"]
    assert row.post_logout_redirect_uris == ["https://claims.example.org/bye"]
    assert row.backchannel_logout_uri == "https://claims.example.org/logout"
    assert (row.public, row.first_party) == (False, False)


def test_public_first_party_client_has_no_secret(
    database_url, session_factory, monkeypatch, capsys
):
    monkeypatch.setenv("ACCESO_DATABASE_URL", database_url)
    args = ["client", "add", "spa", "--portal", "patient", "--public", "--first-party"]
    assert main([*args, "--redirect-uri", "http://127.0.0.1:9/cb"]) == 0
    shown = printed(capsys)
    assert "client_secret" not in shown
    row = client(session_factory, "spa")
    assert (row.public, row.first_party, row.secret_hash) == (True, True, None)


def test_list_rotate_secret_and_remove(database_url, session_factory, monkeypatch, capsys):
    monkeypatch.setenv("ACCESO_DATABASE_URL", database_url)
    main(["client", "add", "app", "--portal", "member", "--redirect-uri", "https://a.example/cb"])
    first = printed(capsys)["client_secret"]

    assert main(["client", "list"]) == 0
    listing = capsys.readouterr().out
    assert "app\tmember\t" in listing and "https://a.example/cb" in listing
    assert first not in listing

    assert main(["client", "rotate-secret", "app"]) == 0
    second = printed(capsys)["client_secret"]
    assert verifies(session_factory, "app", second)
    assert not verifies(session_factory, "app", first)

    assert main(["client", "remove", "app"]) == 0
    assert client(session_factory, "app") is None
    assert main(["client", "remove", "app"]) == 1
    assert "no client named 'app'" in capsys.readouterr().err


def test_bad_client_input_is_refused_with_a_message(database_url, monkeypatch, capsys):
    monkeypatch.setenv("ACCESO_DATABASE_URL", database_url)
    assert main(["client", "add", "x", "--portal", "nope", "--redirect-uri", "https://x/cb"]) == 1
    assert "unknown portal 'nope'" in capsys.readouterr().err
    assert main(["client", "add", "x", "--portal", "patient", "--redirect-uri", "https://x/*"]) == 1
    assert "wildcard" in capsys.readouterr().err
    assert (
        main(["client", "add", "x", "--portal", "patient", "--redirect-uri", "https://x/cb"]) == 0
    )
    assert (
        main(["client", "add", "x", "--portal", "patient", "--redirect-uri", "https://x/cb"]) == 1
    )
    assert "already exists" in capsys.readouterr().err


def test_a_confidential_client_needs_the_server_secret_key_outside_dev_mode(
    database_url, monkeypatch, capsys
):
    monkeypatch.setenv("ACCESO_DATABASE_URL", database_url)
    monkeypatch.delenv("ACCESO_SECRET_KEY")
    monkeypatch.delenv("ACCESO_DEV_MODE", raising=False)
    assert (
        main(["client", "add", "x", "--portal", "patient", "--redirect-uri", "https://x/cb"]) == 1
    )
    assert "ACCESO_SECRET_KEY must be set" in capsys.readouterr().err
    public = ["client", "add", "p", "--portal", "patient", "--public"]
    assert main([*public, "--redirect-uri", "https://x/cb"]) == 0


def test_keys_rotate_retires_the_old_keys_of_both_algorithms_but_keeps_them(
    database_url, session_factory, monkeypatch, capsys
):
    monkeypatch.setenv("ACCESO_DATABASE_URL", database_url)
    monkeypatch.setenv("ACCESO_CODEC_KEYS", TEST_CODEC_KEYS)
    assert main(["keys", "rotate"]) == 0
    assert main(["keys", "rotate"]) == 0
    with session_factory() as session:
        keys = session.scalars(select(OidcSigningKey).order_by(OidcSigningKey.created_at)).all()
    assert len(keys) == 4
    retired, live = keys[:2], keys[2:]
    assert all(k.retired_at is not None for k in retired)
    assert all(k.retired_at is None for k in live)
    assert sorted(k.alg for k in live) == ["ES256", "RS256"]
    shown = capsys.readouterr().out
    for key in live:
        assert key.kid in shown
        assert set(key.jwk) == {"public", "sealed"}
        assert not {"d", "p", "q"} & set(key.jwk["public"]) and len(key.jwk["sealed"]) > 100
    assert {k.jwk["public"]["kty"] for k in live} == {"EC", "RSA"}


def test_keys_rotate_needs_the_key_that_seals_signing_keys(database_url, monkeypatch, capsys):
    monkeypatch.setenv("ACCESO_DATABASE_URL", database_url)
    monkeypatch.delenv("ACCESO_CODEC_KEYS", raising=False)
    monkeypatch.delenv("ACCESO_DEV_MODE", raising=False)
    assert main(["keys", "rotate"]) == 1
    assert "ACCESO_CODEC_KEYS" in capsys.readouterr().err


def test_a_smart_app_is_approved_for_its_scopes_and_a_bad_one_is_refused(
    database_url, session_factory, monkeypatch, capsys
):
    monkeypatch.setenv("ACCESO_DATABASE_URL", database_url)
    add = ["client", "add", "mis-datos", "--portal", "patient", "--public"]
    add += ["--redirect-uri", "https://app.example/cb"]

    assert main([*add, "--scope", "openid fhirUser launch/patient", "--scope", "patient/*.rs"]) == 0
    assert client(session_factory, "mis-datos").approved_scopes == [
        "openid",
        "fhirUser",
        "launch/patient",
        "patient/*.rs",
    ]
    main(["client", "list"])
    assert "scopes: openid fhirUser launch/patient patient/*.rs" in capsys.readouterr().out

    add[2] = "otra"
    assert main([*add, "--scope", "patient/Observation.read"]) == 1
    assert "not a SMART v2 patient scope" in capsys.readouterr().err
    assert client(session_factory, "otra") is None
