"""What an account can see of its own access: its sessions, the applications it let in, the
security events of its audit trail, and the consent it gave each application.

Read once per page in a fixed number of queries, whatever the number of sessions, clients or
grants; shared by the person's activity page and the staff account page.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import delete, func, or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from portal.audit import add_event
from portal.models import (
    AuditEvent,
    OidcClient,
    OidcConsent,
    OidcGrant,
    OidcRefreshToken,
    User,
    UserSession,
    utcnow,
)

SECURITY_ACTIONS = (
    "login",
    "login.failed",
    "login.locked",
    "login.new_device",
    "login.not_me",
    "logout",
    "account.unlocked_by_helpdesk",
    "account.disabled_by_helpdesk",
    "account.enabled_by_helpdesk",
    "password.changed",
    "password.reset",
    "second_factor.enrolled",
    "second_factor.removed",
    "second_factor.reset_by_helpdesk",
    "recovery_code.used",
    "session.ended",
    "sessions.ended_others",
    "sessions.ended_by_helpdesk",
    "application.allowed",
    "application.removed",
    "profile.updated",
)
"""The audit actions a person reads as their account's security history."""
SECURITY_PREFIXES = ("email_change.",)
"""Whole families of actions that belong there too (the e-mail change process's steps)."""
RECENT_EVENTS = 25


@dataclass
class SessionView:
    handle: str
    user_agent: str
    created_at: datetime
    last_seen_at: datetime
    current: bool
    remember: bool


@dataclass
class ApplicationView:
    client_pk: int
    name: str
    scopes: list[str]
    granted_at: datetime
    last_used_at: datetime | None
    first_party: bool


def session_handle(row_id: str) -> str:
    """What a page shows for a session: a hash of its row id, which is itself a hash of the
    cookie, so neither the page nor a form ever carries anything that opens a session."""
    return hashlib.sha256(f"session-handle/{row_id}".encode()).hexdigest()[:24]


def live_sessions(
    db: Session, user_id: int, current_row_id: str | None, idle_minutes: int
) -> list[SessionView]:
    """Sessions that would still let their browser in: unexpired, and not idle past the
    portal's limit unless "keep me signed in" was chosen."""
    now = utcnow()
    rows = db.scalars(
        select(UserSession)
        .where(
            UserSession.user_id == user_id,
            UserSession.expires_at > now,
            or_(
                UserSession.remember.is_(True),
                UserSession.last_seen_at > now - timedelta(minutes=idle_minutes),
            ),
        )
        .order_by(UserSession.last_seen_at.desc())
    ).all()
    return [
        SessionView(
            handle=session_handle(row.id),
            user_agent=row.user_agent,
            created_at=row.created_at,
            last_seen_at=row.last_seen_at,
            current=row.id == current_row_id,
            remember=row.remember,
        )
        for row in rows
    ]


def session_by_handle(db: Session, user_id: int, handle: str) -> UserSession | None:
    """One of the account's own sessions, or None: a handle from another account finds nothing."""
    rows = db.scalars(select(UserSession).where(UserSession.user_id == user_id)).all()
    return next((row for row in rows if session_handle(row.id) == handle), None)


def applications(db: Session, user_id: int) -> list[ApplicationView]:
    """Every client holding a live grant of the account or a remembered consent: three queries."""
    grants = db.execute(
        select(
            OidcGrant.client_pk,
            OidcGrant.scope,
            OidcGrant.created_at,
            func.max(OidcRefreshToken.created_at),
        )
        .outerjoin(OidcRefreshToken, OidcRefreshToken.grant_id == OidcGrant.id)
        .where(OidcGrant.user_id == user_id, OidcGrant.revoked_at.is_(None))
        .group_by(OidcGrant.id, OidcGrant.client_pk, OidcGrant.scope, OidcGrant.created_at)
    ).all()
    consents = {
        row.client_pk: row
        for row in db.scalars(select(OidcConsent).where(OidcConsent.user_id == user_id))
    }
    client_pks = {pk for pk, *_ in grants} | set(consents)
    if not client_pks:
        return []
    clients = {
        client.id: client
        for client in db.scalars(select(OidcClient).where(OidcClient.id.in_(client_pks)))
    }
    found: dict[int, ApplicationView] = {}
    for pk, scope, created_at, last_refresh in grants:
        last = max(created_at, last_refresh) if last_refresh else created_at
        view = found.get(pk)
        if view is None:
            found[pk] = ApplicationView(
                client_pk=pk,
                name=clients[pk].name,
                scopes=scope.split(),
                granted_at=created_at,
                last_used_at=last,
                first_party=clients[pk].first_party,
            )
            continue
        view.scopes = list(dict.fromkeys(view.scopes + scope.split()))
        view.granted_at = min(view.granted_at, created_at)
        view.last_used_at = max(view.last_used_at or last, last)
    for pk, consent in consents.items():
        view = found.get(pk)
        if view is None:
            found[pk] = ApplicationView(
                client_pk=pk,
                name=clients[pk].name,
                scopes=consent.scope.split(),
                granted_at=consent.granted_at,
                last_used_at=None,
                first_party=clients[pk].first_party,
            )
        else:
            view.scopes = list(dict.fromkeys(consent.scope.split() + view.scopes))
            view.granted_at = min(view.granted_at, consent.granted_at)
    return sorted(found.values(), key=lambda v: v.name.lower())


def security_events(db: Session, user_id: int, limit: int = RECENT_EVENTS) -> list[AuditEvent]:
    return list(
        db.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.user_id == user_id,
                or_(
                    AuditEvent.action.in_(SECURITY_ACTIONS),
                    *(AuditEvent.action.startswith(p, autoescape=True) for p in SECURITY_PREFIXES),
                ),
            )
            .order_by(AuditEvent.id.desc())
            .limit(limit)
        )
    )


# --- consent --------------------------------------------------------------------------------


def consent_covers(db: Session, user_id: int, client_pk: int, scopes: list[str]) -> bool:
    """Whether every scope asked for was allowed before, so the screen need not come back."""
    allowed = db.scalar(
        select(OidcConsent.scope).where(
            OidcConsent.user_id == user_id, OidcConsent.client_pk == client_pk
        )
    )
    return allowed is not None and set(scopes) <= set(allowed.split())


def remember_consent(db: Session, user: User, client: OidcClient, scopes: list[str]) -> None:
    """Adds the scopes just allowed to what the client was allowed before, in one upsert (two
    tabs allowing at once both land), with its audit line; the caller commits."""
    user_id, client_pk = user.id, client.id
    allowed = db.scalar(
        select(OidcConsent.scope).where(
            OidcConsent.user_id == user_id, OidcConsent.client_pk == client_pk
        )
    )
    merged = " ".join(dict.fromkeys([*(allowed or "").split(), *scopes]))
    now = utcnow()
    insert = postgresql_insert if db.get_bind().dialect.name == "postgresql" else sqlite_insert
    table = OidcConsent.__table__
    db.execute(
        insert(table)
        .values(user_id=user_id, client_pk=client_pk, scope=merged, granted_at=now, updated_at=now)
        .on_conflict_do_update(
            index_elements=[table.c.user_id, table.c.client_pk],
            set_={"scope": merged, "updated_at": now},
        )
    )
    add_event(
        db,
        actor=f"user:{user.id}",
        action="application.allowed",
        portal=user.portal,
        user_id=user.id,
        client=client.name,
        scope=" ".join(scopes),
    )


def forget_consent(db: Session, user_id: int, client_pk: int) -> bool:
    """Whether there was a consent to forget; the caller commits."""
    return bool(
        db.execute(
            delete(OidcConsent).where(
                OidcConsent.user_id == user_id, OidcConsent.client_pk == client_pk
            )
        ).rowcount
    )


# --- user agents ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    browser: str
    system: str


@lru_cache(maxsize=512)
def describe_user_agent(user_agent: str) -> Device:
    """Browser and system as ua-parser reads them ("Chrome 120", "Windows 10"); empty when the
    string says nothing it recognises."""
    from ua_parser import parse

    if not user_agent:
        return Device("", "")
    parsed = parse(user_agent)
    browser = system = ""
    if parsed.user_agent is not None and parsed.user_agent.family != "Other":
        browser = " ".join(filter(None, (parsed.user_agent.family, parsed.user_agent.major)))
    if parsed.os is not None and parsed.os.family != "Other":
        system = " ".join(filter(None, (parsed.os.family, parsed.os.major)))
    return Device(browser, system)
