"""Recovery requests are recorded with the process they owe (outbox), in one transaction: a
crash after the commit still e-mails the person, one before it leaves nothing behind."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy.orm import Session

from portal.audit import add_event
from portal.config import Portal
from portal.models import EmailToken
from processes.recovery.vocabulary import (
    PasswordResetStart,
    ReminderRequest,
    ResetConfirmation,
    ResetRequested,
    Signal,
    UsernameReminderStart,
    Workflow,
)
from temporal.bridge import TemporalBridge, ask
from temporal.outbox import enqueue_start


def opaque(secret: str, *parts: object) -> str:
    """A stable, unguessable workflow-ID suffix for an account or address; it reveals neither."""
    message = "/".join(str(part) for part in parts).encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:20]


def password_reset_id(secret: str, portal: Portal, user_id: int) -> str:
    return f"password-reset/{portal.slug}/{opaque(secret, 'reset', portal.slug, user_id)}"


def username_reminder_id(secret: str, portal: Portal, email: str) -> str:
    suffix = opaque(secret, "usernames", portal.slug, email.lower())
    return f"username-reminder/{portal.slug}/{suffix}"


def request_password_reset(
    session: Session, secret: str, portal: Portal, user_id: int | None
) -> str:
    """A known account's requests join its pending reset (signal-with-start); others start a
    process that ends at once, so neither the answer nor the work differs on screen."""
    start = PasswordResetStart(portal=portal.slug, policy=portal.policy, user_id=user_id)
    if user_id is None:
        workflow_id = f"password-reset/{portal.slug}/{secrets.token_hex(10)}"
        extra = {}
    else:
        workflow_id = password_reset_id(secret, portal, user_id)
        extra = {"signal": Signal.REQUEST_AGAIN, "signal_payload": ResetRequested()}
    enqueue_start(
        session,
        workflow=Workflow.PASSWORD_RESET,
        workflow_id=workflow_id,
        payload=start,
        reuse_finished_id=True,
        summary=f"{portal.name.source}: password reset",
        **extra,
    )
    add_event(
        session,
        actor="anonymous",
        action="recovery.password_requested",
        portal=portal.slug,
        workflow_id=workflow_id,
        user_id=user_id,
    )
    session.commit()
    return workflow_id


def request_username_reminder(
    session: Session,
    secret: str,
    portal: Portal,
    email: str,
    first_name: str = "",
    last_name: str = "",
) -> str:
    """Every request for an address joins one process, which e-mails at most once per cooldown."""
    workflow_id = username_reminder_id(secret, portal, email)
    enqueue_start(
        session,
        workflow=Workflow.USERNAME_REMINDER,
        workflow_id=workflow_id,
        payload=UsernameReminderStart(
            portal=portal.slug,
            email=email,
            cooldown_minutes=portal.policy.username_reminder_cooldown_minutes,
        ),
        signal=Signal.REMIND,
        signal_payload=ReminderRequest(first_name=first_name, last_name=last_name),
        reuse_finished_id=True,
        summary=f"{portal.name.source}: forgotten username",
    )
    session.commit()
    return workflow_id


def confirm_reset(
    session: Session, bridge: TemporalBridge, token: EmailToken, new_password_hash: str | None
) -> bool:
    """The reset link's POST: a chosen password (link mode, already hashed) waits on the link's
    row, then the workflow's update applies it, or mails a temporary one; False if it would not.
    The update's id is the link's, so a press retried while the first is still being applied
    joins it and gets its answer instead of a refusal."""
    from processes.recovery.workflows import PasswordResetWorkflow

    if new_password_hash is not None:
        token.pending_password_hash = new_password_hash
        session.commit()
    workflow_id, token_id = token.workflow_id, token.id
    result = ask(
        bridge,
        lambda client: client.get_workflow_handle(workflow_id).execute_update(
            PasswordResetWorkflow.confirm_reset,
            ResetConfirmation(token_id=token_id),
            id=f"confirm-reset-{token_id}",
        ),
    )
    return result.applied
