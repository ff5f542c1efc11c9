"""Benchmark the OIDC token endpoint: authorization-code exchanges per second per core, and p99.

Starts one gunicorn worker (one core) of the web app on a free port against a temporary SQLite
database (or --postgres URL), with no Temporal at all: the token endpoint must not need it.
Authorization codes are minted straight into the database beforehand, exactly as the authorize
endpoint stores them (hashed, 60 s, PKCE S256), so only the exchange is measured. Two clients:

- confidential: client_secret_basic, so each exchange verifies an argon2id hash (m=19 MiB, t=2);
- public: PKCE only, no secret to verify.

Besides the wall-clock rate it prints exchanges per CPU-second of the web worker (from /proc),
which is what one core sustains whatever else the machine is doing.

Run by hand, not by the test suite:  .venv/bin/python bench/token_endpoint.py [--seconds 15]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REDIRECT = "http://rp.bench/callback"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def mint_codes(database_url: str, client_pk: int, user_id: int, count: int):
    """Codes as the authorize endpoint stores them; returns (raw code, verifier) pairs."""
    from portal.db import make_engine, make_session_factory
    from portal.models import OidcAuthorizationCode, utcnow
    from portal.tokens import new_token, token_hash

    pairs = []
    engine = make_engine(database_url)
    with make_session_factory(engine)() as session:
        for _ in range(count):
            raw, verifier = new_token(), secrets.token_urlsafe(48)
            challenge = (
                base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
                .rstrip(b"=")
                .decode()
            )
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


def setup(database_url: str, secret_key: bytes):
    from portal.db import make_engine, make_session_factory, migrate
    from portal.models import User, utcnow
    from portal.oidc import add_client
    from portal.passwords import hash_password

    migrate(database_url)
    engine = make_engine(database_url)
    with make_session_factory(engine)() as session:
        user = User(
            portal="patient",
            username=f"bench{secrets.token_hex(3)}",
            email="bench@example.org",
            full_name="Bench Patient",
            password_hash=hash_password("Bench12345Clave"),
            status="active",
            role="patient",
            activated_at=utcnow(),
        )
        session.add(user)
        confidential = add_client(
            session,
            f"bench-c-{secrets.token_hex(3)}",
            portal="patient",
            redirect_uris=[REDIRECT],
            secret_key=secret_key,
        )
        public = add_client(
            session,
            f"bench-p-{secrets.token_hex(3)}",
            portal="patient",
            redirect_uris=[REDIRECT],
            public=True,
        )
        session.commit()
        result = (
            user.id,
            (confidential.client.id, confidential.client.client_id, confidential.secret),
            (public.client.id, public.client.client_id, None),
        )
    engine.dispose()
    return result


def cpu_seconds(master_pid: int) -> float:
    """CPU time (user + system) of the gunicorn worker(s) so far, from /proc."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    ticks = 0
    for child in children:
        fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def run_load(token_url, client_id, secret, pairs, seconds: float, concurrency: int):
    """Closed loop: `concurrency` callers exchange codes back to back for `seconds`."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    codes = iter(pairs)
    stop_at = time.monotonic() + seconds

    def caller():
        session = requests.Session()
        auth = (client_id, secret) if secret else None
        while time.monotonic() < stop_at:
            with lock:
                pair = next(codes, None)
            if pair is None:
                return
            data = {
                "grant_type": "authorization_code",
                "code": pair[0],
                "redirect_uri": REDIRECT,
                "code_verifier": pair[1],
            }
            if not secret:
                data["client_id"] = client_id
            started = time.perf_counter()
            response = session.post(token_url, data=data, auth=auth, timeout=30)
            elapsed = time.perf_counter() - started
            with lock:
                if response.status_code == 200 and "id_token" in response.json():
                    latencies.append(elapsed)
                else:
                    errors[0] += 1

    begun = time.monotonic()
    threads = [threading.Thread(target=caller) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - begun
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    return {
        "exchanges": len(latencies),
        "errors": errors[0],
        "per_second": len(latencies) / wall,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else 0,
        "p99_ms": p(0.99) if latencies else 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--postgres", metavar="URL", help="application database URL")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="acceso-token-bench-") as data_dir:
        database_url = args.postgres or f"sqlite:///{data_dir}/acceso.db"
        user_id, confidential, public = setup(database_url)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("ACCESO_")},
            "ACCESO_DATA_DIR": data_dir,
            "ACCESO_DATABASE_URL": database_url,
            "ACCESO_DEV_MODE": "1",
            "ACCESO_PUBLIC_BASE_URL": base,
            "ACCESO_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        }
        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--threads",
            "4",
            "--no-control-socket",
            "web:create_app()",
        ]
        web = subprocess.Popen(argv, cwd=ROOT, env=env, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if requests.get(f"{base}/patient/jwks", timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("web did not start")
                time.sleep(0.2)
            token_url = f"{base}/patient/token"
            print("one gunicorn worker (one core), no Temporal running at all")
            for label, (pk, client_id, secret) in (
                ("confidential (client_secret_basic, argon2id)", confidential),
                ("public (PKCE S256 only)", public),
            ):
                pairs = mint_codes(database_url, pk, user_id, 6000 if secret is None else 2000)
                run_load(token_url, client_id, secret, pairs[:20], 2, args.concurrency)
                cpu_before = cpu_seconds(web.pid)
                result = run_load(
                    token_url, client_id, secret, pairs[20:], args.seconds, args.concurrency
                )
                cpu = cpu_seconds(web.pid) - cpu_before
                print(
                    f"{label}: {result['per_second']:.1f} exchanges/s on one worker, "
                    f"{result['exchanges'] / cpu:.1f} per CPU-second of the web process, "
                    f"p50 {result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms "
                    f"({result['exchanges']} exchanges, {result['errors']} errors)"
                )
        finally:
            os.killpg(web.pid, signal.SIGTERM)
            web.wait(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
