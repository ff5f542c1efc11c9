"""Nothing is lost across a restart: a registration started before every process of `acceso dev`
stopped is confirmed after they all start again on the same data directory."""

from __future__ import annotations

import re
import signal

import pytest
import requests

from tests.fixtures.processes import free_port, python_command
from tests.fixtures.smtp import link_in
from tests.fixtures.waiting import wait_until
from tests.test_cli_dev import STARTUP_SECONDS, answers_200, clean_env

pytestmark = pytest.mark.system

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
PATIENT = "maria.fernandez@example.com"


def start_dev(spawn, data_dir, web, frontend, ui, rp, smtp_port):
    process, output = spawn(
        python_command(
            "dev",
            "--port",
            str(web),
            "--temporal-port",
            str(frontend),
            "--ui-port",
            str(ui),
            "--worker-metrics-port",
            str(free_port()),
            "--rp-port",
            str(rp),
            "--fhir-port",
            str(free_port()),
            "--smart-port",
            str(free_port()),
            "--data-dir",
            str(data_dir),
            "--smtp",
            f"127.0.0.1:{smtp_port}",
        ),
        env=clean_env(),
    )
    output.wait_for(r"Press Ctrl-C", STARTUP_SECONDS)
    wait_until(
        lambda: answers_200(f"http://127.0.0.1:{web}/readyz"),
        STARTUP_SECONDS,
        "the stack to be ready",
    )
    return process


def post_form(session: requests.Session, url: str, data: dict) -> requests.Response:
    token = CSRF.search(session.get(url, timeout=10).text).group(1)
    return session.post(url, data={"csrf_token": token, **data}, allow_redirects=False, timeout=30)


def test_registration_survives_a_restart_of_every_process(tmp_path, spawn, mailbox):
    ports = [free_port() for _ in range(4)]
    base = f"http://127.0.0.1:{ports[0]}"
    data_dir = tmp_path / "var"

    first = start_dev(spawn, data_dir, *ports, mailbox.port)
    applicant = requests.Session()
    submitted = post_form(
        applicant,
        f"{base}/patient/register",
        {
            "email": PATIENT,
            "username": "maria.f",
            "password": "Clave123segura",
            "password_confirm": "Clave123segura",
            "full_name": "María José Fernández",
        },
    )
    assert submitted.status_code == 302
    link = link_in(mailbox.wait_for(PATIENT, "Confirme"), "/patient/confirm/")
    first.send_signal(signal.SIGINT)
    assert first.wait(60) == 0

    second = start_dev(spawn, data_dir, *ports, mailbox.port)
    confirmed = post_form(applicant, link, {})
    assert confirmed.status_code == 302
    assert "Usuario confirmado" in mailbox.wait_for(PATIENT, "Usuario confirmado")["Subject"]
    signed_in = post_form(
        applicant,
        f"{base}/patient/login",
        {"username": "maria.f", "password": "Clave123segura"},
    )
    assert signed_in.headers["Location"].endswith("/patient/")
    second.send_signal(signal.SIGINT)
    assert second.wait(60) == 0
