"""The `acceso` command: one entry point for running, migrating and feeding the portal."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from portal.config import load_portals
from portal.settings import load_settings

from . import clients, dev


def _session_factory(settings):
    from portal.db import make_engine, make_session_factory

    return make_session_factory(make_engine(settings.database_url))


def cmd_migrate(args) -> int:
    from cli.clients import make_first_signing_keys
    from portal.db import migrate

    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate(settings.database_url)
    print("database is at the newest revision")
    make_first_signing_keys(settings)
    return 0


def cmd_worker(args) -> int:
    import worker

    worker.main()
    return 0


def cmd_web(args) -> int:
    from portal.metrics import prepare_multiprocess_dir
    from portal.safety import refuse_unsafe_start

    settings = load_settings()
    refuse_unsafe_start(settings, "acceso web")
    prepare_multiprocess_dir(settings)
    workers = int(os.environ.get("ACCESO_WEB_WORKERS", "2"))
    argv = dev.gunicorn_argv(args.host, args.port, workers=workers)
    os.execv(argv[0], argv)  # noqa: S606 (becomes gunicorn, so signals reach it directly)
    return 1


def cmd_staff_add(args) -> int:
    from .staff import StaffError, add_staff, password_from_env_or_prompt, split_list

    settings = load_settings()
    try:
        roles = split_list(args.role)
        portals = split_list(args.portal)
        password = password_from_env_or_prompt()
        add_staff(
            _session_factory(settings),
            args.username,
            roles,
            portals,
            password,
            known_portals=set(load_portals(settings.portals_file)),
        )
    except StaffError as error:
        print(f"acceso staff add: {error}", file=sys.stderr)
        return 1
    scope = ", ".join(portals) if portals else "all portals"
    print(f"staff user {args.username} added with roles {', '.join(roles)} ({scope})")
    return 0


def cmd_staff_reset_factor(args) -> int:
    from .staff import StaffError, reset_second_factor

    try:
        reset_second_factor(_session_factory(load_settings()), args.username)
    except StaffError as error:
        print(f"acceso staff reset-factor: {error}", file=sys.stderr)
        return 1
    print(f"staff user {args.username}: second factor removed; the next sign-in enrols again")
    return 0


def cmd_import(args) -> int:
    from .imports import KINDS, ImportRejected, import_records

    kind = KINDS[args.kind]
    settings = load_settings()
    portals = load_portals(settings.portals_file)
    portal = portals.get(args.portal)
    prefix = f"acceso import {kind.name}"
    if portal is None:
        print(
            f"{prefix}: unknown portal {args.portal!r}; configured: {', '.join(sorted(portals))}",
            file=sys.stderr,
        )
        return 1
    if portal.flow != kind.flow:
        print(
            f"{prefix}: portal {args.portal!r} runs the {portal.flow} flow, "
            f"which does not read {kind.name} records",
            file=sys.stderr,
        )
        return 1
    if not Path(args.file).is_file():
        print(f"{prefix}: no such file: {args.file}", file=sys.stderr)
        return 1
    try:
        result = import_records(_session_factory(settings), kind, Path(args.file), args.portal)
    except ImportRejected as rejected:
        for error in rejected.errors:
            print(f"{args.file}: {error}", file=sys.stderr)
        print(f"{prefix}: nothing imported ({len(rejected.errors)} problem(s))", file=sys.stderr)
        return 1
    print(
        f"{kind.name} into {args.portal}: {result.created} added, {result.updated} updated, "
        f"{result.unchanged} unchanged"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="acceso", description="Acceso: run, migrate and load data into the account portal."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev.add_parser(commands)

    commands.add_parser("migrate", help="bring the database schema up to date").set_defaults(
        handler=cmd_migrate
    )
    commands.add_parser("worker", help="run the Temporal worker").set_defaults(handler=cmd_worker)

    web = commands.add_parser("web", help="serve the web app with gunicorn")
    web.add_argument("--host", default="127.0.0.1")
    web.add_argument("--port", type=int, default=5000)
    web.set_defaults(handler=cmd_web)

    staff = commands.add_parser("staff", help="manage staff accounts")
    staff_commands = staff.add_subparsers(dest="staff_command", required=True, metavar="ACTION")
    add = staff_commands.add_parser(
        "add",
        help="create a staff user",
        description="Password from ACCESO_STAFF_PASSWORD, or asked for twice.",
    )
    add.add_argument("username")
    add.add_argument(
        "--role",
        action="append",
        required=True,
        help="reviewer, support, admin or operator; repeat or separate with commas",
    )
    add.add_argument(
        "--portal", action="append", help="limit to these portals (default: every portal)"
    )
    add.set_defaults(handler=cmd_staff_add)
    reset = staff_commands.add_parser(
        "reset-factor",
        help="remove a staff user's second factor and unlock it (lost device)",
    )
    reset.add_argument("username")
    reset.set_defaults(handler=cmd_staff_reset_factor)

    imports = commands.add_parser("import", help="import records from a CSV file")
    import_kinds = imports.add_subparsers(dest="kind", required=True, metavar="KIND")
    for kind, portal, columns in (
        ("patients", "patient", "full_name,email,record_number"),
        ("members", "member", "client_id,first_name,last_name,suffix,date_of_birth,email"),
    ):
        sub = import_kinds.add_parser(
            kind,
            help=f"{kind} ({columns})",
            description=f"Columns: {columns}. Re-importing a key updates that record.",
        )
        sub.add_argument("file", metavar="FILE.csv")
        sub.add_argument("--portal", default=portal, help=f"target portal ({portal})")
        sub.set_defaults(handler=cmd_import)

    clients.add_parsers(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    from sqlalchemy.exc import OperationalError, ProgrammingError

    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (OperationalError, ProgrammingError) as error:
        print(f"acceso: database error: {error.orig}", file=sys.stderr)
        print("acceso: is the database reachable and migrated? (acceso migrate)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
