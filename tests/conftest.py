"""Fixtures every test may use; each kind of real part lives in its own module under fixtures/."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("ACCESO_ARGON2_TIME_COST", "1")
os.environ.setdefault("ACCESO_ARGON2_MEMORY_KIB", "8192")

from portal.settings import Settings  # noqa: E402

pytest_plugins = [
    "tests.fixtures.codec",
    "tests.fixtures.database",
    "tests.fixtures.smtp",
    "tests.fixtures.temporal",
    "tests.fixtures.stack",
    "tests.fixtures.patients",
    "tests.fixtures.postgres",
    "tests.fixtures.processes",
    "tests.fixtures.oidc",
    "tests.fixtures.apps",
]


@pytest.fixture
def settings(tmp_path, database_url, smtp_server, task_queue) -> Settings:
    """Settings for one test: its own data dir, database, task queue and secret (so IDs derived
    from it never join another test's processes), and the loopback SMTP sink."""
    from tests.fixtures.codec import TEST_CODEC_KEYS

    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        smtp_host="127.0.0.1",
        smtp_port=smtp_server.port,
        task_queue=task_queue,
        secret_key=f"test-secret-{task_queue}",
        public_base_url="http://acceso.test",
        dev_mode=False,
        codec_keys=TEST_CODEC_KEYS,
        # The tests' privacy-policy pages listen on loopback; the refusal that holds in
        # production is proven with this off in tests/test_app_registration_workflow.py.
        app_check_private_urls=True,
    )


def pytest_collection_modifyitems(config, items):
    """Browser walks and the fault suite are system tests too: `-m "not system"` is the fast
    tier a developer runs between edits, `make test` runs both tiers."""
    for item in items:
        if item.get_closest_marker("browser") or item.get_closest_marker("faults"):
            item.add_marker(pytest.mark.system)
