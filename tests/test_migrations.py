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
