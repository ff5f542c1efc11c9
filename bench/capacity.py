"""Capacity of the running product: worker memory, table growth, and one worker against two.

Each mode starts its own `acceso dev` stack (as bench/run.py does, with every port free, a
temporary data dir, e-mail to an SMTP server this script runs) and prints what it measured:

--memory N   N patient registrations left waiting for their e-mail click; then the resident
             memory (VmRSS, from /proc) of the worker's process tree, against <= 300 MB.
--tables     rounds of registrations (submit + click), logins and code exchanges from many
             client addresses; between rounds every row is aged 40 days (standing in for the
             clock) and the cleanup workflow runs with its production grace (7 days); the row
             counts of the swept tables per round must stay flat.
--scale      completed registration lifecycles per second with one worker, then two.

Run by hand, not by the test suite:  .venv/bin/python bench/capacity.py --memory 10000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import requests
from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from run import CSRF, LinkCatcher, add_postgres_option, csrf, free_port, start_postgres  # noqa: E402

MEMORY_GOAL_MB = 300
FORM_KEY = re.compile(r'name="form_key"[^>]*value="([^"]+)"')
PASSWORD = "Clave9Segura-Xq"
REDIRECT = "http://rp.bench/callback"
AGE = timedelta(days=40)
"""How far each round of --tables moves every row's ending back: past every lifetime plus the
sweep's 7-day grace, except a refresh token's, which lasts as long as its 90-day grant."""


class CountingCatcher(LinkCatcher):
    """The links, and how many messages each address received."""

    def __init__(self) -> None:
        super().__init__()
        self.received: dict[str, int] = {}

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook)
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.received[rcpt.lower()] = self.received.get(rcpt.lower(), 0) + 1
        return await super().handle_DATA(server, session, envelope)

    def total(self) -> int:
        with self.lock:
            return sum(self.received.values())


def wait_for(condition, what: str, timeout: float, every: float = 0.5):
    """Polls `condition` until it returns something true, or fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


# --- the stack ----------------------------------------------------------------------------------


def start_stack(data_dir: Path, smtp_port: int) -> tuple[subprocess.Popen, str]:
    """bench/run.py's start, with every port of `acceso dev` free (its sample apps and worker
    metrics too), so this bench runs beside another stack on the same machine."""
    port = free_port()
    command = [str(ROOT / ".venv" / "bin" / "acceso"), "dev", "--port", str(port)]
    for option in (
        "--temporal-port",
        "--ui-port",
        "--worker-metrics-port",
        "--rp-port",
        "--fhir-port",
        "--smart-port",
    ):
        command += [option, str(free_port())]
    command += ["--data-dir", str(data_dir), "--smtp", f"127.0.0.1:{smtp_port}"]
    log = open(data_dir / "bench-stack.log", "w")  # noqa: SIM115 (lives as long as the stack)
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: process.poll() is not None or ready(base), "the stack to be ready", 120)
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    if process.poll() is not None:
        raise SystemExit(f"acceso dev exited; see {data_dir / 'bench-stack.log'}")
    return process, base


def ready(base: str) -> bool:
    try:
        return requests.get(f"{base}/readyz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


class Stack:
    """`acceso dev` on a temporary data dir, plus what the modes need to reach inside it."""

    def __init__(self, data_dir: Path, catcher: LinkCatcher, smtp_port: int) -> None:
        self.data_dir = data_dir
        self.catcher = catcher
        self.process, self.base = start_stack(data_dir, smtp_port)
        try:
            self._find_temporal()
        except BaseException:
            self.stop()
            raise

    def _find_temporal(self) -> None:
        data_dir = self.data_dir
        found = wait_for(
            lambda: re.search(
                r"Temporal frontend\s+(\S+)", (data_dir / "bench-stack.log").read_text()
            ),
            "acceso dev to print its addresses",
            120,
        )
        self.temporal_address = found.group(1)
        from portal.settings import Settings

        self.settings = Settings(
            data_dir=data_dir, dev_mode=True, temporal_address=self.temporal_address
        )

    def children(self, pid: int | None = None) -> list[int]:
        pid = pid or self.process.pid
        path = Path(f"/proc/{pid}/task/{pid}/children")
        return [int(p) for p in path.read_text().split()] if path.exists() else []

    def worker_pids(self) -> list[int]:
        return [pid for pid in self.children() if b"-m\0worker" in cmdline(pid)]

    def worker_env(self) -> dict[str, str]:
        return dict(
            item.split("=", 1)
            for item in Path(f"/proc/{self.worker_pids()[0]}/environ")
            .read_bytes()
            .decode()
            .split("\0")
            if "=" in item
        )

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def tree(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    below = [int(p) for p in path.read_text().split()] if path.exists() else []
    return [pid, *[p for child in below for p in tree(child)]]


def rss_mb(pid: int) -> float:
    """VmRSS of `pid` and everything it started, in MB."""
    total = 0
    for member in tree(pid):
        for line in Path(f"/proc/{member}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def cpu_seconds(pid: int) -> float:
    ticks = 0
    for member in tree(pid):
        fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


@contextmanager
def bench_stack(postgres: bool, env: dict[str, str]):
    """A stack with the extra settings `env`, its SMTP catcher, and PostgreSQL if asked."""
    cluster = None
    saved = dict(os.environ)
    os.environ.update(env)
    if postgres:
        cluster = start_postgres()
    catcher = CountingCatcher()
    smtp_port = free_port()
    controller = Controller(catcher, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    data_dir = Path(tempfile.mkdtemp(prefix="acceso-capacity-"))
    stack = None
    try:
        stack = Stack(data_dir, catcher, smtp_port)
        database = "PostgreSQL" if cluster else "SQLite"
        print(f"stack at {stack.base}; {database}; data in {data_dir}", flush=True)
        yield stack
    finally:
        if stack is not None:
            stack.stop()
        controller.stop()
        if cluster is not None:
            cluster.stop()
        os.environ.clear()
        os.environ.update(saved)


def session_factory(stack: Stack):
    from portal.db import make_engine, make_session_factory

    return make_session_factory(make_engine(stack.settings.database_url))


# --- registrations ------------------------------------------------------------------------------


def enqueue_registrations(stack: Stack, first: int, count: int) -> None:
    """Patient registrations as the form's transaction makes them (account, registration,
    audit event, outbox start), straight through the registration service: the form's argon2id
    hash and HTTP round trip are the web tier's cost, not the worker's."""
    from portal.config import load_portals
    from portal.models import AccountStatus, Registration, Role, User
    from portal.passwords import hash_password
    from portal.tokens import new_reference
    from processes.registration.service import begin, registration_id
    from processes.registration.vocabulary import Step

    portal = load_portals(stack.settings.portals_file)["patient"]
    password_hash = hash_password(PASSWORD)
    factory = session_factory(stack)
    for n in range(first, first + count):
        with factory() as session:
            reference = new_reference()
            user = User(
                portal=portal.slug,
                username=f"wait{n}",
                email=f"wait{n}@example.org",
                full_name=f"Paciente {n}",
                password_hash=password_hash,
                status=AccountStatus.UNCONFIRMED,
                role=Role.PATIENT,
                locale="es",
            )
            registration = Registration(
                reference=reference,
                portal=portal.slug,
                workflow_id=registration_id(portal, reference),
                status=Step.CONFIRM_EMAIL,
                user=user,
            )
            if not begin(session, portal, registration, user=user):
                raise SystemExit(f"registration {n} was refused")


def import_patients(stack: Stack, first: int, count: int, prefix: str = "bench") -> None:
    from portal.models import ClinicalRecord

    with session_factory(stack)() as session:
        session.add_all(
            ClinicalRecord(
                portal="patient",
                record_number=f"{prefix.upper()}-{n}",
                full_name=f"Paciente {n}",
                email=f"{prefix}{n}@example.org",
            )
            for n in range(first, first + count)
        )
        session.commit()


def client_headers(n: int) -> dict[str, str]:
    """A distinct client address per applicant (the stack trusts loopback as its proxy)."""
    return {"X-Forwarded-For": f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"}


def lifecycle(stack: Stack, n: int, prefix: str = "bench") -> None:
    """Submit over HTTP, wait for the link, open its page and press its button."""
    session = requests.Session()
    session.headers.update(client_headers(n))
    page = session.get(f"{stack.base}/patient/register", timeout=10).text
    form_key = FORM_KEY.search(page)
    answer = session.post(
        f"{stack.base}/patient/register",
        data={
            "csrf_token": CSRF.search(page).group(1),
            "form_key": form_key.group(1) if form_key else "",
            "email": f"{prefix}{n}@example.org",
            "username": f"{prefix}{n}",
            "password": PASSWORD,
            "password_confirm": PASSWORD,
            "full_name": f"Paciente {n}",
        },
        allow_redirects=False,
        timeout=30,
    )
    if answer.status_code != 302:
        errors = re.findall(r"class=\"[^\"]*error[^\"]*\"[^>]*>([^<]+)", answer.text)
        raise RuntimeError(f"registration {n} answered {answer.status_code}: {errors}")
    link = stack.catcher.box(f"{prefix}{n}@example.org").get(timeout=120)
    link = re.sub(r"^https?://[^/]+", stack.base, link)
    token = csrf(session, link)
    answer = session.post(link, data={"csrf_token": token}, allow_redirects=False, timeout=30)
    if answer.status_code != 302:
        raise RuntimeError(f"confirmation {n} answered {answer.status_code}")


def lifecycles(stack: Stack, first: int, count: int, concurrency: int, prefix: str = "bench"):
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda n: lifecycle(stack, n, prefix), range(first, first + count)))


# --- memory -------------------------------------------------------------------------------------


def quiet(pid: int, seconds: float = 3.0) -> bool:
    """True when the process used under 2% of a core over `seconds`: the backlog is done."""
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return cpu_seconds(pid) - before < 0.02 * seconds


def bench_memory(args) -> None:
    env = {"ACCESO_ARGON2_TIME_COST": "1", "ACCESO_ARGON2_MEMORY_KIB": "8192"}
    if args.cache is not None:
        env["ACCESO_WORKER_MAX_CACHED_WORKFLOWS"] = str(args.cache)
    with bench_stack(args.postgres, env) as stack:
        (worker,) = stack.worker_pids()
        cache = stack.settings.worker_max_cached_workflows
        wait_for(lambda: quiet(worker), "the worker to settle after start", 120, every=0)
        idle = rss_mb(worker)
        print(f"worker {worker} idle: {idle:.0f} MB; workflow cache {cache}", flush=True)
        started = time.monotonic()
        step = max(1, args.memory // 5)
        done = 0
        first_step = None
        while done < args.memory:
            batch = min(step, args.memory - done)
            enqueue_registrations(stack, done, batch)
            done += batch
            wait_for(
                lambda done=done: stack.catcher.total() >= done,
                f"{done} confirmation e-mails",
                timeout=max(300, batch * 0.5),
                every=1,
            )
            wait_for(lambda: quiet(worker), "the worker to settle", 600, every=0)
            if first_step is None:
                first_step = (done, rss_mb(worker))
            print(
                f"  {done} waiting for their click: worker RSS {rss_mb(worker):.0f} MB"
                f" ({time.monotonic() - started:.0f} s)",
                flush=True,
            )
        rss = rss_mb(worker)
        beyond = ""
        if done > first_step[0]:
            slope = (rss - first_step[1]) * 1024 / (done - first_step[0])
            beyond = f", {slope:.1f} KB per waiting registration past the first {first_step[0]}"
        print(
            f"worker RSS with {args.memory} registrations waiting for their e-mail click: "
            f"{rss:.0f} MB (goal <= {MEMORY_GOAL_MB} MB); idle {idle:.0f} MB, cache {cache}"
            f"{beyond}; took {time.monotonic() - started:.0f} s",
            flush=True,
        )


# --- bounded tables -----------------------------------------------------------------------------


def counted_tables():
    """Every swept table (a table that grows with traffic and is not swept would be added
    here, marked *, so its growth is not hidden)."""
    from processes.cleanup.activities import ENDS

    return {str(table): key.class_ for table, (key, _) in ENDS.items()}


def row_counts(factory) -> dict[str, int]:
    from sqlalchemy import func, select

    with factory() as session:
        return {
            name: session.scalar(select(func.count()).select_from(model))
            for name, model in counted_tables().items()
        }


def age_everything(factory) -> None:
    """Forty days pass: every swept ending moves back by AGE (rate-limit windows are epoch seconds)."""
    from sqlalchemy import select

    from processes.cleanup.activities import ENDS, EPOCH_SECONDS

    with factory() as session:
        for table, (key, ends) in ENDS.items():
            model = key.class_
            shift = AGE.total_seconds() if table in EPOCH_SECONDS else AGE
            for row in session.scalars(select(model).where(ends.is_not(None))):
                setattr(row, ends.key, getattr(row, ends.key) - shift)
        session.commit()


def sweep(stack: Stack, label: str) -> dict:
    from processes.cleanup.vocabulary import CleanupReport, CleanupRequest
    from temporal.client import connect

    async def run():
        client = await connect(stack.settings)
        return await client.execute_workflow(
            "CleanupWorkflow",
            CleanupRequest(),
            id=f"cleanup/bench/{label}",
            task_queue=stack.settings.task_queue,
            result_type=CleanupReport,
        )

    return asyncio.run(run()).deleted


def token_client(factory):
    from portal.models import OidcClient
    from portal.oidc import add_client

    with factory() as session:
        client = add_client(
            session, "bench-public", portal="patient", redirect_uris=[REDIRECT], public=True
        ).client
        session.commit()
        return session.get(OidcClient, client.id).id, client.client_id


def exchange_codes(stack: Stack, factory, client, user_ids: list[int], first: int) -> int:
    """A code per user minted as the authorize endpoint stores it, exchanged over HTTP."""
    from portal.models import OidcAuthorizationCode, utcnow
    from portal.tokens import new_token, token_hash

    client_pk, client_id = client
    pairs = []
    with factory() as session:
        for user_id in user_ids:
            raw, verifier = new_token(), secrets.token_urlsafe(48)
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            session.add(
                OidcAuthorizationCode(
                    code_hash=token_hash(raw),
                    client_pk=client_pk,
                    user_id=user_id,
                    portal="patient",
                    redirect_uri=REDIRECT,
                    scope="openid profile email offline_access",
                    nonce="n",
                    code_challenge=challenge.rstrip(b"=").decode(),
                    auth_time=utcnow(),
                    expires_at=utcnow() + timedelta(seconds=60),
                )
            )
            pairs.append((raw, verifier))
        session.commit()
    exchanged = 0
    for i, (raw, verifier) in enumerate(pairs):
        answer = requests.post(
            f"{stack.base}/patient/token",
            data={
                "grant_type": "authorization_code",
                "code": raw,
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
                "client_id": client_id,
            },
            headers=client_headers(first + i),
            timeout=30,
        )
        exchanged += answer.status_code == 200
    return exchanged


def logins(stack: Stack, numbers: list[int], first: int) -> int:
    done = 0
    for i, n in enumerate(numbers):
        session = requests.Session()
        session.headers.update(client_headers(first + i))
        token = csrf(session, f"{stack.base}/patient/login")
        answer = session.post(
            f"{stack.base}/patient/login",
            data={"csrf_token": token, "username": f"bench{n}", "password": PASSWORD},
            allow_redirects=False,
            timeout=30,
        )
        done += answer.status_code == 302
    return done


def bench_tables(args) -> None:
    from sqlalchemy import select

    from portal.models import User

    env = {
        "ACCESO_ARGON2_TIME_COST": "1",
        "ACCESO_ARGON2_MEMORY_KIB": "8192",
        "ACCESO_TRUSTED_PROXIES": "127.0.0.1",
    }
    per = args.per_round
    with bench_stack(args.postgres, env) as stack:
        factory = session_factory(stack)
        import_patients(stack, 0, per * args.rounds)
        client = token_client(factory)
        names = list(counted_tables())
        print(f"{per} registrations, {per} logins, {per} code exchanges a round, each from its")
        print("own client address; rows aged 40 days, then a cleanup sweep (grace 7 days)")
        print("rows after each round's activity / after its sweep:")
        print("round  " + "  ".join(names))
        for round_ in range(args.rounds):
            first = round_ * per
            lifecycles(stack, first, per, concurrency=8)
            wait_for(
                lambda first=first: stack.catcher.total() >= 2 * (first + per),
                "the 'user confirmed' e-mails",
                120,
            )
            with factory() as session:
                users = list(
                    session.scalars(
                        select(User.id).where(
                            User.username.in_([f"bench{n}" for n in range(first, first + per)])
                        )
                    )
                )
            logged_in = logins(stack, list(range(first, first + per)), 10_000 + first)
            exchanged = exchange_codes(stack, factory, client, users, 20_000 + first)
            if logged_in != per or exchanged != per:
                raise SystemExit(f"round {round_}: {logged_in} logins, {exchanged} exchanges")
            after = row_counts(factory)
            age_everything(factory)
            sweep(stack, f"round-{round_}")
            swept = row_counts(factory)
            print(
                f"{round_ + 1:>5}  "
                + "  ".join(f"{f'{after[name]} / {swept[name]}':^{len(name)}}" for name in names),
                flush=True,
            )


# --- one worker against two ---------------------------------------------------------------------


def bench_scale(args) -> None:
    env = {
        "ACCESO_ARGON2_TIME_COST": "1",
        "ACCESO_ARGON2_MEMORY_KIB": "8192",
        "ACCESO_TRUSTED_PROXIES": "127.0.0.1",
    }
    count = args.lifecycles
    with bench_stack(args.postgres, env) as stack:
        import_patients(stack, 0, 2 * count + 10)
        lifecycles(stack, 0, 10, concurrency=4)
        rates = []
        extra = None
        try:
            for workers, first in ((1, 10), (2, 10 + count)):
                if workers == 2:
                    extra = subprocess.Popen(
                        [sys.executable, "-m", "worker"],
                        cwd=ROOT,
                        env={
                            key: value
                            for key, value in stack.worker_env().items()
                            if key != "ACCESO_WORKER_METRICS_ADDRESS"
                        },
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                    pid = extra.pid
                    wait_for(lambda pid=pid: quiet(pid, 2), "the second worker to start", 60, 0)
                started = time.perf_counter()
                lifecycles(stack, first, count, concurrency=args.concurrency)
                rates.append(count / (time.perf_counter() - started))
                print(f"{workers} worker(s): {rates[-1]:.1f} lifecycles/s", flush=True)
        finally:
            if extra is not None:
                os.killpg(extra.pid, signal.SIGTERM)
                extra.wait(30)
        print(
            f"two workers against one: {rates[1] / rates[0]:.2f}x on {os.cpu_count()} cores "
            "(shared with Temporal, PostgreSQL or SQLite, and the web tier)",
            flush=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--memory", type=int, metavar="N", help="registrations left waiting")
    parser.add_argument("--cache", type=int, help="ACCESO_WORKER_MAX_CACHED_WORKFLOWS to run with")
    parser.add_argument("--tables", action="store_true")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--per-round", type=int, default=20)
    parser.add_argument("--scale", action="store_true")
    parser.add_argument("--lifecycles", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16)
    add_postgres_option(parser)
    args = parser.parse_args()
    if not (args.memory or args.tables or args.scale):
        parser.error("choose --memory N, --tables or --scale")
    if args.memory:
        bench_memory(args)
    if args.tables:
        bench_tables(args)
    if args.scale:
        bench_scale(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
