"""What the web tier and the activities call when an account's sessions end.

In the caller's transaction: every token family of the account is revoked at once, and one
back-channel logout per client with a logout URI is owed to the outbox.
"""

from __future__ import annotations

import secrets

from sqlalchemy.orm import Session

from portal.models import OidcClient
from portal.oidc import revoke_client_grants, revoke_user_grants
from processes.logout_delivery.vocabulary import DEFAULT_DEADLINE_SECONDS, WORKFLOW, LogoutNotice
from temporal.outbox import enqueue_start


def _tell(session: Session, client: OidcClient, user_id: int, deadline_seconds: int) -> bool:
    if not client.backchannel_logout_uri:
        return False
    enqueue_start(
        session,
        workflow=WORKFLOW,
        workflow_id=f"logout-delivery/{client.portal}/{secrets.token_hex(10)}",
        payload=LogoutNotice(
            portal=client.portal,
            client_pk=client.id,
            user_id=user_id,
            deadline_seconds=deadline_seconds,
        ),
        summary=f"back-channel logout: {client.name}",
    )
    return True


def sign_out_everywhere(
    session: Session, user_id: int, deadline_seconds: int = DEFAULT_DEADLINE_SECONDS
) -> int:
    """Returns how many clients will be told; the caller commits."""
    return sum(
        _tell(session, client, user_id, deadline_seconds)
        for client in revoke_user_grants(session, user_id)
    )


def sign_out_of_client(
    session: Session,
    user_id: int,
    client_pk: int,
    deadline_seconds: int = DEFAULT_DEADLINE_SECONDS,
) -> bool:
    """One application loses the account's tokens and hears of it; returns whether it held any
    live token. The caller commits."""
    client = revoke_client_grants(session, user_id, client_pk)
    if client is None:
        return False
    _tell(session, client, user_id, deadline_seconds)
    return True
