"""The fault suite (`make test-faults`): batches of patient registrations through the whole
`acceso dev` stack while its parts are killed, then the promises of the README's reliability
section, checked for every person: one working link (repeats carry the same one), no 500 page,
nobody stuck, every account usable."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
import requests
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from cli.dev import prepare
from portal.db import make_engine, make_session_factory
from portal.models import ClinicalRecord, OutboxMessage, Registration, User
from portal.settings import Settings
from tests.fixtures.processes import free_port, python_command
from tests.fixtures.smtp import MailSink, body_text
from tests.fixtures.waiting import wait_until
from tests.test_cli_dev import STARTUP_SECONDS, answers_200, clean_env

pytestmark = pytest.mark.faults

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
FORM_KEY = re.compile(r'name="form_key" type="hidden" value="([^"]+)"')
PASSWORD = "Clave123segura"
BATCH = 8
SETTLE_SECONDS = 180


@dataclass
class Applicant:
    number: int
    statuses: list[int] = field(default_factory=list)
    http: requests.Session = field(default_factory=requests.Session)

    @property
    def email(self) -> str:
        return f"falla{self.number}@example.org"

    @property
    def username(self) -> str:
        return f"falla{self.number}"


class DevStack:
    """`acceso dev` on free ports, mailing the test's own SMTP server, which it may stop."""

    def __init__(self, spawn, data_dir, smtp_port: int):
        self.spawn, self.data_dir, self.smtp_port = spawn, data_dir, smtp_port
        self.web, self.frontend, self.ui, self.metrics, self.rp = (free_port() for _ in range(5))
        self.base = f"http://127.0.0.1:{self.web}"
        self.process = None
        self.output = None

    def start(self) -> None:
        self.process, self.output = self.spawn(
            python_command(
                "dev",
                "--port",
                str(self.web),
                "--temporal-port",
                str(self.frontend),
                "--ui-port",
                str(self.ui),
                "--worker-metrics-port",
                str(self.metrics),
                "--rp-port",
                str(self.rp),
                "--data-dir",
                str(self.data_dir),
                "--smtp",
                f"127.0.0.1:{self.smtp_port}",
            ),
            # Forty people from one loopback address: the per-client limits would stop them.
            env={
                **clean_env(),
                "ACCESO_RATE_LIMIT_REGISTRATION": "10000/minute",
                "ACCESO_RATE_LIMIT_SIGN_IN": "10000/minute",
                "ACCESO_RATE_LIMIT_RECOVERY": "10000/minute",
            },
        )
        self.output.wait_for(r"Press Ctrl-C", STARTUP_SECONDS)
        self.wait_ready()

    def wait_ready(self) -> None:
        wait_until(lambda: answers_200(f"{self.base}/readyz"), STARTUP_SECONDS, "a ready stack")

    def pid(self, name: str) -> int:
        found = re.findall(rf"(?:re)?started {name} \(pid (\d+)\)", self.output.text)
        return int(found[-1])

    def kill(self, name: str) -> None:
        """SIGKILL one child's whole process group; `acceso dev` must bring it back."""
        restarts = self.output.text.count(f"restarted {name} ")
        os.killpg(self.pid(name), signal.SIGKILL)
        wait_until(
            lambda: self.output.text.count(f"restarted {name} ") > restarts,
            30,
            f"{name} to be restarted",
        )

    def kill_a_web_worker(self) -> None:
        """A gunicorn worker dies mid-request; its master starts another."""
        workers = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.pid("web"))],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        os.kill(int(workers[0]), signal.SIGKILL)

    def kill_everything(self) -> None:
        """Every process at once, as a power cut would; nothing gets to clean up."""
        groups = [self.pid(name) for name in ("temporal", "worker", "web")]
        self.process.kill()
        for group in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        assert self.process.wait(60) == 0


def fetched(applicant: Applicant, url: str) -> str | None:
    """A page, or None while the stack cannot answer (a dropped connection, a 5xx)."""
    try:
        response = applicant.http.get(url, timeout=30)
    except requests.RequestException:
        return None
    applicant.statuses.append(response.status_code)
    return response.text if response.status_code < 500 else None


def post_until_answered(stack: DevStack, applicant: Applicant, path: str, data: dict) -> str:
    """Posts one rendered form, and on a dropped connection or a 5xx posts the very same form
    again (same CSRF token, same idempotency key), as a browser's retry would."""
    page = wait_until(lambda: fetched(applicant, f"{stack.base}{path}"), SETTLE_SECONDS, path)
    form = {"csrf_token": CSRF.search(page).group(1), **data}
    if key := FORM_KEY.search(page):
        form["form_key"] = key.group(1)
    answer: list[str] = []

    def sent() -> bool:
        try:
            response = applicant.http.post(
                f"{stack.base}{path}", data=form, allow_redirects=False, timeout=30
            )
        except requests.RequestException:
            return False
        applicant.statuses.append(response.status_code)
        if response.status_code >= 500:
            return False
        answer.append(response.headers.get("Location", "") or response.text[:3000])
        return True

    wait_until(sent, SETTLE_SECONDS, f"{path} to be answered for {applicant.email}", poll=0.5)
    return answer[0]


def register(stack: DevStack, applicant: Applicant) -> None:
    location = post_until_answered(
        stack,
        applicant,
        "/patient/register",
        {
            "email": applicant.email,
            "username": applicant.username,
            "password": PASSWORD,
            "password_confirm": PASSWORD,
            "full_name": f"Persona Falla {applicant.number}",
        },
    )
    assert location.endswith("/patient/register/check-mail"), (applicant.email, location)


def batch(stack: DevStack, people: list[Applicant], fault) -> None:
    """Registers everyone eight at a time, with `fault` striking while the batch is in flight."""
    with ThreadPoolExecutor(max_workers=BATCH) as pool:
        running = [pool.submit(register, stack, person) for person in people]
        fault()
        for future in running:
            future.result()


def confirmation_links(sink: MailSink, applicant: Applicant) -> set[str]:
    links = set()
    for message in sink.to(applicant.email):
        if "Confirme" in str(message["Subject"]):
            links.update(re.findall(r"https?://\S+/patient/confirm/\S+", body_text(message)))
    return links


def confirm_and_sign_in(stack: DevStack, sink: MailSink, applicant: Applicant) -> None:
    wait_until(
        lambda: confirmation_links(sink, applicant),
        SETTLE_SECONDS,
        f"a confirmation e-mail for {applicant.email}",
    )
    links = confirmation_links(sink, applicant)
    assert len(links) == 1, f"{applicant.email} got different links: {links}"
    path = "/patient/confirm/" + links.pop().rsplit("/patient/confirm/", 1)[-1]
    page = wait_until(lambda: fetched(applicant, f"{stack.base}{path}"), SETTLE_SECONDS, path)
    assert "Confirmar mi correo" in page, applicant.email
    location = post_until_answered(stack, applicant, path, {})
    assert location.endswith("/patient/login"), (applicant.email, location)
    wait_until(
        lambda: any("confirmado" in str(m["Subject"]) for m in sink.to(applicant.email)),
        SETTLE_SECONDS,
        f"the 'user confirmed' e-mail for {applicant.email}",
    )
    signed_in = post_until_answered(
        stack, applicant, "/patient/login", {"username": applicant.username, "password": PASSWORD}
    )
    assert signed_in.endswith("/patient/"), (applicant.email, signed_in)


def reset_with_a_worker_crash(stack: DevStack, sink: MailSink, applicant: Applicant) -> None:
    applicant.http = requests.Session()
    post_until_answered(
        stack,
        applicant,
        "/patient/recover/password",
        {"email": applicant.email, "username": applicant.username},
    )
    message = wait_until(
        lambda: next((m for m in sink.to(applicant.email) if "cambio" in str(m["Subject"])), None),
        SETTLE_SECONDS,
        "the reset confirmation e-mail",
    )
    link = re.search(r"https?://\S+/patient/reset/\S+", body_text(message)).group(0)
    path = "/patient/reset/" + link.rsplit("/patient/reset/", 1)[-1]
    with ThreadPoolExecutor(max_workers=1) as pool:
        pressed = pool.submit(post_until_answered, stack, applicant, path, {})
        stack.kill("worker")
        assert pressed.result().endswith("/patient/login")

    def temporary_passwords() -> set[str]:
        found = set()
        for m in sink.to(applicant.email):
            if "temporal" in str(m["Subject"]):
                found.update(re.findall(r"^\s{4}(\S+)\s*$", body_text(m), re.M))
        return found

    wait_until(temporary_passwords, SETTLE_SECONDS, "the temporary password")
    passwords = temporary_passwords()
    assert len(passwords) == 1, f"different temporary passwords: {passwords}"
    signed_in = post_until_answered(
        stack,
        applicant,
        "/patient/login",
        {"username": applicant.username, "password": passwords.pop()},
    )
    assert "/patient/account/password" in signed_in, signed_in


@pytest.fixture
def sink():
    """An SMTP server the test can take down and bring back on the same port."""
    mail = MailSink()
    mail.port = free_port()
    controller = Controller(mail, hostname="127.0.0.1", port=mail.port)
    controller.start()
    mail.controller = controller
    yield mail
    if controller._thread is not None:
        controller.stop()


def test_registrations_survive_every_kind_of_crash(tmp_path, spawn, sink):
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    settings = Settings(data_dir=data_dir)
    prepare(settings)
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    people = [Applicant(n) for n in range(5 * BATCH)]
    with sessions() as session:
        session.add_all(
            ClinicalRecord(
                portal="patient",
                record_number=f"HC-F{p.number}",
                full_name=f"Persona Falla {p.number}",
                email=p.email,
            )
            for p in people
        )
        session.commit()

    stack = DevStack(spawn, data_dir, sink.port)
    stack.start()
    batches = [people[i : i + BATCH] for i in range(0, len(people), BATCH)]

    # 1. The worker is SIGKILLed while registrations are being submitted and mailed.
    batch(stack, batches[0], lambda: stack.kill("worker"))

    # 2. A gunicorn worker is SIGKILLed mid-request.
    batch(stack, batches[1], stack.kill_a_web_worker)

    # 3. SMTP is down for a while: e-mails wait, none is lost or doubled.
    sink.controller.stop()
    batch(stack, batches[2], lambda: None)
    with sessions() as session:
        wait_until(
            lambda: (
                session.scalar(
                    select(func.count())
                    .select_from(OutboxMessage)
                    .where(OutboxMessage.relayed_at.is_(None))
                )
                == 0
            ),
            SETTLE_SECONDS,
            "the outbox to drain while mail is down",
        )
    assert not any(sink.to(p.email) for p in batches[2])
    sink.controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    sink.controller.start()

    # 4. The Temporal dev server is SIGKILLed mid-batch; `acceso dev` restarts it on its file.
    batch(stack, batches[3], lambda: stack.kill("temporal"))
    stack.wait_ready()

    # 5. Every process at once, with one person's submission in flight, then a restart on the
    # same data directory; that person's browser retries the same form until it is answered.
    for person in batches[4][:4]:
        register(stack, person)
    with ThreadPoolExecutor(max_workers=1) as pool:
        in_flight = pool.submit(register, stack, batches[4][4])
        stack.kill_everything()
        stack.start()
        in_flight.result()
    for person in batches[4][5:]:
        register(stack, person)

    # Confirmation clicks while Temporal is being killed: the click is a database transaction,
    # and the process hears of it when Temporal is back.
    for number, person in enumerate(people):
        if number == len(people) // 2:
            stack.kill("temporal")
        confirm_and_sign_in(stack, sink, person)
        assert 500 not in person.statuses, (person.email, person.statuses)

    # A password reset with the worker killed between the click and the e-mail.
    reset_with_a_worker_crash(stack, sink, people[0])

    with sessions() as session:
        stuck = session.scalars(
            select(Registration.reference).where(Registration.status != "active")
        ).all()
        assert stuck == []
        accounts = session.scalar(
            select(func.count()).select_from(User).where(User.username.like("falla%"))
        )
        assert accounts == len(people)
    engine.dispose()
    stack.stop()
