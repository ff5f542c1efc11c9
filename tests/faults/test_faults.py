"""The fault suite (`make test-faults`): batches of registrations in all three portals through
the whole `acceso dev` stack while its parts are killed, confirmation clicks and a reviewer's
approvals under more kills, a password reset, then the promises of the README's reliability
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

import pyotp
import pytest
import requests
from aiosmtpd.controller import Controller
from sqlalchemy import func, select
from stdnum import luhn

from cli.dev import prepare
from portal.db import make_engine, make_session_factory
from portal.models import (
    AuditEvent,
    ClinicalRecord,
    MemberRecord,
    OutboxMessage,
    ProxyGrant,
    Registration,
    User,
)
from portal.settings import Settings
from tests.fixtures.codec import TEST_CODEC_KEYS
from tests.fixtures.processes import free_port, python_command
from tests.fixtures.second_factor import KEY_RE, RECOVERY_CODE_RE
from tests.fixtures.smtp import MailSink, body_text
from tests.fixtures.staff import add_staff, next_code
from tests.fixtures.waiting import wait_until
from tests.test_cli_dev import STARTUP_SECONDS, answers_200, clean_env

pytestmark = pytest.mark.faults

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
FORM_KEY = re.compile(r'name="form_key" type="hidden" value="([^"]+)"')
PASSWORD = "Clave123segura"
REVIEWER_PASSWORD = "Revisora-2026"
BATCH = 8
SETTLE_SECONDS = 180
PORTAL_OF = ("patient", "member", "patient", "provider")
"""Every batch of eight: four patients, two members and two providers (by number, mod 4)."""
PROVIDER_QUESTIONS = (
    "¿Cuál es el nombre de su primera mascota?",
    "¿En qué ciudad nació su madre?",
    "¿Cuál fue su primera escuela?",
)


@dataclass
class Applicant:
    number: int
    statuses: list[int] = field(default_factory=list)
    http: requests.Session = field(default_factory=requests.Session)
    reference: str = ""

    @property
    def portal(self) -> str:
        return PORTAL_OF[self.number % len(PORTAL_OF)]

    @property
    def username(self) -> str:
        return f"falla{self.number}"

    @property
    def email(self) -> str:
        return f"falla{self.number}@example.org"

    @property
    def client_id(self) -> str:
        return f"9{self.number:08d}"

    @property
    def npi(self) -> str:
        prefix = f"1{self.number:08d}"
        return prefix + luhn.calc_check_digit("80840" + prefix)


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
                "--fhir-port",
                str(free_port()),
                "--smart-port",
                str(free_port()),
                "--data-dir",
                str(self.data_dir),
                "--smtp",
                f"127.0.0.1:{self.smtp_port}",
            ),
            # Forty people from one loopback address: the per-client limits would stop them.
            env={
                **clean_env(),
                # The suite's keys, so the reviewer this test enrols (its authenticator secret
                # sealed as the database keeps it) signs in to this stack.
                "ACCESO_CODEC_KEYS": TEST_CODEC_KEYS,
                "ACCESO_RATE_LIMIT_REGISTRATION": "10000/minute",
                "ACCESO_RATE_LIMIT_SIGN_IN": "10000/minute",
                "ACCESO_RATE_LIMIT_RECOVERY": "10000/minute",
                "ACCESO_RATE_LIMIT_IDENTITY": "10000/minute",
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


def opened(http: requests.Session, statuses: list[int], url: str) -> requests.Response | None:
    """A page, or None while the stack cannot answer (a dropped connection, a 5xx)."""
    try:
        response = http.get(url, timeout=30)
    except requests.RequestException:
        return None
    statuses.append(response.status_code)
    return response if response.status_code < 500 else None


def fetched(applicant: Applicant, url: str) -> str | None:
    page = opened(applicant.http, applicant.statuses, url)
    return page.text if page is not None else None


def sent_until_answered(
    base: str, http: requests.Session, statuses: list[int], path: str, page: str, data: dict
) -> str:
    """Posts the form of a rendered page, and on a dropped connection or a 5xx posts the very
    same form again (same CSRF token, same idempotency key), as a browser's retry would.
    The answer is where it redirected, or the start of the page it showed."""
    form = {"csrf_token": CSRF.search(page).group(1), **data}
    if key := FORM_KEY.search(page):
        form["form_key"] = key.group(1)
    answer: list[str] = []

    def sent() -> bool:
        try:
            response = http.post(f"{base}{path}", data=form, allow_redirects=False, timeout=30)
        except requests.RequestException:
            return False
        statuses.append(response.status_code)
        if response.status_code >= 500:
            return False
        answer.append(response.headers.get("Location", "") or response.text[:3000])
        return True

    wait_until(sent, SETTLE_SECONDS, f"{path} to be answered", poll=0.5)
    return answer[0]


def post_until_answered(stack: DevStack, applicant: Applicant, path: str, data: dict) -> str:
    page = wait_until(lambda: fetched(applicant, f"{stack.base}{path}"), SETTLE_SECONDS, path)
    return sent_until_answered(stack.base, applicant.http, applicant.statuses, path, page, data)


def register_patient(stack: DevStack, applicant: Applicant) -> None:
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


def member_step(applicant: Applicant, page: str) -> dict:
    """What the person types on the wizard step this page shows (seed 001's order)."""
    if 'name="agreement"' in page:
        return {"agreement": "accept"}
    if 'name="client_id"' in page:
        return {
            "first_name": "Persona",
            "last_name": f"Falla{applicant.number}",
            "birth_day": "3",
            "birth_month": "11",
            "birth_year": "1979",
            "client_id": applicant.client_id,
        }
    if 'name="security_answer_1"' in page:
        return {
            "username": applicant.username,
            "email": applicant.email,
            "email_confirm": applicant.email,
            "password": PASSWORD,
            "password_confirm": PASSWORD,
            "security_question_1": "1",
            "security_answer_1": "Hartford",
        }
    if 'name="certify"' in page:
        return {"action": "finish", "certify": "y"}
    if 'value="next"' in page:
        return {"action": "next"}
    raise AssertionError(f"unexpected wizard page for {applicant.email}: {page[:2000]}")


def register_member(stack: DevStack, applicant: Applicant) -> None:
    """Walks the wizard from whatever step the registration is at, as a person reloading the
    page would; a step refused for now (the process busy or away) is simply tried again."""
    path = "/member/register"

    def finished() -> bool:
        page = opened(applicant.http, applicant.statuses, f"{stack.base}{path}")
        if page is None:
            return False
        if "/member/register/done/" in page.url:
            return True
        answer = sent_until_answered(
            stack.base,
            applicant.http,
            applicant.statuses,
            path,
            page.text,
            member_step(applicant, page.text),
        )
        return "/member/register/done/" in answer

    wait_until(finished, SETTLE_SECONDS, f"the member wizard of {applicant.email}", poll=0.5)


def register_provider(stack: DevStack, applicant: Applicant) -> None:
    user = {
        "first_name": "Persona",
        "last_name": f"Falla{applicant.number}",
        "email": applicant.email,
        "phone": "(787) 758-2000",
        "username": applicant.username,
        "password": PASSWORD,
        "password_confirm": PASSWORD,
    }
    for n, question in enumerate(PROVIDER_QUESTIONS, 1):
        user[f"security_question_{n}"] = question
        user[f"security_answer_{n}"] = f"respuesta {n}"
    office = {
        "organization_name": f"Centro Falla {applicant.number}",
        "tax_id": f"04-34{applicant.number:05d}",
        "npi": applicant.npi,
        "address_line1": "Calle Luna 12",
        "city": "San Juan",
        "state": "pr",
        "postal_code": "00901",
    }
    first = post_until_answered(stack, applicant, "/provider/register", user)
    assert first.endswith("/provider/register/office"), (applicant.email, first)
    second = post_until_answered(stack, applicant, "/provider/register/office", office)
    assert second.endswith("/provider/register/summary"), (applicant.email, second)
    done = post_until_answered(stack, applicant, "/provider/register/summary", {"action": "finish"})
    assert "/provider/register/done/" in done, (applicant.email, done)
    applicant.reference = done.rsplit("/", 1)[-1]


def register(stack: DevStack, applicant: Applicant) -> None:
    {"patient": register_patient, "member": register_member, "provider": register_provider}[
        applicant.portal
    ](stack, applicant)


def batch(stack: DevStack, people: list[Applicant], fault) -> None:
    """Registers everyone eight at a time, with `fault` striking while the batch is in flight."""
    with ThreadPoolExecutor(max_workers=BATCH) as pool:
        running = [pool.submit(register, stack, person) for person in people]
        fault()
        for future in running:
            future.result()


def confirmation_links(sink: MailSink, applicant: Applicant) -> set[str]:
    links = set()
    pattern = rf"https?://\S+/{applicant.portal}/confirm/\S+"
    for message in sink.to(applicant.email):
        if "Confirme" in str(message["Subject"]):
            links.update(re.findall(pattern, body_text(message)))
    return links


def mailed(sink: MailSink, applicant: Applicant, subject: str) -> bool:
    return any(subject in str(m["Subject"]) for m in sink.to(applicant.email))


def confirm(stack: DevStack, sink: MailSink, applicant: Applicant) -> None:
    wait_until(
        lambda: confirmation_links(sink, applicant),
        SETTLE_SECONDS,
        f"a confirmation e-mail for {applicant.email}",
    )
    links = confirmation_links(sink, applicant)
    assert len(links) == 1, f"{applicant.email} got different links: {links}"
    marker = f"/{applicant.portal}/confirm/"
    path = marker + links.pop().rsplit(marker, 1)[-1]
    page = wait_until(lambda: fetched(applicant, f"{stack.base}{path}"), SETTLE_SECONDS, path)
    assert "Confirmar mi correo" in page, applicant.email
    location = post_until_answered(stack, applicant, path, {})
    assert location.endswith(f"/{applicant.portal}/login"), (applicant.email, location)


def sign_in(stack: DevStack, applicant: Applicant) -> None:
    """Username and password; a provider's primary registrant then enrols an authenticator,
    as the portal requires, and lands on the portal's home."""
    applicant.http = requests.Session()
    portal = applicant.portal
    answer = post_until_answered(
        stack,
        applicant,
        f"/{portal}/login",
        {"username": applicant.username, "password": PASSWORD},
    )
    if answer.endswith(f"/{portal}/login/enrol"):
        page = wait_until(
            lambda: fetched(applicant, f"{stack.base}/{portal}/login/enrol"),
            SETTLE_SECONDS,
            "the enrolment page",
        )
        key = KEY_RE.search(page).group(1).replace(" ", "")
        enrolled = sent_until_answered(
            stack.base,
            applicant.http,
            applicant.statuses,
            f"/{portal}/login/enrol",
            page,
            {"code": pyotp.TOTP(key).now()},
        )
        assert RECOVERY_CODE_RE.search(enrolled), (applicant.email, enrolled[:500])
        home = opened(applicant.http, applicant.statuses, f"{stack.base}/{portal}/")
        assert home is not None and home.url.endswith(f"/{portal}/"), applicant.email
        return
    assert answer.endswith(f"/{portal}/"), (applicant.email, answer)


class Reviewer:
    """A staff reviewer in a browser of their own: password, then authenticator code."""

    def __init__(self, stack: DevStack, sessions, username: str = "rita"):
        self.stack, self.sessions, self.username = stack, sessions, username
        self.http = requests.Session()
        self.statuses: list[int] = []
        add_staff(sessions, username, REVIEWER_PASSWORD, roles="reviewer")

    def form(self, path: str) -> str:
        return wait_until(
            lambda: (
                (page := opened(self.http, self.statuses, f"{self.stack.base}{path}")) and page.text
            ),
            SETTLE_SECONDS,
            path,
        )

    def sign_in(self) -> None:
        base, path = self.stack.base, "/staff/login"
        first = sent_until_answered(
            base,
            self.http,
            self.statuses,
            path,
            self.form(path),
            {"username": self.username, "password": REVIEWER_PASSWORD},
        )
        assert first.endswith("/staff/login/code"), first
        code_page = self.form("/staff/login/code")
        code = next_code(self.sessions, self.username)
        signed_in = sent_until_answered(
            base, self.http, self.statuses, "/staff/login/code", code_page, {"code": code}
        )
        assert "/staff" in signed_in and "/login" not in signed_in, signed_in

    def approve(self, applicant: Applicant) -> None:
        """One press of Aprobar; a retried press is told the decision is already made."""
        path = f"/staff/reviews/{applicant.reference}"
        answer = sent_until_answered(
            self.stack.base,
            self.http,
            self.statuses,
            path,
            self.form(path),
            {"action": "approve", "reason": ""},
        )
        assert answer.endswith("/staff/reviews") or "staff:rita" in answer, answer[:500]


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


def seed_records(sessions, people: list[Applicant]) -> None:
    """Each patient has a clinical record and each member a member record to be matched."""
    with sessions() as session:
        for p in people:
            if p.portal == "patient":
                session.add(
                    ClinicalRecord(
                        portal="patient",
                        record_number=f"HC-F{p.number}",
                        full_name=f"Persona Falla {p.number}",
                        email=p.email,
                    )
                )
            elif p.portal == "member":
                session.add(
                    MemberRecord(
                        portal="member",
                        client_id=p.client_id,
                        first_name="Persona",
                        last_name=f"Falla{p.number}",
                        suffix="",
                        date_of_birth="1979-11-03",
                        email=p.email,
                    )
                )
        session.commit()


def email_change_with_a_worker_crash(
    stack: DevStack, sink: MailSink, sessions, applicant: Applicant
) -> None:
    """A signed-in patient changes their address; the worker is killed, then the new address
    confirms: the confirmation is in the database before the apply, which the restarted worker
    does once. Either the old address or the new one, never neither, never applied twice."""
    new = f"nueva{applicant.number}@example.org"
    asked = post_until_answered(
        stack,
        applicant,
        "/patient/account/email",
        {"new_email": new, "new_email_confirm": new, "current_password": PASSWORD},
    )
    assert asked.endswith("/patient/account/email"), asked[:500]
    message = wait_until(
        lambda: next((m for m in sink.to(new) if "Confirme" in str(m["Subject"])), None),
        SETTLE_SECONDS,
        "the new address's confirmation e-mail",
    )
    link = re.search(r"https?://\S+/patient/account/email/confirm/\S+", body_text(message))
    path = "/patient/account/email/confirm/" + link.group(0).rsplit("/confirm/", 1)[-1]
    clicker = Applicant(applicant.number)

    def address() -> str:
        with sessions() as session:
            return session.scalar(select(User.email).where(User.username == applicant.username))

    stack.kill("worker")
    pressed = post_until_answered(stack, clicker, path, {})
    assert pressed.endswith("/patient/"), pressed[:500]
    assert address() in (applicant.email, new)
    wait_until(lambda: address() == new, SETTLE_SECONDS, "the confirmed change to apply")
    wait_until(
        lambda: any(
            "correo electrónico cambió" in str(m["Subject"]) for m in sink.to(applicant.email)
        ),
        SETTLE_SECONDS,
        "the old address's notice with its undo link",
    )
    with sessions() as session:
        applied = session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "email_change.applied")
        )
    assert applied == 1
    notices = [
        m for m in sink.to(applicant.email) if "correo electrónico cambió" in str(m["Subject"])
    ]
    assert len(notices) == 1
    assert 500 not in applicant.statuses + clicker.statuses


CHILD_RECORD = ("HC-FNINO", "Niña Falla", "2018-03-09")


def proxy_review_with_a_worker_crash(
    stack: DevStack, sink: MailSink, sessions, reviewer: Reviewer, parent: Applicant
) -> None:
    """A signed-in parent asks for their child; the worker is killed, then staff approve: the
    decision is in the database with the process's signal, and the restarted worker mails it
    once. The grant is active once, never twice, never lost."""
    number, _name, born = CHILD_RECORD
    asked = post_until_answered(
        stack,
        parent,
        "/patient/proxy/request",
        {"record_number": number, "date_of_birth": born, "relationship": "parent", "note": ""},
    )
    assert asked.endswith("/patient/account/proxies"), asked[:500]
    with sessions() as session:
        reference = session.scalar(select(ProxyGrant.reference))
    stack.kill("worker")
    path = f"/staff/proxies/{reference}"
    decided = sent_until_answered(
        stack.base,
        reviewer.http,
        reviewer.statuses,
        f"{path}/decision",
        reviewer.form(path),
        {"decision": "approve", "reason": ""},
    )
    assert decided.endswith(path), decided[:500]

    def active_notices() -> list:
        return [m for m in sink.to(parent.email) if "está activo" in str(m["Subject"])]

    wait_until(active_notices, SETTLE_SECONDS, "the parent's 'access active' e-mail")
    with sessions() as session:
        assert session.scalar(select(ProxyGrant.status)) == "active"
        approvals = session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "proxy.review_approved")
        )
    assert approvals == 1
    assert len(active_notices()) == 1
    assert 500 not in parent.statuses + reviewer.statuses


def test_registrations_survive_every_kind_of_crash(tmp_path, spawn, sink):
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    settings = Settings(data_dir=data_dir)
    prepare(settings)
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    people = [Applicant(n) for n in range(5 * BATCH)]
    seed_records(sessions, people)
    with sessions() as session:
        number, name, born = CHILD_RECORD
        session.add(
            ClinicalRecord(
                portal="patient",
                record_number=number,
                full_name=name,
                email="familia.falla@example.org",
                date_of_birth=born,
            )
        )
        session.commit()
    providers = [p for p in people if p.portal == "provider"]

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

    # 5. Every process at once, with a member half-way through the wizard, then a restart on the
    # same data directory; that person's browser retries the same form until it is answered.
    in_flight = next(p for p in batches[4] if p.portal == "member")
    for person in batches[4][: batches[4].index(in_flight)]:
        register(stack, person)
    with ThreadPoolExecutor(max_workers=1) as pool:
        walking = pool.submit(register, stack, in_flight)
        stack.kill_everything()
        stack.start()
        walking.result()
    for person in batches[4][batches[4].index(in_flight) + 1 :]:
        register(stack, person)

    # Confirmation clicks in all three portals while Temporal is being killed: the click is a
    # database transaction, and the process hears of it when Temporal is back.
    for number, person in enumerate(people):
        if number == len(people) // 2:
            stack.kill("temporal")
        confirm(stack, sink, person)
    for person in people:
        if person.portal != "provider":
            wait_until(
                lambda person=person: mailed(sink, person, "Usuario confirmado"),
                SETTLE_SECONDS,
                f"the 'user confirmed' e-mail for {person.email}",
            )

    # A reviewer approves every provider from the console; the worker is killed half-way and
    # a gunicorn worker a little later: each decision is applied once and mailed once.
    reviewer = Reviewer(stack, sessions)
    reviewer.sign_in()
    for number, provider in enumerate(providers):
        if number == len(providers) // 2:
            stack.kill("worker")
        if number == len(providers) // 2 + 2:
            stack.kill_a_web_worker()
        reviewer.approve(provider)
    for provider in providers:
        wait_until(
            lambda provider=provider: mailed(sink, provider, "aprobada"),
            SETTLE_SECONDS,
            f"the approval e-mail for {provider.email}",
        )
        approvals = [m for m in sink.to(provider.email) if "aprobada" in str(m["Subject"])]
        assert len(approvals) == 1, provider.email

    for person in people:
        sign_in(stack, person)
        assert 500 not in person.statuses, (person.email, person.statuses)
    assert 500 not in reviewer.statuses, reviewer.statuses

    # A password reset with the worker killed between the click and the e-mail.
    reset_with_a_worker_crash(stack, sink, people[0])

    # An e-mail change with the worker killed between the confirmation and the apply.
    email_change_with_a_worker_crash(stack, sink, sessions, people[2])

    # A parent's request for a child, with the worker killed before the staff decision.
    proxy_review_with_a_worker_crash(stack, sink, sessions, reviewer, people[6])

    with sessions() as session:
        unfinished = session.execute(
            select(Registration.reference, Registration.status).where(
                Registration.user_id.is_not(None),
                Registration.status.not_in(("active", "approved")),
            )
        ).all()
        assert unfinished == []
        accounts = session.scalars(
            select(User.portal).where(User.username.like("falla%"), User.status == "active")
        ).all()
        assert sorted(accounts) == sorted(p.portal for p in people)
        # A member whose answer to "accept" was lost with the stack sent the same form again
        # and resumed the registration it had started: no second one is left behind.
        abandoned = session.execute(
            select(Registration.reference, Registration.portal, Registration.status).where(
                Registration.user_id.is_(None)
            )
        ).all()
    assert abandoned == []
    engine.dispose()
    stack.stop()
