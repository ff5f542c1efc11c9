"""Benchmark the front door: the token endpoint, userinfo, introspection and sign-in, per
CPU-second of the web tier.

Starts one gunicorn worker (4 threads) of the web app on a free port against a temporary SQLite
database (or a PostgreSQL URL), with no Temporal at all: none of these requests may need it.
Every figure is requests per CPU-second of that worker, read from /proc, so it holds whatever
else the machine is doing; the wall-clock rate and p50/p99 are printed beside it.

- code exchange, confidential (client_secret_basic) and public (PKCE only): authorization codes
  are minted straight into the database beforehand, exactly as the authorize endpoint stores
  them, so only the exchange is measured;
- refresh with rotation, confidential: each caller follows its own chain of refresh tokens;
- userinfo and introspection (a confidential resource server) with live access tokens;
- sign-in: the login form's POST, against argon2id verifications per CPU-second measured in
  this process in the same run with as many at once as there are login callers, since a login
  can be no cheaper than its hash; the verifications are measured before, between and after
  four parts of the login phase, so a change in the machine's load weighs on both alike.

Rate limits stay on (their counting is part of a request's cost) with ceilings the load never
reaches. Run alone:  .venv/bin/python bench/front_door.py [--seconds 10]; bench/run.py runs it
with the rest.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REDIRECT = "http://rp.bench/callback"
PASSWORD = "Bench12345Clave"
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
LOGIN_SLICES = 4
"""The login phase runs in this many parts with the argon2id reference before, between and
after them, so a change in the shared machine's load weighs on both alike."""
UNREACHED = "1000000/minute"
"""A rate limit the load never reaches: the counting is measured, never a refusal."""


@dataclass(frozen=True)
class Goal:
    """One figure the issue asks for: its name, the floor, and the unit it is printed in."""

    name: str
    floor: float
    unit: str


GOALS = {
    "refresh": Goal("refresh grant with rotation, confidential", 240, "per CPU-second"),
    "code_confidential": Goal("code exchange, confidential", 200, "per CPU-second"),
    "code_public": Goal("code exchange, public (PKCE)", 200, "per CPU-second"),
    "userinfo": Goal("userinfo", 800, "per CPU-second"),
    "introspection": Goal("introspection", 800, "per CPU-second"),
    "login_ratio": Goal("logins / argon2id verifications, per CPU-second", 0.9, "ratio"),
}


@dataclass
class Figure:
    """What one measured phase gave."""

    key: str
    per_cpu_second: float
    per_second: float
    done: int
    errors: int
    p50_ms: float
    p99_ms: float
    note: str = ""
    extra: dict = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class Setup:
    users: list[tuple[int, str]]
    confidential: tuple[int, str, str]
    public: tuple[int, str, None]


def setup(database_url: str, data_dir: Path, logins: int) -> Setup:
    """Schema, a patient account per login caller, and a confidential and a public client
    whose secret is hashed with the key the web worker will derive from the same data dir."""
    from portal.db import make_engine, make_session_factory, migrate
    from portal.models import User, utcnow
    from portal.oidc import add_client
    from portal.passwords import hash_password
    from portal.server_keys import client_secret_key
    from portal.settings import Settings

    migrate(database_url)
    key = client_secret_key(Settings(data_dir=data_dir, database_url=database_url, dev_mode=True))
    engine = make_engine(database_url)
    tag = secrets.token_hex(3)
    with make_session_factory(engine)() as session:
        users = []
        for n in range(max(1, logins)):
            user = User(
                portal="patient",
                username=f"bench{tag}{n}",
                email=f"bench{tag}{n}@example.org",
                full_name="Bench Patient",
                password_hash=hash_password(PASSWORD),
                status="active",
                role="patient",
                activated_at=utcnow(),
            )
            session.add(user)
            users.append(user)
        confidential = add_client(
            session,
            f"bench-c-{tag}",
            portal="patient",
            redirect_uris=[REDIRECT],
            secret_key=key,
        )
        public = add_client(
            session, f"bench-p-{tag}", portal="patient", redirect_uris=[REDIRECT], public=True
        )
        session.commit()
        made = Setup(
            [(user.id, user.username) for user in users],
            (confidential.client.id, confidential.client.client_id, confidential.secret),
            (public.client.id, public.client.client_id, None),
        )
    engine.dispose()
    return made


def mint_codes(database_url: str, client_pk: int, user_id: int, count: int):
    """Codes as the authorize endpoint stores them; returns (raw code, verifier) pairs."""
    from portal.db import make_engine, make_session_factory
    from portal.models import OidcAuthorizationCode, utcnow
    from portal.tokens import new_token, token_hash

    pairs = []
    engine = make_engine(database_url)
    with make_session_factory(engine)() as session:
        for _ in range(count):
            raw = new_token()
            verifier, challenge = pkce_pair()
            session.add(
                OidcAuthorizationCode(
                    code_hash=token_hash(raw),
                    client_pk=client_pk,
                    user_id=user_id,
                    portal="patient",
                    redirect_uri=REDIRECT,
                    scope="openid profile email",
                    nonce="n",
                    code_challenge=challenge,
                    auth_time=utcnow(),
                    expires_at=utcnow() + timedelta(minutes=30),
                )
            )
            pairs.append((raw, verifier))
        session.commit()
    engine.dispose()
    return pairs


def cpu_seconds(master_pid: int) -> float:
    """CPU time (user + system) of the gunicorn worker(s) so far, from /proc."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    ticks = 0
    for child in children:
        fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def closed_loop(
    callers: list[Callable[[], bool]], seconds: float, limit: int | None = None
) -> tuple[list[float], int, float]:
    """Each caller repeats its request back to back for `seconds` (or until `limit` in all);
    returns the successful latencies, the errors and the wall time."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def run(call: Callable[[], bool]) -> None:
        while time.monotonic() < stop_at:
            with lock:
                if limit is not None and len(latencies) + errors[0] >= limit:
                    return
            started = time.perf_counter()
            try:
                ok = call()
            except (requests.RequestException, StopIteration):
                ok = False
            elapsed = time.perf_counter() - started
            with lock:
                if ok:
                    latencies.append(elapsed)
                else:
                    errors[0] += 1

    begun = time.monotonic()
    threads = [threading.Thread(target=run, args=(call,)) for call in callers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(latencies), errors[0], time.monotonic() - begun


def argon2_verifications(seconds: float, threads: int) -> tuple[int, float]:
    """argon2id verifications and the CPU-seconds of this process they took, at the parameters
    the web uses, with as many running at once as the login phase has callers: parallel
    verifications share the cores' caches and memory bandwidth (19 MiB each), so each costs
    more CPU than alone."""
    from portal.passwords import hash_password, verify_password

    stored = hash_password(PASSWORD)
    verify_password(stored, PASSWORD)
    deadline = time.monotonic() + seconds
    counts = [0] * threads

    def verify(slot: int) -> None:
        while time.monotonic() < deadline or counts[slot] < 2:
            verify_password(stored, PASSWORD)
            counts[slot] += 1

    started = time.process_time()
    workers = [threading.Thread(target=verify, args=(slot,)) for slot in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts), time.process_time() - started


class Web:
    """One gunicorn worker of the web app on a free port, no Temporal."""

    def __init__(self, data_dir: Path, database_url: str, threads: int) -> None:
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        passed = ("ACCESO_ARGON2_TIME_COST", "ACCESO_ARGON2_MEMORY_KIB")
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("ACCESO_") or k in passed},
            "ACCESO_DATA_DIR": str(data_dir),
            "ACCESO_DATABASE_URL": database_url,
            "ACCESO_DEV_MODE": "1",
            "ACCESO_PUBLIC_BASE_URL": self.base,
            "ACCESO_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
            "ACCESO_RATE_LIMIT_TOKEN": UNREACHED,
            "ACCESO_RATE_LIMIT_SIGN_IN": UNREACHED,
        }
        argv = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}"]
        argv += ["--workers", "1", "--threads", str(threads), "--no-control-socket"]
        self.log = open(data_dir / "web.log", "w")  # noqa: SIM115 (lives as long as the worker)
        self.process = subprocess.Popen(
            [*argv, "web:create_app()"],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{self.base}/patient/jwks", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"the web worker did not start; see {data_dir / 'web.log'}")
            time.sleep(0.2)

    def cpu(self) -> float:
        return cpu_seconds(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self.log.close()


def measure(
    web: Web,
    key: str,
    callers,
    seconds: float,
    warm: list | None = None,
    limit=None,
    note="",
    between: Callable[[], None] | None = None,
    slices: int = 1,
) -> Figure:
    """Warms up on `warm` callers (a few requests), then runs `callers` for `seconds`, in
    `slices` equal parts with `between()` run before, between and after them (the worker's CPU
    is read around each part only)."""
    if warm:
        closed_loop(warm, 0.5, limit=max(4, len(warm)))
    latencies: list[float] = []
    errors = 0
    wall = cpu = 0.0
    for _ in range(slices):
        if between is not None:
            between()
        before = web.cpu()
        done, failed, took = closed_loop(callers, seconds / slices, limit)
        cpu += web.cpu() - before
        latencies += done
        errors += failed
        wall += took
    if between is not None:
        between()
    latencies.sort()
    cpu = max(cpu, 1e-9)

    def pick(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    return Figure(
        key,
        per_cpu_second=len(latencies) / cpu,
        per_second=len(latencies) / wall,
        done=len(latencies),
        errors=errors,
        p50_ms=statistics.median(latencies) * 1000 if latencies else 0.0,
        p99_ms=pick(0.99) if latencies else 0.0,
        note=note,
    )


class Shared:
    """An iterator several caller threads take from."""

    def __init__(self, items) -> None:
        self.items = iter(items)
        self.lock = threading.Lock()

    def __iter__(self):
        return self

    def __next__(self):
        with self.lock:
            return next(self.items)


def run(seconds: float = 10, concurrency: int = 4, database_url: str | None = None):
    """Every front-door figure, measured on a worker started for it, in GOALS order; and the
    floor: GET /healthz, which touches nothing, per CPU-second (what Flask and gunicorn cost)."""
    with tempfile.TemporaryDirectory(prefix="acceso-front-door-") as tmp:
        data_dir = Path(tmp)
        database_url = database_url or f"sqlite:///{data_dir}/acceso.db"
        made = setup(database_url, data_dir, concurrency)
        web = Web(data_dir, database_url, threads=concurrency)
        try:
            return _phases(web, made, database_url, seconds, concurrency)
        finally:
            web.stop()


def _phases(web: Web, made: Setup, database_url: str, seconds: float, concurrency: int):
    token_url = f"{web.base}/patient/token"
    user_id = made.users[0][0]
    figures: dict[str, Figure] = {}
    # Enough codes for the fastest plausible rate; a caller out of codes stops early.
    budget = max(50, int(seconds * 600))

    def exchange(client, codes):
        _, client_id, secret = client
        session = requests.Session()
        auth = (client_id, secret) if secret else None

        def call() -> bool:
            raw, verifier = next(codes)
            data = {
                "grant_type": "authorization_code",
                "code": raw,
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
            }
            if not secret:
                data["client_id"] = client_id
            answer = session.post(token_url, data=data, auth=auth, timeout=30)
            return answer.status_code == 200 and "id_token" in answer.json()

        return call

    for key, client in (("code_confidential", made.confidential), ("code_public", made.public)):
        codes = Shared(mint_codes(database_url, client[0], user_id, budget + 20))
        callers = [exchange(client, codes) for _ in range(concurrency)]
        figures[key] = measure(web, key, callers, seconds, warm=callers, limit=budget)

    # Live tokens for refresh, userinfo and introspection: one real exchange per caller.
    confidential = made.confidential
    auth = (confidential[1], confidential[2])
    chains = []
    for raw, verifier in mint_codes(database_url, confidential[0], user_id, concurrency):
        answer = requests.post(
            token_url,
            data={
                "grant_type": "authorization_code",
                "code": raw,
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
            },
            auth=auth,
            timeout=30,
        )
        answer.raise_for_status()
        chains.append(answer.json())

    def refresher(chain: dict):
        session = requests.Session()

        def call() -> bool:
            answer = session.post(
                token_url,
                data={"grant_type": "refresh_token", "refresh_token": chain["refresh_token"]},
                auth=auth,
                timeout=30,
            )
            if answer.status_code != 200:
                return False
            chain.update(answer.json())
            return True

        return call

    refreshers = [refresher(chain) for chain in chains]
    figures["refresh"] = measure(web, "refresh", refreshers, seconds, warm=refreshers)
    for call in refreshers:
        call()
    access = [chain["access_token"] for chain in chains]

    def userinfo(token: str):
        session = requests.Session()
        headers = {"Authorization": f"Bearer {token}"}

        def call() -> bool:
            answer = session.get(f"{web.base}/patient/userinfo", headers=headers, timeout=30)
            return answer.status_code == 200 and "sub" in answer.json()

        return call

    def introspection(token: str):
        session = requests.Session()

        def call() -> bool:
            answer = session.post(
                f"{web.base}/patient/introspect",
                data={"token": token},
                auth=auth,
                timeout=30,
            )
            return answer.status_code == 200 and answer.json().get("active") is True

        return call

    callers = [userinfo(token) for token in access]
    figures["userinfo"] = measure(web, "userinfo", callers, seconds, warm=callers)
    callers = [introspection(token) for token in access]
    figures["introspection"] = measure(web, "introspection", callers, seconds, warm=callers)

    def probe():
        session = requests.Session()
        return lambda: session.get(f"{web.base}/healthz", timeout=30).status_code == 200

    callers = [probe() for _ in range(concurrency)]
    floor = measure(web, "healthz", callers, seconds, warm=callers)
    figures["floor"] = floor

    def signer(username: str):
        """A person at a browser that has signed in before (it has its device cookie) but is
        signed out: every POST carries the signed-out session of the login page it came from."""
        session = requests.Session()
        page = session.get(f"{web.base}/patient/login", timeout=30)
        token = CSRF.search(page.text).group(1)
        signed_out = dict(session.cookies)

        def call() -> bool:
            answer = session.post(
                f"{web.base}/patient/login",
                data={"csrf_token": token, "username": username, "password": PASSWORD},
                allow_redirects=False,
                timeout=30,
            )
            device = session.cookies.get("acceso_device")
            session.cookies.clear()
            for name, value in {**signed_out, "acceso_device": device}.items():
                if value:
                    session.cookies.set(name, value)
            return answer.status_code == 302

        return call

    callers = [signer(username) for _, username in made.users]
    references: list[tuple[int, float]] = []
    slices = LOGIN_SLICES

    def reference() -> None:
        references.append(argon2_verifications(min(seconds, 5) / (slices + 1), len(made.users)))

    logins = measure(web, "login", callers, seconds, warm=callers, between=reference, slices=slices)
    verifications = sum(n for n, _ in references) / sum(cpu for _, cpu in references)
    figures["login_ratio"] = Figure(
        "login_ratio",
        per_cpu_second=logins.per_cpu_second / verifications,
        per_second=logins.per_second,
        done=logins.done,
        errors=logins.errors,
        p50_ms=logins.p50_ms,
        p99_ms=logins.p99_ms,
        note=f"{logins.per_cpu_second:.1f} logins vs {verifications:.1f} argon2id verifications",
        extra={"logins_per_cpu_second": logins.per_cpu_second, "argon2": verifications},
    )
    return [figures[key] for key in GOALS], figures["floor"]


def report(figures: list[Figure]) -> list[str]:
    """One line per figure: measured against its goal, met or not."""
    lines = []
    for figure in figures:
        goal = GOALS[figure.key]
        met = "met" if figure.per_cpu_second >= goal.floor else "NOT MET"
        value = (
            f"{figure.per_cpu_second:.2f}"
            if goal.unit == "ratio"
            else f"{figure.per_cpu_second:.0f}"
        )
        floor = f"{goal.floor:g}"
        detail = figure.note or (
            f"{figure.per_second:.0f}/s wall clock, p50 {figure.p50_ms:.0f} ms,"
            f" p99 {figure.p99_ms:.0f} ms"
        )
        lines.append(
            f"{goal.name}: {value} {goal.unit} (goal >= {floor}) {met}; {detail};"
            f" {figure.done} done, {figure.errors} errors"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10, help="per measured phase")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--postgres", metavar="URL", help="application database URL")
    args = parser.parse_args()
    print("one gunicorn worker (4 threads), no Temporal running at all", flush=True)
    figures, floor = run(args.seconds, args.concurrency, args.postgres)
    for line in report(figures):
        print(line, flush=True)
    print(f"for scale, GET /healthz (no database): {floor.per_cpu_second:.0f} per CPU-second")
    return 0


if __name__ == "__main__":
    sys.exit(main())
