"""The worker's workflow cache is bounded by a setting: a waiting registration pushed out of it
costs no memory, and finishes as usual when its link is clicked (its history is replayed)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from portal.models import ClinicalRecord
from portal.settings import load_settings
from tests.fixtures.codec import TEST_CODEC_KEYS
from tests.fixtures.patients import confirm_by_email, register
from worker import build_worker

APPLICANTS = 5
CACHE = 2


def test_the_cache_size_comes_from_the_environment(
    monkeypatch, tmp_path, dev_server, background_loop
):
    monkeypatch.setenv("ACCESO_WORKER_MAX_CACHED_WORKFLOWS", "7")
    monkeypatch.setenv("ACCESO_CODEC_KEYS", TEST_CODEC_KEYS)
    monkeypatch.setenv("ACCESO_DATA_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.worker_max_cached_workflows == 7

    async def build():
        return build_worker(dev_server.client, settings, session_factory=None)

    worker = background_loop.run(build())
    assert worker.config()["max_cached_workflows"] == 7


def test_the_default_cache_is_bounded_well_below_the_sdks_thousand(monkeypatch):
    monkeypatch.delenv("ACCESO_WORKER_MAX_CACHED_WORKFLOWS", raising=False)
    assert 2 <= load_settings().worker_max_cached_workflows <= 500


@pytest.fixture
def settings(settings):
    """A cache smaller than the number of registrations waiting at once."""
    return replace(settings, worker_max_cached_workflows=CACHE)


def test_registrations_evicted_from_a_small_cache_finish_on_their_click(stack):
    with stack.session_factory() as session:
        session.add_all(
            ClinicalRecord(
                portal="patient",
                record_number=f"HC-{n}",
                full_name=f"Paciente Número {n}",
                email=f"paciente{n}@example.org",
            )
            for n in range(APPLICANTS)
        )
        session.commit()
    for n in range(APPLICANTS):
        assert (
            register(
                stack.new_client(),
                email=f"paciente{n}@example.org",
                username=f"paciente{n}",
                full_name=f"Paciente Número {n}",
            ).status_code
            == 302
        )
    for n in range(APPLICANTS):
        stack.mailbox.wait_for(f"paciente{n}@example.org", "Confirme")
    for n in range(APPLICANTS):
        confirm_by_email(stack, to=f"paciente{n}@example.org")
        stack.mailbox.wait_for(f"paciente{n}@example.org", "Usuario confirmado")
    assert len(stack.mailbox.messages) == 2 * APPLICANTS
