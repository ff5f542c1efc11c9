"""The schema comes only from Alembic: one line of history, and models that match it."""

from __future__ import annotations

from alembic import command
from alembic.script import ScriptDirectory

from portal.db import alembic_config


def test_history_has_a_single_head(database_url):
    script = ScriptDirectory.from_config(alembic_config(database_url))
    assert len(script.get_heads()) == 1


def test_models_match_the_migrated_schema(database_url):
    command.check(alembic_config(database_url))
