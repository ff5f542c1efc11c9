"""Authenticator secrets are sealed at rest with the payload-encryption keys: a database dump
alone cannot mint codes, a rotated key keeps old secrets working (and re-seals them on use), and
the migration seals the secrets stored in plain text before it."""

from __future__ import annotations

from dataclasses import replace

import pyotp
import pytest
from alembic import command
from sqlalchemy import create_engine, select, text

from portal.codec import new_key_spec, parse_keys
from portal.db import alembic_config, migrate
from portal.models import SecondFactor
from tests.fixtures.codec import TEST_CODEC_KEYS, plain_secret
from tests.fixtures.processes import free_port
from tests.fixtures.second_factor import key_on
from tests.fixtures.stack import submit
from tests.fixtures.staff import add_staff, sign_in_staff
from web import create_app

PASSWORD = "Clave123segura"


def web_app(settings, **changes):
    """The web tier alone: sign-in never needs Temporal."""
    settings = replace(settings, temporal_address=f"127.0.0.1:{free_port()}", **changes)
    return create_app({"SETTINGS": settings, "TESTING": True})


def stored_secret(session_factory) -> str:
    with session_factory() as session:
        return session.scalar(select(SecondFactor.secret))


def test_an_enrolled_secret_is_stored_sealed_with_the_current_key_id(settings, session_factory):
    app = web_app(settings)
    add_staff(session_factory, "lucia", PASSWORD, enrolled=False)
    client = app.test_client()
    submit(client, "/staff/login", {"username": "lucia", "password": PASSWORD})
    key = key_on(client.get("/staff/login/enrol").get_data(as_text=True))
    answer = submit(client, "/staff/login/enrol", {"code": pyotp.TOTP(key).now()})
    assert answer.status_code == 200
    stored = stored_secret(session_factory)
    assert stored.startswith("test1:")
    assert key not in stored
    assert plain_secret(stored) == key
    app.extensions["acceso.temporal"].close()


def test_a_secret_sealed_with_a_retired_key_still_signs_in_and_is_sealed_again(
    settings, session_factory
):
    add_staff(session_factory, "lucia", PASSWORD)
    assert stored_secret(session_factory).startswith("test1:")
    app = web_app(settings, codec_keys=f"{new_key_spec('k2')},{TEST_CODEC_KEYS}")
    answer = sign_in_staff(app.test_client(), session_factory, "lucia", PASSWORD)
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/staff/")
    assert stored_secret(session_factory).startswith("k2:")
    app.extensions["acceso.temporal"].close()


def test_keys_reseal_moves_every_secret_to_the_new_key(database_url, session_factory, monkeypatch):
    from cli import main

    add_staff(session_factory, "lucia", PASSWORD)
    monkeypatch.setenv("ACCESO_DATABASE_URL", database_url)
    monkeypatch.setenv("ACCESO_CODEC_KEYS", f"{new_key_spec('k2')},{TEST_CODEC_KEYS}")
    assert main(["keys", "reseal"]) == 0
    stored = stored_secret(session_factory)
    assert stored.startswith("k2:")
    monkeypatch.setenv("ACCESO_CODEC_KEYS", TEST_CODEC_KEYS)
    assert main(["keys", "reseal"]) == 1, "the old key alone cannot open what the new one sealed"


def plain_secret_before_sealing(database_url: str):
    """The schema as it was before sealing, with one staff secret stored in plain text."""
    command.downgrade(alembic_config(database_url), "0018")
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO staff_users (username, full_name, password_hash, roles, portals,"
                " active, email, created_at) VALUES ('lucia', 'Lucía', '', 'admin', '', true,"
                " '', CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO second_factors (staff_id, secret, last_step, created_at)"
                " SELECT id, 'JBSWY3DPEHPK3PXP', 0, CURRENT_TIMESTAMP FROM staff_users"
            )
        )
    return engine


@pytest.mark.dialects
def test_the_migration_seals_secrets_stored_in_plain_text(database_url, monkeypatch):
    monkeypatch.setenv("ACCESO_CODEC_KEYS", TEST_CODEC_KEYS)
    config = alembic_config(database_url)
    engine = plain_secret_before_sealing(database_url)
    command.upgrade(config, "head")
    with engine.connect() as connection:
        stored = connection.scalar(text("SELECT secret FROM second_factors"))
    engine.dispose()
    assert stored.startswith("test1:")
    assert plain_secret(stored) == "JBSWY3DPEHPK3PXP"


def test_acceso_dev_seals_with_the_key_it_passes_to_the_migration(database_url, monkeypatch):
    monkeypatch.delenv("ACCESO_CODEC_KEYS", raising=False)
    engine = plain_secret_before_sealing(database_url)
    migrate(database_url, parse_keys(TEST_CODEC_KEYS))
    with engine.connect() as connection:
        stored = connection.scalar(text("SELECT secret FROM second_factors"))
    engine.dispose()
    assert plain_secret(stored) == "JBSWY3DPEHPK3PXP"
