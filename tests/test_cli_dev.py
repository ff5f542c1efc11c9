"""`acceso dev`: the whole stack comes up from one command, and goes away with one Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import smtplib
import socket
import stat
from email.message import EmailMessage

import pytest
import requests
from sqlalchemy import func, select

from cli.dev import DEMO_STAFF, prepare
from portal.db import make_engine, make_session_factory
from portal.models import AuditEvent, ClinicalRecord, MemberRecord, StaffUser
from portal.passwords import verify_password
from portal.settings import Settings
from tests.fixtures.processes import free_port, python_command
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.system

STARTUP_SECONDS = 90


def clean_env() -> dict[str, str]:
    """The test runner's environment without Acceso settings, except the fast argon2 costs."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("ACCESO_") or key.startswith("ACCESO_ARGON2_")
    }


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def answers_200(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_dev_starts_every_part_restarts_a_crashed_one_and_stops_all_children_on_sigint(
    tmp_path, spawn
):
    web, frontend, ui, smtp, worker_metrics, rp, fhir, smart = (free_port() for _ in range(8))
    data_dir = tmp_path / "var"
    process, output = spawn(
        python_command(
            "dev",
            "--port",
            str(web),
            "--temporal-port",
            str(frontend),
            "--ui-port",
            str(ui),
            "--smtp-port",
            str(smtp),
            "--worker-metrics-port",
            str(worker_metrics),
            "--rp-port",
            str(rp),
            "--fhir-port",
            str(fhir),
            "--smart-port",
            str(smart),
            "--data-dir",
            str(data_dir),
        ),
        env=clean_env(),
    )

    output.wait_for(r"Press Ctrl-C", STARTUP_SECONDS)
    base = f"http://127.0.0.1:{web}"
    wait_until(
        lambda: answers_200(f"{base}/healthz") or answers_200(f"{base}/patient/login"),
        STARTUP_SECONDS,
        "the web app to answer",
    )
    text = output.text
    assert f"Web app            {base}/" in text
    assert f"Dev inbox          {base}/dev/inbox" in text
    assert f"Temporal UI        http://127.0.0.1:{ui}/" in text
    assert f"Temporal frontend  127.0.0.1:{frontend}" in text
    assert f"SMTP               127.0.0.1:{smtp}" in text
    assert f"Register an app    {base}/developers/apps/new" in text
    assert answers_200(f"{base}/developers/apps/new")
    password_file = data_dir / "demo-staff-password"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert f"Demo staff login   {DEMO_STAFF} / {password_file.read_text().strip()}" in text
    assert answers_200(f"http://127.0.0.1:{ui}/")
    token = re.search(r"Web metrics +\S+/metrics \(Authorization: Bearer (\S+)\)", text).group(1)
    scrape = requests.get(
        f"{base}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert "acceso_http_requests_total" in scrape.text
    assert f"Worker metrics     http://127.0.0.1:{worker_metrics}/metrics" in text
    worker_scrape = wait_until(
        lambda: (
            answers_200(f"http://127.0.0.1:{worker_metrics}/metrics")
            and requests.get(f"http://127.0.0.1:{worker_metrics}/metrics", timeout=5).text
        ),
        STARTUP_SECONDS,
        "the worker's metrics",
    )
    assert "temporal_" in worker_scrape
    assert f"Mi Historia Clínica (sample app)  http://127.0.0.1:{rp}/" in text
    sample = requests.get(f"http://127.0.0.1:{rp}/", timeout=10)
    assert "Iniciar sesión con Acceso" in sample.text
    to_acceso = requests.get(f"http://127.0.0.1:{rp}/login", timeout=10)
    assert to_acceso.url.startswith(f"{base}/patient/login")
    assert f"Mis Datos de Salud (sample SMART app)  http://127.0.0.1:{smart}/" in text
    assert "Conectar con Acceso" in requests.get(f"http://127.0.0.1:{smart}/", timeout=10).text
    smart_launch = requests.get(f"http://127.0.0.1:{smart}/launch", timeout=10)
    assert smart_launch.url.startswith(f"{base}/patient/login")
    capability = requests.get(f"http://127.0.0.1:{fhir}/fhir/metadata", timeout=10).json()
    assert capability["resourceType"] == "CapabilityStatement"

    message = EmailMessage()
    message["From"] = "no-reply@acceso.localhost"
    message["To"] = "ana@example.com"
    message["Subject"] = "Hola desde la prueba"
    message.set_content("Hola")
    with smtplib.SMTP("127.0.0.1", smtp, timeout=10) as client:
        client.send_message(message)
    assert "Hola desde la prueba" in requests.get(f"{base}/dev/inbox/", timeout=10).text

    children = {name: int(pid) for name, pid in re.findall(r"started ([\w-]+) \(pid (\d+)\)", text)}
    assert set(children) == {
        "temporal",
        "mailcatcher",
        "worker",
        "web",
        "sample-app",
        "fhir-server",
        "smart-app",
    }

    second, second_output = spawn(
        python_command("dev", "--port", str(free_port()), "--data-dir", str(data_dir)),
        env=clean_env(),
    )
    assert second.wait(60) == 1
    second_output.wait_for(r"another `acceso dev` is already running", 5)

    # A crashed child is started again, with a line saying so, instead of stopping everything.
    os.killpg(children["worker"], signal.SIGKILL)
    output.wait_for(r"worker exited with code -9; restarting it in", 10)
    output.wait_for(r"restarted worker \(pid \d+\)", 10)
    children["worker again"] = int(re.findall(r"restarted worker \(pid (\d+)\)", output.text)[0])
    assert process.poll() is None

    process.send_signal(signal.SIGINT)

    assert process.wait(60) == 0
    for name, pid in children.items():
        wait_until(lambda pid=pid: group_gone(pid), 10, f"{name} (pid {pid}) and its children")
    assert (data_dir / "temporal.db").exists()


def test_a_port_already_in_use_is_named_and_dev_exits_non_zero(tmp_path, spawn):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process, output = spawn(
            python_command(
                "dev",
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path / "var"),
                "--temporal-port",
                str(free_port()),
                "--ui-port",
                str(free_port()),
                "--smtp-port",
                str(free_port()),
                "--worker-metrics-port",
                str(free_port()),
                "--rp-port",
                str(free_port()),
                "--fhir-port",
                str(free_port()),
                "--smart-port",
                str(free_port()),
            ),
            env=clean_env(),
        )
        assert process.wait(60) == 1
    output.wait_for(rf"port {port} \(web\) is already in use; choose another with --port", 5)
    assert "started" not in output.text


def test_preparing_twice_keeps_records_staff_login_password_and_codec_key(tmp_path, monkeypatch):
    monkeypatch.delenv("ACCESO_STAFF_PASSWORD", raising=False)
    monkeypatch.delenv("ACCESO_DATABASE_URL", raising=False)
    settings = Settings(data_dir=tmp_path)

    first = prepare(settings)
    codec_key = (tmp_path / "codec.key").read_text()
    second = prepare(settings)

    assert first == second
    assert (tmp_path / "codec.key").read_text() == codec_key
    assert stat.S_IMODE((tmp_path / "codec.key").stat().st_mode) == 0o600
    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as session:
        assert session.scalar(select(func.count()).select_from(ClinicalRecord)) == 5
        assert session.scalar(select(func.count()).select_from(MemberRecord)) == 5
        staff = session.scalar(select(StaffUser).where(StaffUser.username == DEMO_STAFF))
        assert verify_password(staff.password_hash, first)
        assert staff.role_set == {"admin", "reviewer", "support", "operator"}
        imports = session.scalar(select(func.count()).where(AuditEvent.action.like("import.%")))
        assert imports == 2, "a start that adds nothing writes no audit event"
    engine.dispose()
