"""Production refuses to start unsafe: each missing or weak setting stops web and worker with
one line naming what to set; dev mode is exempt."""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace

import pytest

from cli.staff import ensure_staff
from portal.safety import DEMO_STAFF, UnsafeStart, check_database, check_settings
from portal.settings import Settings
from tests.fixtures.codec import TEST_CODEC_KEYS
from tests.fixtures.processes import PROJECT_ROOT, python_command

SAFE = Settings(
    secret_key="k" * 48,
    codec_keys=TEST_CODEC_KEYS,
    public_base_url="https://acceso.example.org",
    dev_mode=False,
)


def test_safe_production_settings_start():
    check_settings(SAFE)


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"secret_key": ""}, "ACCESO_SECRET_KEY is not set"),
        ({"secret_key": "short-secret"}, "ACCESO_SECRET_KEY is 12 characters"),
        ({"codec_keys": ""}, "ACCESO_CODEC_KEYS is not set"),
        ({"codec_keys": "k1:not base64"}, "ACCESO_CODEC_KEYS is malformed"),
        ({"public_base_url": "http://acceso.example.org"}, "ACCESO_PUBLIC_BASE_URL is"),
    ],
)
def test_each_unsafe_setting_is_refused_with_what_to_set(change, names):
    with pytest.raises(UnsafeStart) as refused:
        check_settings(replace(SAFE, **change))
    assert str(refused.value).startswith(names)
    assert "\n" not in str(refused.value)


def test_plain_http_is_allowed_only_when_said_so():
    check_settings(replace(SAFE, public_base_url="http://10.0.0.5:5000", allow_http=True))


def test_dev_mode_starts_without_any_of_them():
    check_settings(
        Settings(dev_mode=True, secret_key="", codec_keys="", public_base_url="http://x")
    )


def test_the_demo_staff_account_stops_production(session_factory):
    check_database(SAFE, session_factory)
    ensure_staff(session_factory, DEMO_STAFF, ["admin"], "Demo-password-123")
    with pytest.raises(UnsafeStart, match="demo staff account 'demo-admin'"):
        check_database(SAFE, session_factory)
    check_database(replace(SAFE, dev_mode=True), session_factory)


@pytest.mark.parametrize("command", ["web", "worker"])
def test_web_and_worker_exit_with_one_line_naming_the_setting(command, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCESO_")}
    env.update(
        ACCESO_DATA_DIR=str(tmp_path),
        ACCESO_SECRET_KEY="k" * 48,
        ACCESO_PUBLIC_BASE_URL="https://acceso.example.org",
    )
    result = subprocess.run(
        python_command(command, *(["--port", "1"] if command == "web" else [])),
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"acceso {command}: refusing to start: ACCESO_CODEC_KEYS is not set")


def test_a_database_holding_the_demo_login_stops_the_worker(
    tmp_path, database_url, session_factory
):
    ensure_staff(session_factory, DEMO_STAFF, ["admin"], "Demo-password-123")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCESO_")}
    env.update(
        ACCESO_DATA_DIR=str(tmp_path),
        ACCESO_DATABASE_URL=database_url,
        ACCESO_SECRET_KEY="k" * 48,
        ACCESO_CODEC_KEYS=TEST_CODEC_KEYS,
        ACCESO_PUBLIC_BASE_URL="https://acceso.example.org",
    )
    result = subprocess.run(
        python_command("worker"),
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "acceso worker: refusing to start: the demo staff account 'demo-admin' exists in this "
        "database: delete it (its password was printed by `acceso dev`) before starting in "
        "production, or set ACCESO_DEV_MODE=1 for a development copy"
    )
