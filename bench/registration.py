"""Benchmark one patient's registration lifecycle: its CPU, its history and its latency.

A lifecycle is what an applicant does on the patient portal: submit the form, receive the
confirmation e-mail, open the link and press its button, receive the "user confirmed" e-mail.
This script starts its own `acceso dev` stack (temporary data dir, free ports, e-mail to an SMTP
server it runs itself), loads clinical records, then prints, each beside its goal (issue 23):

1. CPU milliseconds per lifecycle of the web tier (gunicorn and its workers), the worker and the
   Temporal dev server, read from /proc (utime + stime of each process tree) around a closed
   loop of lifecycles, so the figure holds whatever else the machine is doing;
2. the number of events in one finished lifecycle's workflow history;
3. at a fixed offered rate (open loop): the submit's p50/p99, and the p50/p99 from the press of
   the confirmation button to the arrival of the "user confirmed" e-mail.

Run by hand, not by the test suite:  .venv/bin/python bench/registration.py [--lifecycles 200]
"""

from __future__ import annotations

import argparse
import asyncio
import email
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.policy import default as default_policy
from pathlib import Path

import requests
from aiosmtpd.controller import Controller

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import (  # noqa: E402 (bench/ is a folder of scripts, not a package)
    CSRF,
    ROOT,
    LinkCatcher,
    add_postgres_option,
    free_port,
    import_patients,
    percentile,
    register,
    start_postgres,
)

GOAL_CPU_MS = 70
GOAL_EVENTS = 14
GOAL_SUBMIT_P99_MS = 150
GOAL_CONFIRMED_P99_MS = 1000
CONFIRMED_SUBJECT = "Usuario confirmado"
TIERS = ("web", "worker", "temporal")


class LifecycleCatcher(LinkCatcher):
    """Also notes when each address's "user confirmed" e-mail arrives, and how many came."""

    def __init__(self) -> None:
        super().__init__()
        self.confirmed: dict[str, list[float]] = {}
        self.arrived = threading.Condition()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook)
        received = time.perf_counter()
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        if CONFIRMED_SUBJECT in str(message["Subject"]):
            with self.arrived:
                for rcpt in envelope.rcpt_tos:
                    self.confirmed.setdefault(rcpt.lower(), []).append(received)
                self.arrived.notify_all()
            return "250 OK"
        return await super().handle_DATA(server, session, envelope)

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


@dataclass
class Stack:
    process: subprocess.Popen
    base: str
    temporal_address: str
    data_dir: Path


def start_stack(data_dir: Path, smtp_port: int) -> Stack:
    """`acceso dev` on free ports only, so it runs beside anyone else's stack."""
    ports = {
        name: free_port()
        for name in (
            "port",
            "temporal-port",
            "ui-port",
            "worker-metrics-port",
            "rp-port",
            "fhir-port",
            "smart-port",
        )
    }
    command = [str(ROOT / ".venv" / "bin" / "acceso"), "dev", "--data-dir", str(data_dir)]
    for name, port in ports.items():
        command += [f"--{name}", str(port)]
    command += ["--smtp", f"127.0.0.1:{smtp_port}"]
    log = open(data_dir / "bench-stack.log", "w")  # noqa: SIM115 (lives as long as the stack)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCESO_")}
    env.update({k: v for k, v in os.environ.items() if k == "ACCESO_DATABASE_URL"})
    # Each applicant comes from an address of its own (X-Forwarded-For from a trusted proxy),
    # so the per-address rate limits count as they would in the field, and refuse no one.
    env["ACCESO_TRUSTED_PROXIES"] = "127.0.0.1"
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
    )
    base = f"http://127.0.0.1:{ports['port']}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{base}/readyz", timeout=2).status_code == 200:
                return Stack(process, base, f"127.0.0.1:{ports['temporal-port']}", data_dir)
        except requests.RequestException:
            pass
        if process.poll() is not None:
            raise SystemExit(f"acceso dev exited; see {data_dir / 'bench-stack.log'}")
        time.sleep(0.5)
    raise SystemExit("stack did not become ready in 120 s")


def _children(pid: int) -> list[int]:
    try:
        found = []
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
        return found
    except OSError:
        return []


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo += _children(current)
    return pids


def _tier(pid: int) -> str | None:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    words = [a.decode(errors="replace") for a in argv]
    if any(w.endswith("temporal") for w in words[:1]) and "start-dev" in words:
        return "temporal"
    if "worker" in words and "-m" in words:
        return "worker"
    if any("gunicorn" in w for w in words):
        return "web"
    return None


def _ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    # utime and stime, plus cutime and cstime: a gunicorn worker that was replaced still counts.
    return sum(int(f) for f in fields[11:15])


def cpu_by_tier(stack_pid: int) -> dict[str, float]:
    """CPU seconds used so far by each tier's process tree (a tier's children count with it)."""
    used = dict.fromkeys(TIERS, 0.0)
    for child in _children(stack_pid):
        tier = _tier(child)
        if tier is None:
            continue
        used[tier] += sum(_ticks(pid) for pid in _tree(child)) / os.sysconf("SC_CLK_TCK")
    return used


@dataclass
class Timings:
    submits: list[float] = field(default_factory=list)
    confirmed: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def lifecycle(base: str, catcher: LifecycleCatcher, n: int, timings: Timings) -> None:
    """Submit, wait for the link, open its page and press its button, wait for the notice."""
    address = f"bench{n}@example.org"
    try:
        session = requests.Session()
        session.headers["X-Forwarded-For"] = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
        submitted = register(base, n, session)
        link = catcher.box(address).get(timeout=120)
        link = base + "/" + link.split("/", 3)[3]
        page = session.get(link, timeout=30)
        token = CSRF.search(page.text).group(1)
        clicked = time.perf_counter()
        answer = session.post(link, data={"csrf_token": token}, allow_redirects=False, timeout=30)
        if answer.status_code != 302:
            raise RuntimeError(f"confirmation {n} answered {answer.status_code}")
        arrived = catcher.wait_confirmed(address, timeout=120)
        with timings.lock:
            timings.submits.append(submitted)
            timings.confirmed.append(arrived - clicked)
    except Exception as error:  # noqa: BLE001 (counted and printed, the run goes on)
        with timings.lock:
            timings.failures.append(f"{n}: {type(error).__name__}: {error}")


def closed_loop(base, catcher, first: int, count: int, concurrency: int) -> Timings:
    timings = Timings()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda n: lifecycle(base, catcher, n, timings), range(first, first + count)))
    return timings


def open_loop(base, catcher, first: int, rate: float, seconds: float) -> Timings:
    """A new applicant every 1/rate seconds, whatever the stack's answers: each one submits,
    then presses its link as soon as it arrives, so clicks come at the same rate."""
    timings = Timings()
    interval, total = 1.0 / rate, int(rate * seconds)
    with ThreadPoolExecutor(256) as pool:
        start = time.perf_counter()
        for i in range(total):
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(lifecycle, base, catcher, first + i, timings)
    return timings


def history_length(temporal_address: str) -> tuple[str, int, list[str]]:
    """One finished registration's ID, its history's event count and the events' kinds."""

    async def fetch():
        from temporalio.client import Client

        client = await Client.connect(temporal_address)
        async for execution in client.list_workflows(
            "WorkflowType = 'RegistrationWorkflow' AND ExecutionStatus = 'Completed'", limit=1
        ):
            history = await client.get_workflow_handle(execution.id).fetch_history()
            kinds = [event.WhichOneof("attributes") for event in history.events]
            return execution.id, len(history.events), kinds
        raise RuntimeError("no finished registration found")

    return asyncio.run(fetch())


def verdict(ok: bool) -> str:
    return "meets goal" if ok else "MISSES goal"


def ms(values: list[float], p: float) -> float:
    return (statistics.median(values) if p == 50 else percentile(values, p)) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lifecycles", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float, default=15)
    parser.add_argument("--open-loop-seconds", type=float, default=20)
    parser.add_argument("--idle-seconds", type=float, default=5)
    add_postgres_option(parser)
    args = parser.parse_args()

    cluster = start_postgres() if args.postgres else None

    catcher = LifecycleCatcher()
    smtp_port = free_port()
    controller = Controller(catcher, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    data_dir = Path(tempfile.mkdtemp(prefix="acceso-bench-registration-"))
    open_count = int(args.rate * args.open_loop_seconds)
    import_patients(data_dir, 10 + args.lifecycles + open_count)
    stack = start_stack(data_dir, smtp_port)
    try:
        database = "PostgreSQL" if cluster else "SQLite"
        print(
            f"stack at {stack.base}; {database}; data in {data_dir}; {os.cpu_count()} cores; "
            f"load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        warm = closed_loop(stack.base, catcher, 0, 10, 4)
        if warm.failures:
            raise SystemExit(f"warm-up failed: {warm.failures[:3]}")

        before = cpu_by_tier(stack.process.pid)
        time.sleep(args.idle_seconds)
        idle = cpu_by_tier(stack.process.pid)
        idle_ms = {t: (idle[t] - before[t]) * 1000 / args.idle_seconds for t in TIERS}

        began = time.perf_counter()
        timings = closed_loop(stack.base, catcher, 10, args.lifecycles, args.concurrency)
        wall = time.perf_counter() - began
        after = cpu_by_tier(stack.process.pid)
        done = len(timings.confirmed)
        per = {t: (after[t] - idle[t]) * 1000 / max(done, 1) for t in TIERS}
        total = sum(per.values())
        print(
            f"CPU per lifecycle ({done} lifecycles, {args.concurrency} at a time, "
            f"{done / wall:.1f}/s): web {per['web']:.1f} ms + worker {per['worker']:.1f} ms + "
            f"Temporal {per['temporal']:.1f} ms = {total:.1f} ms; goal <= {GOAL_CPU_MS} ms: "
            f"{verdict(total <= GOAL_CPU_MS)}",
            flush=True,
        )
        print(
            "  idle stack, CPU ms per second: " + ", ".join(f"{t} {idle_ms[t]:.1f}" for t in TIERS),
            flush=True,
        )
        if timings.failures:
            print(f"  {len(timings.failures)} failed: {timings.failures[:3]}", flush=True)

        workflow_id, events, kinds = history_length(stack.temporal_address)
        print(
            f"history of one lifecycle ({workflow_id}): {events} events; goal <= {GOAL_EVENTS}: "
            f"{verdict(events <= GOAL_EVENTS)}",
            flush=True,
        )
        print("  " + " ".join(k.removesuffix("_event_attributes") for k in kinds), flush=True)

        first = 10 + args.lifecycles
        loop = open_loop(stack.base, catcher, first, args.rate, args.open_loop_seconds)
        if loop.submits:
            p99 = ms(loop.submits, 99)
            print(
                f"registration submit at {args.rate:g}/s offered ({len(loop.submits)} done): "
                f"p50 {ms(loop.submits, 50):.0f} ms, p99 {p99:.0f} ms; "
                f"goal p99 <= {GOAL_SUBMIT_P99_MS} ms: {verdict(p99 <= GOAL_SUBMIT_P99_MS)}",
                flush=True,
            )
            p99 = ms(loop.confirmed, 99)
            print(
                f"confirmation click to 'user confirmed' e-mail at {args.rate:g}/s: "
                f"p50 {ms(loop.confirmed, 50):.0f} ms, p99 {p99:.0f} ms; "
                f"goal p99 <= {GOAL_CONFIRMED_P99_MS} ms: "
                f"{verdict(p99 <= GOAL_CONFIRMED_P99_MS)}",
                flush=True,
            )
        if loop.failures:
            print(f"  {len(loop.failures)} failed: {loop.failures[:3]}", flush=True)
        doubled = sum(1 for arrivals in catcher.confirmed.values() if len(arrivals) > 1)
        print(f"'user confirmed' e-mails sent twice: {doubled}", flush=True)
    finally:
        os.killpg(stack.process.pid, signal.SIGINT)
        try:
            stack.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(stack.process.pid, signal.SIGKILL)
        controller.stop()
        if cluster is not None:
            cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
