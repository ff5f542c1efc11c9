"""Scale-out on the engines Acceso already has: two web processes and two workers on one
PostgreSQL and one Temporal serve patient registrations with nothing duplicated or lost. Each
applicant submits on one web process and clicks the e-mailed link on the other; both workers
run the workflows and both relay the outbox."""

from __future__ import annotations

import re
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import select
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus

from cli.dev import gunicorn_argv
from portal.models import ClinicalRecord, OutboxMessage
from portal.settings import Settings
from processes.registration.workflows import RegistrationWorkflow
from temporal.client import connect
from temporal.search_attributes import dev_server_flags
from tests.fixtures.codec import TEST_CODEC_KEYS
from tests.fixtures.processes import free_port
from tests.fixtures.temporal import venv_binary
from tests.fixtures.waiting import wait_until
from tests.test_cli_dev import answers_200, clean_env

pytestmark = [pytest.mark.system, pytest.mark.postgres]

APPLICANTS = 20
PASSWORD = "Clave123segura"
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
LINK = re.compile(r"https?://\S+/patient/confirm/\S+")
STARTUP_SECONDS = 60


def address(n: int) -> str:
    return f"paciente{n}@example.org"


def post_form(session: requests.Session, url: str, data: dict) -> requests.Response:
    token = CSRF.search(session.get(url, timeout=10).text).group(1)
    return session.post(url, data={"csrf_token": token, **data}, allow_redirects=False, timeout=30)


@pytest.fixture
def shared_temporal(spawn):
    """One Temporal dev server (in memory) of this test's own, so its workers' cleanup schedule
    and workflows meet no other test's."""
    port = free_port()
    spawn(
        [
            venv_binary("temporal"),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--ui-port",
            str(free_port()),
            "--headless",
            "--namespace",
            "default",
            *dev_server_flags(),
        ]
    )
    return f"127.0.0.1:{port}"


def test_two_web_processes_and_two_workers_lose_and_repeat_nothing(
    tmp_path, spawn, mailbox, postgres_url, postgres_session_factory, shared_temporal,
    background_loop,
):  # fmt: skip
    with postgres_session_factory() as session:
        session.add_all(
            ClinicalRecord(
                portal="patient",
                record_number=f"HC-{n}",
                full_name=f"Paciente Número {n}",
                email=address(n),
            )
            for n in range(APPLICANTS)
        )
        session.commit()
    webs = [free_port(), free_port()]
    settings = Settings(
        data_dir=tmp_path,
        database_url=postgres_url,
        temporal_address=shared_temporal,
        codec_keys=TEST_CODEC_KEYS,
    )
    env = {
        **clean_env(),
        "ACCESO_DATA_DIR": str(tmp_path),
        "ACCESO_DATABASE_URL": postgres_url,
        "ACCESO_TEMPORAL_ADDRESS": shared_temporal,
        "ACCESO_SMTP_HOST": "127.0.0.1",
        "ACCESO_SMTP_PORT": str(mailbox.port),
        "ACCESO_SECRET_KEY": "scale-out-test-secret-key-of-forty-chars!",
        "ACCESO_CODEC_KEYS": TEST_CODEC_KEYS,
        "ACCESO_PUBLIC_BASE_URL": f"http://127.0.0.1:{webs[0]}",
        "ACCESO_ALLOW_HTTP": "1",
        "ACCESO_RATE_LIMIT_REGISTRATION": "1000/minute",
    }
    workers = [spawn([sys.executable, "-m", "worker"], env) for _ in range(2)]
    for port in webs:
        spawn(gunicorn_argv("127.0.0.1", port, workers=1), env)
    for _, output in workers:
        output.wait_for(r"worker polling task queue", STARTUP_SECONDS)
    for port in webs:
        wait_until(
            lambda port=port: answers_200(f"http://127.0.0.1:{port}/readyz"),
            STARTUP_SECONDS,
            f"web process on {port} to be ready",
        )

    def lifecycle(n: int) -> None:
        """Submit on one web process, click the e-mailed link on the other."""
        submit_on, click_on = webs[n % 2], webs[(n + 1) % 2]
        applicant = requests.Session()
        submitted = post_form(
            applicant,
            f"http://127.0.0.1:{submit_on}/patient/register",
            {
                "email": address(n),
                "username": f"paciente{n}",
                "password": PASSWORD,
                "password_confirm": PASSWORD,
                "full_name": f"Paciente Número {n}",
            },
        )
        assert submitted.status_code == 302, submitted.text
        mail = mailbox.wait_for(address(n), "Confirme", timeout=STARTUP_SECONDS)
        link = LINK.search(mail.get_body(preferencelist=("plain",)).get_content()).group(0)
        link = re.sub(r"^https?://[^/]+", f"http://127.0.0.1:{click_on}", link)
        assert post_form(applicant, link, {}).status_code == 302
        mailbox.wait_for(address(n), "Usuario confirmado", timeout=STARTUP_SECONDS)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lifecycle, range(APPLICANTS)))

    client = background_loop.run(connect(settings))

    async def registrations() -> list:
        return [
            execution
            async for execution in client.list_workflows(
                f'WorkflowType="{RegistrationWorkflow.__name__}"'
            )
        ]

    def all_completed():
        found = background_loop.run(registrations())
        done = [e for e in found if e.status == WorkflowExecutionStatus.COMPLETED]
        return found if len(done) == APPLICANTS else None

    runs = wait_until(all_completed, 30, "every registration workflow to complete")
    assert len(runs) == APPLICANTS
    assert len({run.id for run in runs}) == APPLICANTS, "a registration was started twice"

    for n in range(APPLICANTS):
        subjects = sorted(str(message["Subject"]) for message in mailbox.to(address(n)))
        assert len(subjects) == 2, (n, subjects)
        assert "Confirme" in subjects[0] and "Usuario confirmado" in subjects[1], subjects
    assert len(mailbox.messages) == 2 * APPLICANTS

    with postgres_session_factory() as session:
        rows = list(session.scalars(select(OutboxMessage)))
    assert rows and all(row.relayed_at is not None for row in rows)
    assert all(row.attempts == 0 and not row.last_error for row in rows), [
        (row.workflow_id, row.attempts, row.last_error) for row in rows if row.attempts
    ]
    started = {row.workflow_id for row in rows if row.kind == "start"}
    assert started == {run.id for run in runs}

    identities: set[str] = set()
    for run in runs:
        history = background_loop.run(client.get_workflow_handle(run.id).fetch_history())
        signals = [
            event.workflow_execution_signaled_event_attributes.signal_name
            for event in history.events
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        ]
        owed = [row.signal for row in rows if row.kind == "signal" and row.workflow_id == run.id]
        assert sorted(signals) == sorted(owed), (run.id, signals, owed)
        # The lifecycle's e-mails are local activities: they run inside workflow tasks.
        identities |= {
            event.workflow_task_started_event_attributes.identity
            for event in history.events
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
        }
    assert len(identities) == 2, f"both workers should have run the processes: {identities}"
