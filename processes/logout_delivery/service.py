"""What the web tier and the activities call when an account's sessions end.

In the caller's transaction: every token family of the account is revoked at once, and one
back-channel logout per client with a logout URI is owed to the outbox.
"""

from __future__ import annotations

import secrets

from sqlalchemy.orm import Session

from portal.oidc import revoke_user_grants
from processes.logout_delivery.vocabulary import DEFAULT_DEADLINE_SECONDS, WORKFLOW, LogoutNotice
from temporal.outbox import enqueue_start


def sign_out_everywhere(
    session: Session,
    user_id: int,
    deadline_seconds: int = DEFAULT_DEADLINE_SECONDS,
    *,
    acting_for: str | None = None,
) -> int:
    """Returns how many clients will be told; the caller commits. With `acting_for`, only the
    sign-ins made under that proxy grant end."""
    told = 0
    for client in revoke_user_grants(session, user_id, acting_for=acting_for):
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
            ),
            summary=f"back-channel logout: {client.name}",
        )
        told += 1
    return told
