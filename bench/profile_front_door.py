"""Profile one kind of front-door request with cProfile, in process (Flask's test client).

    .venv/bin/python bench/profile_front_door.py refresh [--requests 500] [--sort tottime] [--top 40]

Kinds: code_confidential, code_public, refresh, userinfo, introspection, login, and healthz
(the floor every request pays). The app runs
against a temporary SQLite database in dev mode, exactly as bench/front_door.py sets it up;
the test client's own cost (building the WSGI environ) shows under werkzeug.test and is not
the server's.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from front_door import CSRF, PASSWORD, REDIRECT, UNREACHED, mint_codes, setup  # noqa: E402

KINDS = (
    "code_confidential",
    "code_public",
    "refresh",
    "userinfo",
    "introspection",
    "login",
    "healthz",
)


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument(
        "--cpu-only", action="store_true", help="no profiler: CPU per request, test client included"
    )
    parser.add_argument("--callers", help="also print who calls the functions matching this")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="acceso-profile-") as tmp:
        data_dir = Path(tmp)
        database_url = f"sqlite:///{data_dir}/acceso.db"
        os.environ.update(
            ACCESO_DATA_DIR=str(data_dir),
            ACCESO_DATABASE_URL=database_url,
            ACCESO_DEV_MODE="1",
            ACCESO_PUBLIC_BASE_URL="http://localhost",
            ACCESO_RATE_LIMIT_TOKEN=UNREACHED,
            ACCESO_RATE_LIMIT_SIGN_IN=UNREACHED,
        )
        made = setup(database_url, data_dir, 1)
        from web import create_app

        app = create_app()
        client = app.test_client()
        client.get("/patient/jwks")
        pk, client_id, secret = made.confidential
        user_id, username = made.users[0]
        n = args.requests

        def exchange(pairs, confidential: bool):
            def one(i):
                raw, verifier = pairs[i]
                data = {
                    "grant_type": "authorization_code",
                    "code": raw,
                    "redirect_uri": REDIRECT,
                    "code_verifier": verifier,
                }
                if confidential:
                    headers = basic(client_id, secret)
                else:
                    headers = {}
                    data["client_id"] = made.public[1]
                answer = client.post("/patient/token", data=data, headers=headers)
                assert answer.status_code == 200, answer.text
                return answer.json

            return one

        first = exchange(mint_codes(database_url, pk, user_id, 1), True)(0)
        chain = {"refresh_token": first["refresh_token"]}
        access = first["access_token"]

        if args.kind == "code_confidential":
            work = exchange(mint_codes(database_url, pk, user_id, n + 1), True)
        elif args.kind == "code_public":
            work = exchange(mint_codes(database_url, made.public[0], user_id, n + 1), False)
        elif args.kind == "refresh":

            def work(i):
                answer = client.post(
                    "/patient/token",
                    data={"grant_type": "refresh_token", "refresh_token": chain["refresh_token"]},
                    headers=basic(client_id, secret),
                )
                assert answer.status_code == 200, answer.text
                chain.update(answer.json)
        elif args.kind == "userinfo":

            def work(i):
                answer = client.get(
                    "/patient/userinfo", headers={"Authorization": f"Bearer {access}"}
                )
                assert answer.status_code == 200, answer.text
        elif args.kind == "introspection":

            def work(i):
                answer = client.post(
                    "/patient/introspect", data={"token": access}, headers=basic(client_id, secret)
                )
                assert answer.json["active"], answer.text
        elif args.kind == "healthz":

            def work(i):
                assert client.get("/healthz").status_code == 200
        else:
            page = client.get("/patient/login")
            token = CSRF.search(page.text).group(1)
            signed_out = client.get_cookie("session").value

            def work(i):
                answer = client.post(
                    "/patient/login",
                    data={"csrf_token": token, "username": username, "password": PASSWORD},
                )
                assert answer.status_code == 302, answer.text
                client.set_cookie("session", signed_out)

        work(n)
        if args.cpu_only:
            started = time.process_time()
            for i in range(n):
                work(i)
            each = (time.process_time() - started) / n * 1000
            print(f"{args.kind}: {n} requests, {each:.2f} ms of CPU each (no profiler)")
            return 0
        profiler = cProfile.Profile()
        profiler.enable()
        for i in range(n):
            work(i)
        profiler.disable()
        stats = pstats.Stats(profiler)
        total = stats.total_tt
        statements = commits = 0
        for (_, _, name), row in stats.stats.items():
            if name == "<method 'execute' of 'sqlite3.Cursor' objects>":
                statements += row[1]
            elif name == "<method 'commit' of 'sqlite3.Connection' objects>":
                commits += row[1]
        print(
            f"{args.kind}: {n} requests, {total / n * 1000:.2f} ms of profiled CPU each, "
            f"{statements / n:.1f} SQL statements and {commits / n:.1f} commits each"
        )
        stats.sort_stats(args.sort).print_stats(args.top)
        if args.callers:
            stats.print_callers(args.callers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
