"""The schema comes only from Alembic: one line of history, and models that match it."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.script import ScriptDirectory

from portal.db import alembic_config

pytestmark = [
    pytest.mark.filterwarnings(
        # SQLite cannot reflect the lower(...) indexes, so `check` skips them; the case-insensitive
        # unique username is proven by behaviour instead (tests/test_patient_portal.py, test_postgres).
        "ignore:autogenerate skipping metadata-specified expression-based index",
        "ignore:Skipped unsupported reflection of expression-based index",
    ),
    pytest.mark.dialects,
]


def test_history_has_a_single_head(database_url):
    script = ScriptDirectory.from_config(alembic_config(database_url))
    assert len(script.get_heads()) == 1


def test_models_match_the_migrated_schema(database_url):
    command.check(alembic_config(database_url))


def test_patient_accounts_made_before_0018_take_their_address_only_record(database_url):
    """An address with one record links its older account; an address shared by two records is
    left for the help desk; 0018 also goes back down cleanly."""
    import sqlalchemy as sa

    config = alembic_config(database_url)
    command.downgrade(config, "0015")
    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        for number, name, email in (
            ("HC-1", "Ana Pérez", "ana@example.org"),
            ("HC-2", "Luis Gómez", "familia@example.org"),
            ("HC-3", "Carmen Gómez", "familia@example.org"),
        ):
            connection.execute(
                sa.text(
                    "INSERT INTO clinical_records (portal, record_number, full_name, email) "
                    "VALUES ('patient', :n, :name, :email)"
                ),
                {"n": number, "name": name, "email": email},
            )
        for username, email in (
            ("ana.perez", "ANA@example.org"),
            ("luis.g", "familia@example.org"),
        ):
            connection.execute(
                sa.text(
                    "INSERT INTO users (portal, username, email, full_name, first_name, last_name,"
                    " phone, locale, password_hash, status, role, must_change_password,"
                    " created_at) VALUES ('patient', :u, :e, '', '', '', '', 'es', 'x',"
                    " 'active', 'patient', false, CURRENT_TIMESTAMP)"
                ),
                {"u": username, "e": email},
            )
    command.upgrade(config, "head")
    with engine.connect() as connection:
        linked = dict(
            connection.execute(
                sa.text(
                    "SELECT u.username, r.record_number FROM users u LEFT JOIN clinical_records r"
                    " ON r.id = u.clinical_record_id"
                )
            ).all()
        )
    assert linked == {"ana.perez": "HC-1", "luis.g": None}
    command.downgrade(config, "0015")
    command.upgrade(config, "head")
    engine.dispose()
