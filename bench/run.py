"""Benchmark the product: every figure issue 23 holds it to, each printed beside its goal, met
or not, in one command, ending with a summary of them all and the machine's load.

1. The front door (bench/front_door.py: one gunicorn worker, no Temporal): the token endpoint,
   userinfo, introspection and sign-in, per CPU-second of the web worker.
2. Registration (bench/registration.py, on an `acceso dev` stack of its own): CPU per patient
   lifecycle of web, worker and Temporal, lifecycles per second, the history's length, logins
   through the stack, and submit and click-to-e-mail latency at a fixed offered rate.
3. Capacity (bench/capacity.py, on another stack, argon2id made cheap): worker memory with
   registrations waiting, swept tables over rounds of traffic, one worker against two.

Run by hand or with `make bench` (ARGS="--postgres" for PostgreSQL); the defaults take a few
minutes. tests/test_bench.py runs it with tiny counts so it cannot rot:
    .venv/bin/python bench/run.py [--front-door-seconds 10] [--lifecycles 100] [--waiting 500] ...
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import capacity  # noqa: E402 (bench/ is a folder of scripts, not a package)
import registration  # noqa: E402
from front_door import Figure, report  # noqa: E402
from front_door import run as run_front_door  # noqa: E402
from stack import (  # noqa: E402
    Verdict,
    add_postgres_option,
    load_average,
    running_stack,
    start_postgres,
)

PARTS = ("front-door", "registration", "capacity")


def front_door(args, database_url: str | None) -> list[Figure]:
    print(
        f"front door: one gunicorn worker ({args.front_door_concurrency} threads), no Temporal;"
        f" {'PostgreSQL' if database_url else 'SQLite'}",
        flush=True,
    )
    figures, floor = run_front_door(
        args.front_door_seconds, args.front_door_concurrency, database_url
    )
    for line in report(figures):
        print(line, flush=True)
    print(f"for scale, GET /healthz (no database): {floor.per_cpu_second:.0f} per CPU-second")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--front-door-seconds", type=float, default=10, help="per front-door phase")
    parser.add_argument("--front-door-concurrency", type=int, default=4)
    parser.add_argument(
        "--skip", action="append", choices=PARTS, default=[], help="leave a part out (repeatable)"
    )
    registration.add_arguments(parser)
    capacity.add_arguments(parser)
    add_postgres_option(parser)
    args = parser.parse_args()

    started = time.monotonic()
    loads = [load_average()]
    print(f"{os.cpu_count()} cores; {loads[0]}", flush=True)
    cluster = start_postgres() if args.postgres else None
    database = cluster.create_database if cluster else lambda: None
    figures: list[Figure] = []
    verdicts: list[Verdict] = []
    try:
        if "front-door" not in args.skip:
            figures = front_door(args, database())
        if "registration" not in args.skip:
            with running_stack(database()) as stack:
                print(f"\nregistration: stack at {stack.base}; {load_average()}", flush=True)
                verdicts += registration.measure(stack, args)
        if "capacity" not in args.skip:
            print(f"\ncapacity: {load_average()}", flush=True)
            verdicts += capacity.measure(database(), args)
    finally:
        if cluster is not None:
            cluster.stop()
    loads.append(load_average())
    print(
        f"\nmeasured vs goal ({'PostgreSQL' if cluster else 'SQLite'}; {os.cpu_count()} cores;"
        f" {loads[0]} at the start, {loads[1]} at the end;"
        f" {(time.monotonic() - started) / 60:.1f} minutes):",
        flush=True,
    )
    for line in report(figures) + [verdict.line() for verdict in verdicts]:
        print(f"  {line}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
