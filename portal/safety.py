"""Refusals at start-up: outside dev mode a process stops, with one line saying what to set,
rather than serve with a guessable secret, plaintext payloads or the demo login."""

from __future__ import annotations

from portal.codec import CodecKeyError, parse_keys
from portal.settings import Settings

MIN_SECRET_KEY_LENGTH = 32
DEMO_STAFF = "demo-admin"


class UnsafeStart(Exception):
    """One line: what is wrong and which setting fixes it."""


def check_settings(settings: Settings) -> None:
    """Everything that can be judged from the environment alone; dev mode is exempt."""
    if settings.dev_mode:
        return
    if not settings.secret_key:
        raise UnsafeStart(
            "ACCESO_SECRET_KEY is not set: set it to a random string of at least "
            f"{MIN_SECRET_KEY_LENGTH} characters (python -c 'import secrets; "
            "print(secrets.token_urlsafe(48))')"
        )
    if len(settings.secret_key) < MIN_SECRET_KEY_LENGTH:
        raise UnsafeStart(
            f"ACCESO_SECRET_KEY is {len(settings.secret_key)} characters: set one of at least "
            f"{MIN_SECRET_KEY_LENGTH} (python -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )
    if not settings.codec_keys.strip():
        raise UnsafeStart(
            "ACCESO_CODEC_KEYS is not set: set kid:base64key (python -c 'from portal.codec "
            'import new_key_spec; print(new_key_spec("k1"))\'), see docs/operations.md'
        )
    try:
        parse_keys(settings.codec_keys)
    except CodecKeyError as error:
        raise UnsafeStart(f"ACCESO_CODEC_KEYS is malformed: {error}") from None
    if not settings.public_base_url.startswith("https://") and not settings.allow_http:
        raise UnsafeStart(
            f"ACCESO_PUBLIC_BASE_URL is {settings.public_base_url!r}: set an https:// URL, or "
            "ACCESO_ALLOW_HTTP=1 if TLS ends in front of a proxy you trust on a private network"
        )


def check_database(settings: Settings, session_factory) -> None:
    """The demo staff login (its password is printed by `acceso dev`) must not reach production."""
    if settings.dev_mode:
        return
    from sqlalchemy import func, select

    from portal.models import StaffUser

    with session_factory() as session:
        demo = session.scalar(
            select(StaffUser.id).where(func.lower(StaffUser.username) == DEMO_STAFF)
        )
    if demo is not None:
        raise UnsafeStart(
            "the demo staff account 'demo-admin' exists in this database: delete it (its "
            "password was printed by `acceso dev`) before starting in production, or set "
            "ACCESO_DEV_MODE=1 for a development copy"
        )


def check_production(settings: Settings, session_factory) -> None:
    check_settings(settings)
    check_database(settings, session_factory)


def refuse_unsafe_start(settings: Settings, prog: str) -> None:
    """Runs every check; on the first failure prints one line and exits with status 1."""
    import sys

    from portal.db import make_engine, make_session_factory

    try:
        check_settings(settings)
        if not settings.dev_mode:
            engine = make_engine(settings.database_url)
            try:
                check_database(settings, make_session_factory(engine))
            finally:
                engine.dispose()
    except UnsafeStart as error:
        print(f"{prog}: refusing to start: {error}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
