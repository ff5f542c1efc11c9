"""Attempts per client address at sign-in, registration, recovery, identity checks and tokens.

Counting uses the `limits` package (fixed windows) over a storage in the app's own database, so
every gunicorn worker and every web machine shares one count. The client is the connecting
address, or the nearest X-Forwarded-For hop that is not one of the proxies named in settings.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from functools import cached_property, wraps

from flask import current_app, g, request
from limits import RateLimitItem, parse_many
from limits.storage import Storage
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import bindparam, case, delete, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import TooManyRequests

from portal.models import RateLimitCounter

log = logging.getLogger("acceso.ratelimit")

KINDS = ("sign_in", "registration", "recovery", "identity", "token")
"""Each kind's limits are the setting `rate_limit_<kind>` (e.g. "10/minute;100/hour")."""


class DatabaseStorage(Storage):
    """A `limits` storage in one table; each increment is one atomic upsert, on SQLite and
    PostgreSQL alike, so concurrent workers never lose a count."""

    STORAGE_SCHEME = ["acceso-database"]

    def __init__(self, uri: str | None = None, engine: Engine | None = None, **options):
        super().__init__(uri, **options)
        if engine is None:
            raise ValueError("DatabaseStorage needs the app's engine")
        self.engine = engine
        dialect = engine.dialect.name
        self._insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
        self._joined: ContextVar[Connection | None] = ContextVar("joined", default=None)

    @contextmanager
    def joining(self, connection: Connection):
        """Counts and reads on `connection`, in its caller's transaction (who commits)."""
        token = self._joined.set(connection)
        try:
            yield
        finally:
            self._joined.reset(token)

    @property
    def base_exceptions(self):
        return SQLAlchemyError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        params = {"b_key": key, "amount": amount, "now": now, "expires": now + expiry}
        joined = self._joined.get()
        if joined is not None:
            return int(joined.execute(self._increment, params).scalar_one())
        with self.engine.begin() as connection:
            return int(connection.execute(self._increment, params).scalar_one())

    @cached_property
    def _increment(self):
        """The upsert, built once (building it costs more than running it): a fresh window
        starts at `amount`, a live one adds `amount`."""
        table = RateLimitCounter.__table__
        fresh = table.c.expires_at <= bindparam("now")
        amount = bindparam("amount")
        statement = self._insert(table).values(
            key=bindparam("b_key"), count=amount, expires_at=bindparam("expires")
        )
        return statement.on_conflict_do_update(
            index_elements=[table.c.key],
            set_={
                "count": case((fresh, amount), else_=table.c.count + amount),
                "expires_at": case((fresh, bindparam("expires")), else_=table.c.expires_at),
            },
        ).returning(table.c.count)

    def _row(self, key: str):
        statement = select(RateLimitCounter.count, RateLimitCounter.expires_at).where(
            RateLimitCounter.key == key
        )
        joined = self._joined.get()
        if joined is not None:
            return joined.execute(statement).first()
        with self.engine.connect() as connection:
            return connection.execute(statement).first()

    def get(self, key: str) -> int:
        row = self._row(key)
        return int(row.count) if row and row.expires_at > time.time() else 0

    def get_expiry(self, key: str) -> float:
        row = self._row(key)
        return float(row.expires_at) if row and row.expires_at > time.time() else time.time()

    def check(self) -> bool:
        try:
            self._row("")
        except SQLAlchemyError:
            return False
        return True

    def reset(self) -> int | None:
        with self.engine.begin() as connection:
            return connection.execute(delete(RateLimitCounter)).rowcount

    def clear(self, key: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(RateLimitCounter)
                .where(RateLimitCounter.key == key)
                .values(count=0, expires_at=0.0)
            )


def _networks(raw: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [
        ipaddress.ip_network(part.strip(), strict=False) for part in raw.split(",") if part.strip()
    ]


def _trusted(address: str, networks) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address() -> str:
    """The connecting address; behind proxies named in settings, the first hop (from the right)
    of X-Forwarded-For that is not such a proxy. A client cannot forge its way past this."""
    remote = request.environ.get("REMOTE_ADDR") or "unknown"
    networks = _networks(current_app.config["SETTINGS"].trusted_proxies)
    if not networks or not _trusted(remote, networks):
        return remote
    hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",")]
    for hop in reversed([hop for hop in hops if hop]):
        if not _trusted(hop, networks):
            return hop
    return remote


class RateLimits:
    """The app's limiter: one storage, one strategy, the limits of each kind from settings."""

    def __init__(self, engine: Engine, settings) -> None:
        self.storage = DatabaseStorage(engine=engine)
        self.limiter = FixedWindowRateLimiter(self.storage)
        self.items: dict[str, list[RateLimitItem]] = {
            kind: parse_many(getattr(settings, f"rate_limit_{kind}"))
            for kind in KINDS
            if getattr(settings, f"rate_limit_{kind}", "")
        }

    def hit(self, kind: str, client: str, connection: Connection | None = None) -> float | None:
        """Counts one attempt; None when allowed, else seconds until the client may try again.
        With `connection`, in its caller's transaction; otherwise committed at once."""
        if connection is not None:
            with self.storage.joining(connection):
                return self.hit(kind, client)
        waits = []
        for item in self.items.get(kind, []):
            if not self.limiter.hit(item, kind, client):
                reset = self.limiter.get_window_stats(item, kind, client).reset_time
                waits.append(max(1.0, reset - time.time()))
        return max(waits) if waits else None


def check_rate_limit(kind: str) -> None:
    """Counts this request against the client's `kind` limit; over it, a 429 with Retry-After.
    If the database cannot count, the request goes on (sign-in would fail anyway)."""
    limits: RateLimits = current_app.extensions["acceso.rate_limits"]
    client = client_address()
    try:
        wait = limits.hit(kind, client)
    except SQLAlchemyError:
        log.warning("rate limit storage unavailable; %s not counted", kind, exc_info=True)
        return
    if wait is not None:
        log.warning("rate limit %s exceeded by %s", kind, client)
        raise TooManyRequests(retry_after=int(wait + 0.999))


OWED = "acceso_rate_limit_owed"
COUNTED_WITH_CLAIM = frozenset({"auth.login"})
"""Sign-in forms whose view counts the client's attempt in the same transaction as the
account's (`web.auth.claim_attempt`): one commit before the hash instead of two. A POST that
never reaches that claim (a bad form or CSRF token, an error) is counted on its own instead,
by `settle_owed`, as every other limited form is."""


def count_owed(connection: Connection) -> TooManyRequests | None:
    """Counts the client's attempt this request still owes, on `connection` in its caller's
    transaction; over the limit, the 429 to raise once the caller has committed the count."""
    kind = g.pop(OWED, None)
    if kind is None:
        return None
    client = client_address()
    wait = current_app.extensions["acceso.rate_limits"].hit(kind, client, connection)
    if wait is None:
        return None
    log.warning("rate limit %s exceeded by %s", kind, client)
    return TooManyRequests(retry_after=int(wait + 0.999))


def settle_owed() -> None:
    """Counts the attempt a POST to a `COUNTED_WITH_CLAIM` form owes when it will claim nothing
    (a 429 if over the limit), so every POST counts once whichever way it ends."""
    kind = g.pop(OWED, None)
    if kind is not None:
        check_rate_limit(kind)


def _settle_at_teardown(_exc: BaseException | None = None) -> None:
    """The last resort: a request that failed before counting still counts (no 429 by now)."""
    with suppress(TooManyRequests):
        settle_owed()


def rate_limited(kind: str, methods: tuple[str, ...] = ("POST",)) -> Callable:
    """Decorates a view so each of its submissions (POSTs by default) counts against `kind`."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def limited(*args, **kwargs):
            if request.method in methods:
                check_rate_limit(kind)
            return view(*args, **kwargs)

        return limited

    return decorate


LIMITED_ENDPOINTS: dict[str, str] = {
    "auth.login": "sign_in",
    "staff.login": "sign_in",
    "auth.second_step": "sign_in",
    "auth.enrol": "sign_in",
    "staff.second_step": "sign_in",
    "staff.enrol": "sign_in",
    "staff.passkey_login": "sign_in",
    "account.change_password": "sign_in",
    "account.security": "sign_in",
    "account.change_email": "sign_in",
    "registration.register": "registration",
    "registration.provider_office": "registration",
    "registration.provider_summary": "registration",
    "registration.resend_confirmation": "registration",
    "recovery.username": "recovery",
    "recovery.password": "recovery",
}
"""Endpoints whose POSTs count, kept here so one table shows every limited form; areas built
later add theirs with `limit_endpoint` or decorate their view with `rate_limited`."""


def limit_endpoint(endpoint: str, kind: str) -> None:
    LIMITED_ENDPOINTS[endpoint] = kind


def _count_limited_posts() -> None:
    kind = LIMITED_ENDPOINTS.get(request.endpoint or "")
    if kind and request.method == "POST":
        if request.endpoint in COUNTED_WITH_CLAIM:
            g.setdefault(OWED, kind)
            return
        check_rate_limit(kind)


def init_app(app) -> None:
    app.extensions["acceso.rate_limits"] = RateLimits(
        app.extensions["acceso.engine"], app.config["SETTINGS"]
    )
    app.before_request(_count_limited_posts)
    app.teardown_request(_settle_at_teardown)
