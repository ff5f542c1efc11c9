"""Which browser is signing in: a long-lived random cookie per browser, kept by the server only
as a hash per account, so a sign-in from a browser the account has never used is noticed."""

from __future__ import annotations

import secrets
from datetime import timedelta
from functools import lru_cache

from flask import after_this_request, current_app, g, request
from sqlalchemy import bindparam, exists, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from portal.access import describe_user_agent
from portal.audit import add_event
from portal.models import KnownDevice, User, utcnow
from portal.tokens import new_token, token_hash
from processes.account_notice.service import notify_new_device
from web.db import get_db

DEVICE_COOKIE = "acceso_device"
DEVICE_COOKIE_DAYS = 400
"""The longest a browser keeps a cookie (Chrome caps at 400 days)."""


def _device_token() -> str:
    """This browser's device token, minted now (and set on the answer) if it has none."""
    raw = request.cookies.get(DEVICE_COOKIE, "")
    if 20 <= len(raw) <= 64 and raw.replace("-", "").replace("_", "").isalnum():
        return raw
    raw = new_token()

    @after_this_request
    def set_cookie(response):
        response.set_cookie(
            DEVICE_COOKIE,
            raw,
            max_age=int(timedelta(days=DEVICE_COOKIE_DAYS).total_seconds()),
            httponly=True,
            samesite="Lax",
            secure=current_app.config["SETTINGS"].public_base_url.startswith("https://"),
        )
        return response

    return raw


@lru_cache(maxsize=2)
def _record_device(dialect: str):
    """The browser's row for the account unless it has one, built once per dialect."""
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    table = KnownDevice.__table__
    return (
        insert(table)
        .values(
            user_id=bindparam("b_user"),
            device_hash=bindparam("b_device"),
            first_seen_at=bindparam("b_now"),
        )
        .on_conflict_do_nothing(index_elements=[table.c.user_id, table.c.device_hash])
        .returning(table.c.id)
    )


def device_sign_in(user: User) -> str:
    """Records this browser for the account and returns its hash; the first sign-in from a new
    browser of an account that has signed in elsewhere before owes the owner a notice, which
    the outbox sends (never this request). The caller commits."""
    db = get_db()
    device_hash = token_hash(_device_token())
    added = db.execute(
        _record_device(db.get_bind().dialect.name),
        {"b_user": user.id, "b_device": device_hash, "b_now": utcnow()},
    ).scalar()
    if added is None:
        return device_hash
    had_devices = db.scalar(
        select(
            exists().where(KnownDevice.user_id == user.id, KnownDevice.device_hash != device_hash)
        )
    )
    if had_devices and g.portal.policy.new_device_notice:
        agent = describe_user_agent((request.headers.get("User-Agent") or "")[:400])
        workflow_id = f"sign-in-notice/{user.portal}/{secrets.token_hex(10)}"
        db.execute(
            update(KnownDevice)
            .where(KnownDevice.user_id == user.id, KnownDevice.device_hash == device_hash)
            .values(notice_workflow_id=workflow_id)
        )
        notify_new_device(
            db,
            user,
            workflow_id=workflow_id,
            browser=agent.browser,
            system=agent.system,
            link_hours=g.portal.policy.not_me_link_hours,
        )
        add_event(
            db,
            actor=f"user:{user.id}",
            action="login.new_device",
            portal=user.portal,
            workflow_id=workflow_id,
            user_id=user.id,
        )
    return device_hash
