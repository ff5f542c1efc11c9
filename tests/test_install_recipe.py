"""The image's recipe, executed: scripts/install.sh builds a wheel from exactly the files the
Docker build context holds (.dockerignore), installs it into a fresh virtualenv, and the
installed `acceso` then migrates a throwaway PostgreSQL, serves, works and takes a patient
registration end to end in production mode, from a directory outside the checkout."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.fixtures.codec import TEST_CODEC_KEYS
from tests.fixtures.processes import PROJECT_ROOT, free_port
from tests.fixtures.smtp import link_in
from tests.fixtures.waiting import wait_until

INSTALL_SECONDS = 420
START_SECONDS = 90
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
PATIENT = "paciente.prueba@example.org"
PASSWORD = "Clave123segura"


def build_context_entries() -> list[str]:
    """The `!entry` lines of the allow-list .dockerignore: what `COPY . /src` copies."""
    lines = [
        line.strip()
        for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", ".dockerignore must be an allow-list starting with '*'"
    return [line[1:] for line in lines if line.startswith("!")]


def test_the_dockerfile_runs_the_install_recipe_on_the_whole_build_context():
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert "COPY . /src" in dockerfile
    assert re.search(r"^RUN sh /src/scripts/install\.sh /opt/acceso /src", dockerfile, re.M)
    assert "scripts/install.sh" in build_context_entries()
    assert "web.i18n import compile_catalogs" not in dockerfile


def test_every_entry_the_image_copies_exists():
    """A moved folder left in the allow-list would break the image build, and only the slow
    --postgres pass would notice."""
    missing = [entry for entry in build_context_entries() if not (PROJECT_ROOT / entry).exists()]
    assert missing == []


def test_the_install_recipe_compiles_translations_the_package_really_has():
    recipe = (PROJECT_ROOT / "scripts" / "install.sh").read_text()
    assert "from portal.translations import compile_catalogs" in recipe
    from portal.translations import compile_catalogs

    assert callable(compile_catalogs)


@pytest.fixture
def installed(tmp_path_factory) -> Path:
    """A virtualenv made by the recipe from a copy of the build context, as the image is."""
    root = tmp_path_factory.mktemp("image")
    context = root / "context"
    for entry in build_context_entries():
        source = PROJECT_ROOT / entry
        target = context / entry
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
        else:
            shutil.copy2(source, target)
    venv = root / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCESO_", "PYTHON"))}
    result = subprocess.run(
        ["sh", str(context / "scripts" / "install.sh"), str(venv), str(context)],
        cwd=root,
        env={**env, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=INSTALL_SECONDS,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"acceso installed from {venv}" in result.stdout
    assert list((venv / "lib").glob("python*/site-packages/portal/locale/en/LC_MESSAGES/*.mo"))
    assert not list((venv / "lib").glob("python*/site-packages/__editable__*"))
    (root / "context" / "patients.csv").write_text(
        f"full_name,email,record_number\nPaciente De Prueba,{PATIENT},HC-900001\n"
    )
    return root


def production_env(root: Path, database_url: str, smtp_port: int, temporal: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCESO_", "PYTHON"))}
    env.update(
        ACCESO_ARGON2_TIME_COST="1",
        ACCESO_ARGON2_MEMORY_KIB="8192",
        ACCESO_DATABASE_URL=database_url,
        ACCESO_SECRET_KEY="s" * 48,
        ACCESO_CODEC_KEYS=TEST_CODEC_KEYS,
        ACCESO_TEMPORAL_ADDRESS=temporal,
        ACCESO_TASK_QUEUE=f"recipe-{uuid.uuid4().hex[:8]}",
        ACCESO_SMTP_HOST="127.0.0.1",
        ACCESO_SMTP_PORT=str(smtp_port),
        ACCESO_DATA_DIR=str(root / "data"),
        ACCESO_PORTALS_FILE=str(root / "context" / "config" / "portals.toml"),
        ACCESO_DEV_MODE="false",
        PYTHONUNBUFFERED="1",
    )
    return env


def run(root: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(root / "venv" / "bin" / "acceso"), *args],
        cwd=root / "run",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def post_form(session: requests.Session, url: str, data: dict) -> requests.Response:
    token = CSRF.search(session.get(url, timeout=10).text).group(1)
    return session.post(url, data={"csrf_token": token, **data}, allow_redirects=False, timeout=30)


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus exposition, 0 when absent."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def answers(url: str, **kwargs) -> requests.Response | None:
    try:
        response = requests.get(url, timeout=3, **kwargs)
    except requests.RequestException:
        return None
    return response if response.status_code == 200 else None


@pytest.mark.system
@pytest.mark.postgres
def test_the_packaged_app_takes_a_patient_registration_in_production_mode(
    installed, postgres_cluster, dev_server, mailbox
):
    root = installed
    (root / "run").mkdir()
    temporal = dev_server.client.service_client.config.target_host
    env = production_env(root, postgres_cluster.create_database(), mailbox.port, temporal)
    web_port, worker_metrics = free_port(), free_port()
    base = f"http://127.0.0.1:{web_port}"
    env["ACCESO_PUBLIC_BASE_URL"] = base

    refused = run(root, env, "web", "--port", str(web_port))
    assert refused.returncode == 1
    assert refused.stderr.strip().startswith(
        "acceso web: refusing to start: ACCESO_PUBLIC_BASE_URL"
    )
    env.update(ACCESO_ALLOW_HTTP="1", ACCESO_METRICS_TOKEN="scrape-token")

    migrated = run(root, env, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    imported = run(root, env, "import", "patients", str(root / "context" / "patients.csv"))
    assert imported.returncode == 0, imported.stderr

    processes = []
    try:
        for argv, extra in (
            (["worker"], {"ACCESO_WORKER_METRICS_ADDRESS": f"127.0.0.1:{worker_metrics}"}),
            (["web", "--port", str(web_port)], {"ACCESO_WEB_WORKERS": "2"}),
        ):
            log = open(root / f"{argv[0]}.log", "w")  # noqa: SIM115 (the child's output)
            processes.append(
                subprocess.Popen(
                    [str(root / "venv" / "bin" / "acceso"), *argv],
                    cwd=root / "run",
                    env={**env, **extra},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        wait_until(lambda: answers(f"{base}/readyz"), START_SECONDS, "the web app to be ready")

        applicant = requests.Session()
        submitted = post_form(
            applicant,
            f"{base}/patient/register",
            {
                "email": PATIENT,
                "username": "paciente.prueba",
                "password": PASSWORD,
                "password_confirm": PASSWORD,
                "full_name": "Paciente De Prueba",
            },
        )
        assert submitted.status_code == 302, submitted.text
        link = link_in(mailbox.wait_for(PATIENT, "Confirme", timeout=60), "/patient/confirm/")
        assert link.startswith(base)
        assert post_form(applicant, link, {}).status_code == 302
        mailbox.wait_for(PATIENT, "Usuario confirmado", timeout=60)
        signed_in = post_form(
            applicant,
            f"{base}/patient/login",
            {"username": "paciente.prueba", "password": PASSWORD},
        )
        assert signed_in.headers["Location"].endswith("/patient/")

        assert requests.get(f"{base}/metrics", timeout=10).status_code == 404
        scrape = requests.get(
            f"{base}/metrics", headers={"Authorization": "Bearer scrape-token"}, timeout=10
        ).text
        assert metric(scrape, "acceso_registrations_started_total", portal="patient") == 1
        assert (
            metric(
                scrape, "acceso_registration_outcomes_total", portal="patient", outcome="confirmed"
            )
            == 1
        )
        assert metric(scrape, "acceso_logins_total", portal="patient", outcome="ok") == 1
        assert metric(scrape, "acceso_http_requests_total", endpoint="health.readyz", status="200")

        worker_scrape = requests.get(f"http://127.0.0.1:{worker_metrics}/metrics", timeout=10).text
        assert metric(
            worker_scrape, "acceso_activity_outcomes_total", activity="send_link", outcome="ok"
        )
        assert "temporal_" in worker_scrape
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for process in processes:
            try:
                process.wait(max(1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
    logs = {p: (root / f"{p}.log").read_text() for p in ("worker", "web")}
    assert "Traceback" not in logs["worker"], logs["worker"]
