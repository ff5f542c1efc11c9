"""Capacity of the running product: worker memory, table growth, and one worker against two.

On its own `acceso dev` stack (bench/stack.py; argon2id made cheap, since none of these figures
is about CPU), each part prints what it measured beside its goal:

memory   N patient registrations left waiting for their e-mail click; then the resident memory
         (VmRSS, from /proc) of the worker's process tree, against <= 300 MB with 10,000
         waiting (projected from the growth per registration past twice the workflow cache
         when N is smaller).
tables   rounds of registrations (submit + click), logins and code exchanges from many client
         addresses; between rounds every row is aged 40 days (standing in for the clock) and
         the cleanup workflow runs with its production grace (7 days); the row counts of the
         swept tables must come back down after each sweep.
scale    completed registration lifecycles with one worker, then two (beside the two gunicorn
         web workers of `acceso dev`): every applicant gets exactly its two e-mails and every
         outbox row is relayed.

bench/run.py (`make bench`) runs all three with everything else; alone, one or more of:
    .venv/bin/python bench/capacity.py --memory 10000 --tables --scale [--postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import secrets
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from stack import (  # noqa: E402 (bench/ is a folder of scripts, not a package)
    CHEAP_ARGON2,
    PASSWORD,
    Stack,
    Verdict,
    add_postgres_option,
    client_session,
    cpu_seconds,
    csrf,
    lifecycle,
    rss_mb,
    running_stack,
    start_postgres,
    wait_for,
)

MEMORY_GOAL_MB = 300
MEMORY_GOAL_WAITING = 10_000
REDIRECT = "http://rp.bench/callback"
AGE = timedelta(days=40)
"""How far each round of the tables part moves every row's ending back: past every lifetime
plus the sweep's 7-day grace, except a refresh token's, which lasts as long as its 90-day grant."""
KEPT_ON_PURPOSE = ("oidc_refresh_tokens", "oidc_grants")
"""The bench's offline grants (and so their refresh tokens) last 90 days, longer than the 40
days a round ages the tables by: they level off once the rounds pass 90 days, not before."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--waiting", type=int, default=2000, help="registrations left waiting")
    parser.add_argument("--cache", type=int, help="ACCESO_WORKER_MAX_CACHED_WORKFLOWS to run with")
    parser.add_argument("--rounds", type=int, default=3, help="of the tables part")
    parser.add_argument("--per-round", type=int, default=10)
    parser.add_argument("--scale-lifecycles", type=int, default=50, help="per worker count")
    parser.add_argument("--scale-concurrency", type=int, default=16)


def say(line: str) -> None:
    print(line, flush=True)


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
    factory = stack.session_factory()
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


def lifecycles(stack: Stack, first: int, count: int, concurrency: int, prefix: str) -> None:
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda n: lifecycle(stack, n, prefix), range(first, first + count)))


# --- memory -------------------------------------------------------------------------------------


def quiet(pid: int, seconds: float = 3.0) -> bool:
    """True when the process used under 2% of a core over `seconds`: the backlog is done."""
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return cpu_seconds(pid) - before < 0.02 * seconds


def measure_memory(stack: Stack, args) -> Verdict:
    (worker,) = stack.worker_pids()
    cache = int(
        stack.worker_env().get(
            "ACCESO_WORKER_MAX_CACHED_WORKFLOWS", stack.settings.worker_max_cached_workflows
        )
    )
    wait_for(lambda: quiet(worker), "the worker to settle", 120, every=0)
    idle = rss_mb(worker)
    say(f"worker {worker}: {idle:.0f} MB before; workflow cache {cache}")
    started = time.monotonic()
    step = max(1, args.waiting // 5)
    done = 0
    past_cache = None
    while done < args.waiting:
        batch = min(step, args.waiting - done)
        enqueue_registrations(stack, done, batch)
        done += batch
        wait_for(
            lambda done=done: stack.catcher.total() >= done,
            f"{done} confirmation e-mails",
            timeout=max(300, batch * 0.5),
            every=1,
        )
        wait_for(lambda: quiet(worker), "the worker to settle", 600, every=0)
        rss = rss_mb(worker)
        if past_cache is None and done >= 2 * cache:
            past_cache = (done, rss)
        say(
            f"  {done} waiting for their click: worker RSS {rss:.0f} MB"
            f" ({time.monotonic() - started:.0f} s)"
        )
    goal = f"(goal <= {MEMORY_GOAL_MB} MB with {MEMORY_GOAL_WAITING} waiting)"
    if done >= MEMORY_GOAL_WAITING:
        return Verdict(
            f"worker RSS with {done} waiting for their click: {rss:.0f} MB {goal}",
            rss <= MEMORY_GOAL_MB,
        )
    if past_cache is None or past_cache[0] == done:
        return Verdict(
            f"worker RSS with {done} waiting for their click: {rss:.0f} MB, cache {cache}; too few"
            f" past the cache to project to {MEMORY_GOAL_WAITING} (--waiting > 2 x cache) {goal}",
            None,
        )
    # Once the workflow cache is full and the allocator has settled (twice the cache), what
    # grows per waiting registration is what is kept outside the cache: that slope projects.
    slope = max(0.0, (rss - past_cache[1]) / (done - past_cache[0]))
    projected = rss + slope * (MEMORY_GOAL_WAITING - done)
    return Verdict(
        f"worker RSS with {MEMORY_GOAL_WAITING} waiting for their click: {projected:.0f} MB"
        f" projected ({rss:.0f} MB measured with {done}, cache {cache}, then"
        f" {slope * 1024:.1f} KB per registration) {goal}",
        projected <= MEMORY_GOAL_MB,
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
            headers=client_session(first + i).headers,
            timeout=30,
        )
        exchanged += answer.status_code == 200
    return exchanged


def logins(stack: Stack, numbers: list[int], first: int) -> int:
    done = 0
    for i, n in enumerate(numbers):
        session = client_session(first + i)
        token = csrf(session, f"{stack.base}/patient/login")
        answer = session.post(
            f"{stack.base}/patient/login",
            data={"csrf_token": token, "username": f"round{n}", "password": PASSWORD},
            allow_redirects=False,
            timeout=30,
        )
        done += answer.status_code == 302
    return done


def measure_tables(stack: Stack, args) -> Verdict:
    from sqlalchemy import select

    from portal.models import User

    per = args.per_round
    factory = stack.session_factory()
    stack.import_patients(0, per * args.rounds, prefix="round")
    client = token_client(factory)
    names = list(counted_tables())
    say(f"{per} registrations, {per} logins, {per} code exchanges a round, each from its")
    say("own client address; rows aged 40 days, then a cleanup sweep (grace 7 days)")
    say("rows after each round's activity / after its sweep:")
    say("round  " + "  ".join(names))
    swept_each = []
    for round_ in range(args.rounds):
        first = round_ * per
        mails = stack.catcher.total()
        lifecycles(stack, first, per, concurrency=8, prefix="round")
        wait_for(
            lambda mails=mails: stack.catcher.total() >= mails + 2 * per,
            "the 'user confirmed' e-mails",
            120,
        )
        with factory() as session:
            users = list(
                session.scalars(
                    select(User.id).where(
                        User.username.in_([f"round{n}" for n in range(first, first + per)])
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
        swept_each.append(swept)
        say(
            f"{round_ + 1:>5}  "
            + "  ".join(f"{f'{after[name]} / {swept[name]}':^{len(name)}}" for name in names)
        )
    grown = [
        name
        for name in names
        if name not in KEPT_ON_PURPOSE and any(swept[name] for swept in swept_each)
    ]
    return Verdict(
        f"bounded tables: {len(names) - len(KEPT_ON_PURPOSE)} swept tables back to 0 rows after"
        f" each of {args.rounds} sweeps"
        + (f", except {', '.join(grown)}" if grown else "")
        + " (goal: flat across runs)",
        not grown,
    )


# --- one worker against two ---------------------------------------------------------------------


def measure_scale(stack: Stack, args) -> Verdict:
    from sqlalchemy import func, select

    from portal.models import OutboxMessage

    count = args.scale_lifecycles
    stack.import_patients(0, 2 * count, prefix="scale")
    rates = []
    extra = None
    try:
        for workers, first in ((1, 0), (2, count)):
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
            lifecycles(stack, first, count, args.scale_concurrency, prefix="scale")
            rates.append(count / (time.perf_counter() - started))
            say(f"{workers} worker(s), two web workers: {rates[-1]:.1f} lifecycles/s")
    finally:
        if extra is not None:
            extra.terminate()
            extra.wait(30)
    received = {
        address: n for address, n in stack.catcher.received.items() if address.startswith("scale")
    }
    wrong = sum(1 for n in received.values() if n != 2) + (2 * count - len(received))
    with stack.session_factory()() as session:
        owed = session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.relayed_at.is_(None))
        )
    return Verdict(
        f"scale-out: {2 * count} lifecycles on two web and one, then two, workers"
        f" ({rates[0]:.1f} then {rates[1]:.1f} per second on {os.cpu_count()} cores):"
        f" {wrong} applicants without exactly their two e-mails, {owed} outbox rows unrelayed"
        " (goal 0 and 0)",
        wrong == 0 and owed == 0,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--memory", type=int, metavar="N", help="registrations left waiting")
    parser.add_argument("--tables", action="store_true")
    parser.add_argument("--scale", action="store_true")
    add_arguments(parser)
    add_postgres_option(parser)
    args = parser.parse_args()
    if not (args.memory or args.tables or args.scale):
        parser.error("choose --memory N, --tables or --scale")
    if args.memory:
        args.waiting = args.memory
    cluster = start_postgres() if args.postgres else None
    try:
        verdicts = measure(
            cluster.create_database() if cluster else None,
            args,
            memory=bool(args.memory),
            tables=args.tables,
            scale=args.scale,
        )
    finally:
        if cluster is not None:
            cluster.stop()
    say("\nmeasured vs goal:")
    for verdict in verdicts:
        say(f"  {verdict.line()}")
    return 0


def measure(
    database_url: str | None, args, memory: bool = True, tables: bool = True, scale: bool = True
) -> list[Verdict]:
    """The parts asked for, in this order, on one stack: the worker's memory first, while it
    has run nothing else."""
    env = dict(CHEAP_ARGON2)
    if args.cache is not None:
        env["ACCESO_WORKER_MAX_CACHED_WORKFLOWS"] = str(args.cache)
    verdicts = []
    with running_stack(database_url, env) as stack:
        say(f"capacity stack at {stack.base}; {'PostgreSQL' if database_url else 'SQLite'}")
        if memory:
            verdicts.append(measure_memory(stack, args))
            say(verdicts[-1].line())
        if tables:
            verdicts.append(measure_tables(stack, args))
            say(verdicts[-1].line())
        if scale:
            verdicts.append(measure_scale(stack, args))
            say(verdicts[-1].line())
    return verdicts


if __name__ == "__main__":
    sys.exit(main())
