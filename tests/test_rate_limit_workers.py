"""The per-client limit is one limit under gunicorn: `acceso web` with two worker processes, the
client's sign-in attempts land on both, and the count they share stops it at exactly the limit."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.fixtures.codec import TEST_CODEC_KEYS
from tests.fixtures.processes import free_port, python_command
from tests.fixtures.waiting import wait_until

pytestmark = [pytest.mark.dialects, pytest.mark.system]

LIMIT = 12
STARTUP_SECONDS = 60


def attempt(base: str, n: int) -> int:
    """One browser-like try from a fresh connection: fetch the form, post a wrong password."""
    with requests.Session() as browser:
        page = browser.get(f"{base}/patient/login", timeout=30).text
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        answer = browser.post(
            f"{base}/patient/login",
            data={"csrf_token": token, "username": f"guess{n}", "password": "nope"},
            timeout=30,
        )
        return answer.status_code


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_the_sign_in_limit_holds_across_two_gunicorn_workers(tmp_path, database_url, spawn):
    port = free_port()
    process, output = spawn(
        python_command("web", "--host", "127.0.0.1", "--port", str(port)),
        env={
            "ACCESO_DATA_DIR": str(tmp_path),
            "ACCESO_DATABASE_URL": database_url,
            "ACCESO_SECRET_KEY": "two-workers-test-secret-key-of-32-chars",
            "ACCESO_CODEC_KEYS": TEST_CODEC_KEYS,
            "ACCESO_ALLOW_HTTP": "1",
            "ACCESO_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
            "ACCESO_WEB_WORKERS": "2",
            "ACCESO_RATE_LIMIT_SIGN_IN": f"{LIMIT}/hour",
            "GUNICORN_CMD_ARGS": "--access-logformat 'served-by %(p)s %(m)s %(U)s %(s)s'",
        },
    )
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: answers(f"{base}/patient/login"), STARTUP_SECONDS, "gunicorn to answer")

    def post_lines() -> list[tuple[str, str]]:
        return re.findall(r"served-by <(\d+)> POST /patient/login (\d{3})", output.text)

    codes: list[int] = []
    with ThreadPoolExecutor(max_workers=6) as pool:
        for round_start in range(0, 240, 24):
            codes += pool.map(lambda n: attempt(base, n), range(round_start, round_start + 24))
            logged = len(codes)
            wait_until(lambda n=logged: len(post_lines()) == n, 30, "the access log lines")
            if len({pid for pid, _ in post_lines()}) == 2:
                break

    served = post_lines()
    assert len({pid for pid, _ in served}) == 2, "both workers answered sign-in attempts"
    assert codes.count(200) == LIMIT, "per-process counters would have let more through"
    assert set(codes) == {200, 429}
    process.terminate()
    process.wait(15)
