"""Benchmark one patient's registration lifecycle: its CPU, its history and its latency.

A lifecycle is what an applicant does on the patient portal: submit the form, receive the
confirmation e-mail, open the link and press its button, receive the "user confirmed" e-mail.
On its own `acceso dev` stack (bench/stack.py) with clinical records loaded, this prints, each
beside its goal (issue 23):

1. CPU milliseconds per lifecycle of the web tier (gunicorn and its workers), the worker and the
   Temporal dev server, read from /proc (utime + stime of each process tree) around a closed
   loop of lifecycles, so the figure holds whatever else the machine is doing; and how many
   lifecycles a second that loop completed;
2. the number of events in one finished lifecycle's workflow history;
3. logins per second through the whole stack (for scale: the goal is the front door's ratio);
4. at a fixed offered rate (open loop): the submit's p50/p99, and the p50/p99 from the press of
   the confirmation button to the arrival of the "user confirmed" e-mail.

bench/run.py (`make bench`) runs this with everything else; alone:
    .venv/bin/python bench/registration.py [--lifecycles 100] [--postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stack import (  # noqa: E402 (bench/ is a folder of scripts, not a package)
    PASSWORD,
    Lifecycle,
    Stack,
    Verdict,
    add_postgres_option,
    client_session,
    cmdline,
    cpu_seconds,
    csrf,
    lifecycle,
    load_average,
    ms,
    running_stack,
    start_postgres,
)

GOAL_CPU_MS = 70
GOAL_EVENTS = 14
GOAL_LIFECYCLES = 35
"""Registration lifecycles per second the stack should complete (README)."""
GOAL_SUBMIT_P99_MS = 150
GOAL_CONFIRMED_P99_MS = 1000
TIERS = ("web", "worker", "temporal")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lifecycles", type=int, default=100, help="in the closed loop")
    parser.add_argument("--concurrency", type=int, default=8, help="of the closed loop")
    parser.add_argument("--idle-seconds", type=float, default=5, help="idle stack, for scale")
    parser.add_argument("--logins-seconds", type=float, default=10)
    parser.add_argument("--login-concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float, default=15, help="applicants per second, open loop")
    parser.add_argument("--open-loop-seconds", type=float, default=10)


def tier(pid: int) -> str | None:
    words = [a.decode(errors="replace") for a in cmdline(pid).split(b"\0")]
    if any(w.endswith("temporal") for w in words[:1]) and "start-dev" in words:
        return "temporal"
    if "worker" in words and "-m" in words:
        return "worker"
    if any("gunicorn" in w for w in words):
        return "web"
    return None


def cpu_by_tier(stack: Stack) -> dict[str, float]:
    """CPU seconds used so far by each tier's process tree (a tier's children count with it)."""
    used = dict.fromkeys(TIERS, 0.0)
    for child in stack.children():
        if (name := tier(child)) is not None:
            used[name] += cpu_seconds(child, reaped=True)
    return used


@dataclass
class Timings:
    done: list[Lifecycle] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, stack: Stack, n: int) -> None:
        try:
            result = lifecycle(stack, n)
        except Exception as error:  # noqa: BLE001 (counted and printed, the run goes on)
            with self.lock:
                self.failures.append(f"{n}: {type(error).__name__}: {error}")
            return
        with self.lock:
            self.done.append(result)


def closed_loop(stack: Stack, first: int, count: int, concurrency: int) -> Timings:
    timings = Timings()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda n: timings.run(stack, n), range(first, first + count)))
    return timings


def open_loop(stack: Stack, first: int, rate: float, seconds: float) -> Timings:
    """A new applicant every 1/rate seconds, whatever the stack's answers: each one submits,
    then presses its link as soon as it arrives, so clicks come at the same rate."""
    timings = Timings()
    interval, total = 1.0 / rate, max(1, int(rate * seconds))
    with ThreadPoolExecutor(256) as pool:
        start = time.perf_counter()
        for i in range(total):
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(timings.run, stack, first + i)
    return timings


def logins(stack: Stack, users: list[int], seconds: float, concurrency: int) -> float:
    """Closed loop of sign-ins by registered applicants, each press from an address of its own
    (the per-address limit counts, and is never reached); logins per second."""
    stop = time.monotonic() + seconds
    counts = [0] * concurrency

    def client(slot: int) -> None:
        n = users[slot % len(users)]
        while time.monotonic() < stop:
            session = client_session(100_000 + slot * 10_000 + counts[slot])
            response = session.post(
                f"{stack.base}/patient/login",
                data={
                    "csrf_token": csrf(session, f"{stack.base}/patient/login"),
                    "username": f"bench{n}",
                    "password": PASSWORD,
                },
                allow_redirects=False,
                timeout=30,
            )
            if response.status_code != 302:
                raise RuntimeError(f"login answered {response.status_code}")
            counts[slot] += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(client, range(concurrency)))
    return sum(counts) / (time.perf_counter() - started)


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


def say(line: str) -> None:
    print(line, flush=True)


def measure(stack: Stack, args) -> list[Verdict]:
    """Every registration figure on `stack`, printed as measured, then returned as verdicts."""
    open_count = max(1, int(args.rate * args.open_loop_seconds))
    stack.import_patients(0, 10 + args.lifecycles + open_count)
    verdicts = []
    warm = closed_loop(stack, 0, 10, 4)
    if warm.failures:
        raise SystemExit(f"warm-up failed: {warm.failures[:3]}")

    before = cpu_by_tier(stack)
    time.sleep(args.idle_seconds)
    idle = cpu_by_tier(stack)
    idle_ms = {t: (idle[t] - before[t]) * 1000 / args.idle_seconds for t in TIERS}

    began = time.perf_counter()
    timings = closed_loop(stack, 10, args.lifecycles, args.concurrency)
    wall = time.perf_counter() - began
    after = cpu_by_tier(stack)
    done = len(timings.done)
    per = {t: (after[t] - idle[t]) * 1000 / max(done, 1) for t in TIERS}
    total = sum(per.values())
    say(
        f"CPU per lifecycle ({done} lifecycles, {args.concurrency} at a time, {load_average()}):"
        f" web {per['web']:.1f} ms + worker {per['worker']:.1f} ms + Temporal"
        f" {per['temporal']:.1f} ms = {total:.1f} ms"
    )
    say("  idle stack, CPU ms per second: " + ", ".join(f"{t} {idle_ms[t]:.1f}" for t in TIERS))
    if timings.failures:
        say(f"  {len(timings.failures)} failed: {timings.failures[:3]}")
    verdicts.append(
        Verdict(
            f"registration CPU per lifecycle, web + worker + Temporal: {total:.1f} ms"
            f" ({per['web']:.0f} + {per['worker']:.0f} + {per['temporal']:.0f})"
            f" (goal <= {GOAL_CPU_MS} ms)",
            total <= GOAL_CPU_MS and not timings.failures,
        )
    )
    rate = done / wall
    verdicts.append(
        Verdict(
            f"registration lifecycles: {rate:.1f} per second, {args.concurrency} at a time"
            f" (goal >= {GOAL_LIFECYCLES})",
            rate >= GOAL_LIFECYCLES,
        )
    )

    workflow_id, events, kinds = history_length(stack.temporal_address)
    say(f"history of one lifecycle ({workflow_id}): {events} events")
    say("  " + " ".join(k.removesuffix("_event_attributes") for k in kinds))
    verdicts.append(
        Verdict(
            f"registration history: {events} events (goal <= {GOAL_EVENTS})",
            events <= GOAL_EVENTS,
        )
    )

    if args.logins_seconds > 0:
        per_second = logins(
            stack, list(range(10, 10 + done)), args.logins_seconds, args.login_concurrency
        )
        cores = os.cpu_count() or 1
        verdicts.append(
            Verdict(
                f"logins through the stack: {per_second:.1f} per second, "
                f"{per_second / cores:.1f} per core (for scale; the goal is the front door's)",
                None,
            )
        )
        say(verdicts[-1].text)

    first = 10 + args.lifecycles
    loop = open_loop(stack, first, args.rate, args.open_loop_seconds)
    submits = [result.submit for result in loop.done]
    clicks = [result.confirmed for result in loop.done]
    if loop.failures:
        say(f"  {len(loop.failures)} failed: {loop.failures[:3]}")
    if submits:
        p99 = ms(submits, 99)
        verdicts.append(
            Verdict(
                f"registration submit p99: {p99:.0f} ms (p50 {ms(submits, 50):.0f}) at"
                f" {args.rate:g}/s offered, {len(submits)} sent (goal <= {GOAL_SUBMIT_P99_MS} ms)",
                p99 <= GOAL_SUBMIT_P99_MS and not loop.failures,
            )
        )
        p99 = ms(clicks, 99)
        verdicts.append(
            Verdict(
                f"confirmation click to 'user confirmed' e-mail p99: {p99:.0f} ms"
                f" (p50 {ms(clicks, 50):.0f}) at {args.rate:g}/s"
                f" (goal <= {GOAL_CONFIRMED_P99_MS} ms)",
                p99 <= GOAL_CONFIRMED_P99_MS and not loop.failures,
            )
        )
    doubled = sum(1 for arrivals in stack.catcher.confirmed.values() if len(arrivals) > 1)
    verdicts.append(
        Verdict(f"'user confirmed' e-mails sent twice: {doubled} (goal 0)", not doubled)
    )
    for verdict in verdicts[-3:]:
        say(verdict.line())
    return verdicts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    add_postgres_option(parser)
    args = parser.parse_args()
    cluster = start_postgres() if args.postgres else None
    try:
        database_url = cluster.create_database() if cluster else None
        with running_stack(database_url) as stack:
            say(f"stack at {stack.base}; {'PostgreSQL' if cluster else 'SQLite'}; {load_average()}")
            verdicts = measure(stack, args)
    finally:
        if cluster is not None:
            cluster.stop()
    say("\nmeasured vs goal:")
    for verdict in verdicts:
        say(f"  {verdict.line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
