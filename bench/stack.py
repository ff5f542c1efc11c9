"""What the benchmarks that need the whole product share: its own `acceso dev` stack (temporary
data dir, every port free, e-mail to an SMTP server the script runs), applicants driven through
the patient portal, and CPU and memory read from /proc.

Not a benchmark itself: bench/run.py, bench/registration.py and bench/capacity.py use it.
"""

from __future__ import annotations

import argparse
import email
import os
import queue
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from email.policy import default as default_policy
from pathlib import Path

import requests
from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "Ruta7492Lenta"
"""Not the username nor a common password, or registration refuses it."""
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
FORM_KEY = re.compile(r'name="form_key"[^>]*value="([^"]+)"')
LINK = re.compile(r"https?://\S+/confirm/\S+")
CONFIRMED_SUBJECT = "Usuario confirmado"
CHEAP_ARGON2 = {"ACCESO_ARGON2_TIME_COST": "1", "ACCESO_ARGON2_MEMORY_KIB": "8192"}
"""For the figures that are not about CPU (memory, tables, scale-out): set-up in less time."""


@dataclass
class Verdict:
    """One figure beside its goal; `met` is None for a figure printed for scale only."""

    text: str
    met: bool | None

    def line(self) -> str:
        if self.met is None:
            return self.text
        return f"{self.text} {'met' if self.met else 'NOT MET'}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def load_average() -> str:
    return "load average " + " ".join(f"{load:.1f}" for load in os.getloadavg())


class Catcher:
    """An SMTP server's handler: hands each confirmation link to whoever waits for that address,
    notes when each address's "user confirmed" e-mail arrives, and counts every message."""

    def __init__(self) -> None:
        self.links: dict[str, queue.Queue] = {}
        self.received: dict[str, int] = {}
        self.confirmed: dict[str, list[float]] = {}
        self.arrived = threading.Condition()

    def box(self, address: str) -> queue.Queue:
        with self.arrived:
            return self.links.setdefault(address.lower(), queue.Queue())

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook)
        received = time.perf_counter()
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        addresses = [rcpt.lower() for rcpt in envelope.rcpt_tos]
        with self.arrived:
            for address in addresses:
                self.received[address] = self.received.get(address, 0) + 1
            if CONFIRMED_SUBJECT in str(message["Subject"]):
                for address in addresses:
                    self.confirmed.setdefault(address, []).append(received)
            self.arrived.notify_all()
        found = LINK.search(message.get_body(preferencelist=("plain",)).get_content())
        if found:
            for address in addresses:
                self.box(address).put(found.group(0))
        return "250 OK"

    def total(self) -> int:
        with self.arrived:
            return sum(self.received.values())

    def wait_confirmed(self, address: str, timeout: float) -> float:
        """When the "user confirmed" e-mail for `address` arrived (waits for it)."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while not self.confirmed.get(address.lower()):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no 'user confirmed' e-mail for {address}")
                self.arrived.wait(left)
            return self.confirmed[address.lower()][0]


def add_postgres_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="application database on a throwaway PostgreSQL 15 cluster instead of SQLite",
    )


def start_postgres():
    """A throwaway PostgreSQL 15 cluster (the test suite's); the caller stops it and takes
    databases from it with `create_database()`."""
    sys.path.insert(0, str(ROOT))
    from tests.fixtures.postgres import PostgresCluster

    cluster = PostgresCluster()
    cluster.start()
    return cluster


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


def ready(base: str) -> bool:
    try:
        return requests.get(f"{base}/readyz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


PORT_OPTIONS = (
    "--temporal-port",
    "--ui-port",
    "--worker-metrics-port",
    "--rp-port",
    "--fhir-port",
    "--smart-port",
)


class Stack:
    """`acceso dev` on a temporary data dir and free ports only (so it runs beside anyone
    else's stack), e-mailing a Catcher; its database is `database_url` when given.

    Each applicant comes from an address of its own (X-Forwarded-For from a trusted proxy), so
    the per-address rate limits count as they would in the field, and refuse no one. `root` is
    the checkout (with its own .venv) whose code the stack runs: this one unless comparing."""

    def __init__(
        self,
        database_url: str | None = None,
        env: dict[str, str] | None = None,
        root: Path = ROOT,
    ):
        self.catcher = Catcher()
        smtp_port = free_port()
        self.controller = Controller(self.catcher, hostname="127.0.0.1", port=smtp_port)
        self.controller.start()
        self.data_dir = Path(tempfile.mkdtemp(prefix="acceso-bench-"))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ACCESO_")}
        self.env["ACCESO_TRUSTED_PROXIES"] = "127.0.0.1"
        if database_url:
            self.env["ACCESO_DATABASE_URL"] = database_url
        self.env.update(env or {})
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.temporal_address = f"127.0.0.1:{free_port()}"
        acceso = str(root / ".venv" / "bin" / "acceso")
        command = [acceso, "dev", "--data-dir", str(self.data_dir), "--port", str(port)]
        command += ["--temporal-port", self.temporal_address.rsplit(":", 1)[1]]
        for option in PORT_OPTIONS[1:]:
            command += [option, str(free_port())]
        command += ["--smtp", f"127.0.0.1:{smtp_port}"]
        self.log = self.data_dir / "bench-stack.log"
        self.process = subprocess.Popen(
            command,
            cwd=root,
            env=self.env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for(lambda: self.process.poll() is not None or ready(self.base), "the stack", 180)
            if self.process.poll() is not None:
                raise SystemExit(f"acceso dev exited; see {self.log}")
        except BaseException:
            self.stop()
            raise

    @property
    def settings(self):
        from portal.settings import Settings

        return Settings(
            data_dir=self.data_dir,
            dev_mode=True,
            temporal_address=self.temporal_address,
            database_url=self.env.get("ACCESO_DATABASE_URL", ""),
        )

    def session_factory(self):
        from portal.db import make_engine, make_session_factory

        return make_session_factory(make_engine(self.settings.database_url))

    def import_patients(self, first: int, count: int, prefix: str = "bench") -> None:
        """Clinical records for the applicants `prefix<first>` ... to register."""
        from portal.models import ClinicalRecord

        with self.session_factory()() as session:
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

    def children(self) -> list[int]:
        return children(self.process.pid)

    def worker_pids(self) -> list[int]:
        return [pid for pid in self.children() if b"-m\0worker" in cmdline(pid)]

    def worker_env(self) -> dict[str, str]:
        environ = Path(f"/proc/{self.worker_pids()[0]}/environ").read_bytes().decode()
        return dict(item.split("=", 1) for item in environ.split("\0") if "=" in item)

    def stop(self) -> None:
        if getattr(self, "process", None) is not None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        self.controller.stop()


@contextmanager
def running_stack(database_url: str | None = None, env: dict[str, str] | None = None):
    stack = Stack(database_url, env)
    try:
        yield stack
    finally:
        stack.stop()


# --- applicants ---------------------------------------------------------------------------------


def client_session(n: int) -> requests.Session:
    """A browser of its own, from a client address of its own."""
    session = requests.Session()
    session.headers["X-Forwarded-For"] = f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"
    return session


def csrf(session: requests.Session, url: str) -> str:
    return CSRF.search(session.get(url, timeout=10).text).group(1)


def register(base: str, n: int, session: requests.Session, prefix: str = "bench") -> float:
    """Submits applicant n's registration form; returns the submit's latency in seconds."""
    page = session.get(f"{base}/patient/register", timeout=10).text
    form_key = FORM_KEY.search(page)
    started = time.perf_counter()
    response = session.post(
        f"{base}/patient/register",
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
    elapsed = time.perf_counter() - started
    if response.status_code != 302:
        errors = re.findall(r'class="[^"]*error[^"]*"[^>]*>([^<]+)', response.text)
        raise RuntimeError(f"registration {n} answered {response.status_code}: {errors}")
    return elapsed


@dataclass
class Lifecycle:
    """What one applicant's lifecycle took: the submit, and the button press to the arrival of
    the "user confirmed" e-mail, in seconds."""

    submit: float
    confirmed: float


def lifecycle(stack: Stack, n: int, prefix: str = "bench") -> Lifecycle:
    """Submit, wait for the link, open its page and press its button (only that POST confirms),
    wait for the "user confirmed" e-mail."""
    address = f"{prefix}{n}@example.org"
    session = client_session(n)
    submitted = register(stack.base, n, session, prefix)
    link = stack.catcher.box(address).get(timeout=120)
    link = stack.base + "/" + link.split("/", 3)[3]
    token = csrf(session, link)
    clicked = time.perf_counter()
    answer = session.post(link, data={"csrf_token": token}, allow_redirects=False, timeout=30)
    if answer.status_code != 302:
        raise RuntimeError(f"confirmation {n} answered {answer.status_code}")
    arrived = stack.catcher.wait_confirmed(address, timeout=120)
    return Lifecycle(submitted, arrived - clicked)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def ms(values: list[float], p: float) -> float:
    return (statistics.median(values) if p == 50 else percentile(values, p)) * 1000


# --- /proc --------------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    found = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return found


def tree(pid: int) -> list[int]:
    """`pid` and everything it started, however deep."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo += children(current)
    return pids


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def cpu_seconds(pid: int, reaped: bool = False) -> float:
    """utime + stime of `pid`'s tree (with `reaped`, also of children that ended and were
    waited for: a gunicorn worker that was replaced still counts)."""
    ticks = 0
    for member in tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += sum(int(f) for f in fields[11 : 15 if reaped else 13])
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """VmRSS of `pid` and everything it started, in MB."""
    total = 0
    for member in tree(pid):
        try:
            lines = Path(f"/proc/{member}/status").read_text().splitlines()
        except OSError:
            continue
        total += sum(int(line.split()[1]) for line in lines if line.startswith("VmRSS:"))
    return total / 1024
