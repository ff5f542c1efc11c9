"""What the web tier and the activities call when an account's sessions end.

In the caller's transaction: the token families of the ended session (or of every session, or
of one application) are revoked at once, and one back-channel logout per client with a logout
URI is owed to the outbox.
"""

from __future__ import annotations

import secrets

from sqlalchemy.orm import Session

from portal.models import OidcClient
from portal.oidc import revoke_client_grants, revoke_session_grants, revoke_user_grants
from processes.logout_delivery.vocabulary import DEFAULT_DEADLINE_SECONDS, WORKFLOW, LogoutNotice
from temporal.outbox import enqueue_start


def sign_out_everywhere(
    session: Session,
    user_id: int,
    deadline_seconds: int = DEFAULT_DEADLINE_SECONDS,
    keep_offline: bool = False,
    *,
    acting_for: str | None = None,
    health_apps_only: bool = False,
) -> int:
    """Every session of the account (or, with `acting_for`, only the sign-ins made under that
    proxy grant; with `health_apps_only`, only the apps given a patient record): its logout
    tokens name no `sid`, so each client ends them all; health apps' offline access too unless
    `keep_offline` (the portal's policy after a password change). Returns how many clients
    will be told; the caller commits."""
    revoked = revoke_user_grants(
        session,
        user_id,
        keep_offline,
        acting_for=acting_for,
        health_apps_only=health_apps_only,
    )
    owed = [(client, None) for client in revoked]
    return _tell(session, user_id, owed, deadline_seconds)


def sign_out_session(
    session: Session, user_id: int, sid: str, deadline_seconds: int = DEFAULT_DEADLINE_SECONDS
) -> int:
    """One sign-in session (logout): only its grants end, and each logout token names its
    `sid`, so the account's other sessions at the same client go on. The caller commits."""
    return _tell(session, user_id, revoke_session_grants(session, user_id, sid), deadline_seconds)


def sign_out_of_client(
    session: Session,
    user_id: int,
    client_pk: int,
    deadline_seconds: int = DEFAULT_DEADLINE_SECONDS,
) -> bool:
    """One application loses the account's tokens (offline access included) and hears of it,
    for every session; returns whether it held any live token. The caller commits."""
    client = revoke_client_grants(session, user_id, client_pk)
    if client is None:
        return False
    _tell(session, user_id, [(client, None)], deadline_seconds)
    return True


def _tell(
    session: Session,
    user_id: int,
    owed: list[tuple[OidcClient, str | None]],
    deadline_seconds: int,
) -> int:
    told = 0
    for client, sid in owed:
        if not client.backchannel_logout_uri:
            continue
        enqueue_start(
            session,
            workflow=WORKFLOW,
            workflow_id=f"logout-delivery/{client.portal}/{secrets.token_hex(10)}",
            payload=LogoutNotice(
                portal=client.portal,
                client_pk=client.id,
                user_id=user_id,
                deadline_seconds=deadline_seconds,
                sid=sid,
            ),
            summary=f"back-channel logout: {client.name}",
        )
        told += 1
    return told
