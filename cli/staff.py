"""Staff accounts from the command line, so the first administrator exists before any web page."""

from __future__ import annotations

import getpass
import os
import re
import sys

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from portal import two_factor
from portal.audit import add_event
from portal.models import (
    STAFF_MIN_PASSWORD_LENGTH,
    LoginThrottle,
    StaffRole,
    StaffUser,
    UserSession,
)
from portal.passwords import hash_password, verify_password
from processes.account_notice.service import notify_staff
from processes.account_notice.vocabulary import NoticeKind

ROLES = tuple(StaffRole)
USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$")
MIN_PASSWORD_LENGTH = STAFF_MIN_PASSWORD_LENGTH
PASSWORD_ENV = "ACCESO_STAFF_PASSWORD"


class StaffError(Exception):
    """A request the command refuses, with the message to show."""


def split_list(values: list[str] | None) -> list[str]:
    """`--role a --role b,c` as ['a', 'b', 'c'], without blanks or repeats, in the order given."""
    items: list[str] = []
    for value in values or []:
        for item in value.split(","):
            item = item.strip().lower()
            if item and item not in items:
                items.append(item)
    return items


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StaffError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")


def password_from_env_or_prompt() -> str:
    """ACCESO_STAFF_PASSWORD for scripts; otherwise ask twice on the terminal."""
    password = os.environ.get(PASSWORD_ENV)
    if password is not None:
        check_password(password)
        return password
    if not sys.stdin.isatty():
        raise StaffError(f"no terminal to ask for the password on: set {PASSWORD_ENV}")
    try:
        first = getpass.getpass("Password: ")
        check_password(first)
        if getpass.getpass("Password (again): ") != first:
            raise StaffError("passwords do not match")
    except (EOFError, KeyboardInterrupt):
        raise StaffError("no password given") from None
    return first


def find_staff(session: Session, username: str) -> StaffUser | None:
    return session.scalar(
        select(StaffUser).where(func.lower(StaffUser.username) == username.lower())
    )


def add_staff(
    session_factory: sessionmaker[Session],
    username: str,
    roles: list[str],
    portals: list[str],
    password: str,
    *,
    known_portals: set[str],
    actor: str = "cli",
) -> StaffUser:
    """Create one staff user with an argon2id hash, and its audit event, in one transaction."""
    if not USERNAME_RE.match(username):
        raise StaffError(
            "username must be 2-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    if not roles:
        raise StaffError(f"give at least one --role ({', '.join(ROLES)})")
    unknown_roles = [role for role in roles if role not in ROLES]
    if unknown_roles:
        raise StaffError(
            f"unknown role(s): {', '.join(unknown_roles)}; choose from {', '.join(ROLES)}"
        )
    unknown_portals = [portal for portal in portals if portal not in known_portals]
    if unknown_portals:
        raise StaffError(
            f"unknown portal(s): {', '.join(unknown_portals)}; "
            f"configured: {', '.join(sorted(known_portals))}"
        )
    check_password(password)
    with session_factory.begin() as session:
        if find_staff(session, username) is not None:
            raise StaffError(f"staff user {username!r} already exists")
        staff = StaffUser(
            username=username,
            full_name=username,
            password_hash=hash_password(password),
            roles=",".join(roles),
            portals=",".join(portals),
        )
        session.add(staff)
        add_event(
            session,
            actor=actor,
            action="staff.created",
            username=username,
            roles=staff.roles,
            portals=staff.portals,
        )
    return staff


def ensure_staff(
    session_factory: sessionmaker[Session],
    username: str,
    roles: list[str],
    password: str,
    *,
    actor: str = "acceso dev",
) -> str:
    """Create the user, or make an existing one log in with `password`; says which it did."""
    with session_factory.begin() as session:
        staff = find_staff(session, username)
        if staff is None:
            session.add(
                StaffUser(
                    username=username,
                    full_name=username,
                    password_hash=hash_password(password),
                    roles=",".join(roles),
                )
            )
            add_event(session, actor=actor, action="staff.created", username=username)
            return "created"
        if verify_password(staff.password_hash, password) and staff.active:
            return "unchanged"
        staff.password_hash = hash_password(password)
        staff.active = True
        add_event(session, actor=actor, action="staff.password_reset", username=username)
        notify_staff(session, staff, NoticeKind.PASSWORD_CHANGED)
        return "password reset"


def reset_second_factor(
    session_factory: sessionmaker[Session], username: str, *, actor: str = "cli"
) -> None:
    """For an admin who lost both device and recovery codes: the next sign-in enrols again."""
    with session_factory.begin() as session:
        staff = find_staff(session, username)
        if staff is None:
            raise StaffError(f"no staff user {username!r}")
        if two_factor.remove(session, staff):
            notify_staff(session, staff, NoticeKind.SECOND_FACTOR_REMOVED)
        session.execute(delete(UserSession).where(UserSession.staff_id == staff.id))
        throttle = session.get(LoginThrottle, ("staff", staff.username.lower()))
        if throttle is not None:
            session.delete(throttle)
        add_event(session, actor=actor, action="staff.second_factor.reset", username=username)
