"""Every conversation the web tier has with a workflow, in one place: start, update, signal."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from flask import current_app
from temporalio.client import WorkflowUpdateFailedError
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from portal.config import Portal
from workflows import search_attributes
from workflows.invitation import (
    InvitationAcceptance,
    InvitationStart,
    InvitationWorkflow,
    RevokeRequest,
)
from workflows.password_reset import (
    PasswordResetStart,
    PasswordResetWorkflow,
    ResetConfirmation,
    ResetRequested,
)
from workflows.registration import (
    AccountSubmission,
    CaseResolution,
    ConfirmationResult,
    EmailConfirmation,
    IdentityCheck,
    IdentityResult,
    RegistrationStart,
    RegistrationWorkflow,
    ResendRequest,
    ReviewDecision,
)
from workflows.username_reminder import (
    ReminderRequest,
    UsernameReminderStart,
    UsernameReminderWorkflow,
)


class ProcessRefused(Exception):
    """The workflow refused the request (its validator said no); `kind` says why."""

    def __init__(self, kind: str, message: str = ""):
        super().__init__(message or kind)
        self.kind = kind


class ProcessUnavailable(Exception):
    """Temporal could not be reached; the form keeps its data and asks to retry."""


def _bridge():
    return current_app.extensions["acceso.temporal"]


def _task_queue() -> str:
    return current_app.config["SETTINGS"].task_queue


def _call(action):
    try:
        return _bridge().call(action)
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        kind = cause.type if isinstance(cause, ApplicationError) and cause.type else "refused"
        raise ProcessRefused(kind, str(cause)) from error
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise ProcessRefused("closed", "the process has already finished") from error
        raise ProcessUnavailable(str(error)) from error
    except (TimeoutError, ConnectionError, RuntimeError) as error:
        raise ProcessUnavailable(str(error)) from error


def registration_id(portal: Portal, reference: str) -> str:
    return f"registration/{portal.slug}/{reference}"


def start_registration(
    portal: Portal, reference: str, user_id: int | None = None, client_id_key: str = ""
) -> str:
    workflow_id = registration_id(portal, reference)
    start = RegistrationStart(
        portal=portal.slug,
        reference=reference,
        steps=list(portal.steps),
        policy=portal.policy,
        user_id=user_id,
        client_id_key=client_id_key,
    )
    _call(
        lambda client: client.start_workflow(
            RegistrationWorkflow.run,
            start,
            id=workflow_id,
            task_queue=_task_queue(),
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            static_summary=f"{portal.name.source}: registration {reference}",
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(search_attributes.PORTAL, portal.slug),
                    SearchAttributePair(search_attributes.REFERENCE, reference),
                    SearchAttributePair(search_attributes.STEP, portal.steps[0]),
                ]
            ),
        )
    )
    return workflow_id


def confirm_email(workflow_id: str, token_id: int) -> ConfirmationResult:
    return _call(
        lambda client: client.get_workflow_handle(workflow_id).execute_update(
            RegistrationWorkflow.confirm_email_link, EmailConfirmation(token_id=token_id)
        )
    )


def resend_confirmation(workflow_id: str) -> None:
    _call(
        lambda client: client.get_workflow_handle(workflow_id).signal(
            RegistrationWorkflow.resend_confirmation, ResendRequest()
        )
    )


def check_identity(workflow_id: str, attempt: IdentityCheck) -> IdentityResult:
    return _call(
        lambda client: client.get_workflow_handle(workflow_id).execute_update(
            RegistrationWorkflow.check_identity, attempt
        )
    )


def submit_account(workflow_id: str, user_id: int) -> None:
    _call(
        lambda client: client.get_workflow_handle(workflow_id).execute_update(
            RegistrationWorkflow.submit_account, AccountSubmission(user_id=user_id)
        )
    )


def send_review_decision(workflow_id: str, decision: ReviewDecision) -> None:
    _call(
        lambda client: client.get_workflow_handle(workflow_id).signal(
            RegistrationWorkflow.review_decision, decision
        )
    )


def send_case_resolution(workflow_id: str, resolution: CaseResolution) -> None:
    _call(
        lambda client: client.get_workflow_handle(workflow_id).signal(
            RegistrationWorkflow.resolve_case, resolution
        )
    )


def _opaque(*parts: object) -> str:
    """A stable, unguessable workflow-ID suffix for an account or address; it reveals neither."""
    secret = current_app.config["SECRET_KEY"].encode()
    message = "/".join(str(part) for part in parts).encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:20]


def password_reset_id(portal: Portal, user_id: int) -> str:
    return f"password-reset/{portal.slug}/{_opaque('reset', portal.slug, user_id)}"


def username_reminder_id(portal: Portal, email: str) -> str:
    return f"username-reminder/{portal.slug}/{_opaque('usernames', portal.slug, email.lower())}"


def start_password_reset(portal: Portal, user_id: int | None) -> str:
    """A known account's requests join its pending reset (signal-with-start); others end at once."""
    start = PasswordResetStart(portal=portal.slug, policy=portal.policy, user_id=user_id)
    if user_id is None:
        workflow_id = f"password-reset/{portal.slug}/{secrets.token_hex(10)}"
        extra = {}
    else:
        workflow_id = password_reset_id(portal, user_id)
        extra = {"start_signal": "request_again", "start_signal_args": [ResetRequested()]}
    _call(
        lambda client: client.start_workflow(
            PasswordResetWorkflow.run,
            start,
            id=workflow_id,
            task_queue=_task_queue(),
            static_summary=f"{portal.name.source}: password reset",
            **extra,
        )
    )
    return workflow_id


def confirm_password_reset(workflow_id: str, token_id: int) -> bool:
    result = _call(
        lambda client: client.get_workflow_handle(workflow_id).execute_update(
            PasswordResetWorkflow.confirm_reset, ResetConfirmation(token_id=token_id)
        )
    )
    return result.applied


def start_username_reminder(
    portal: Portal, email: str, first_name: str = "", last_name: str = ""
) -> str:
    """Every request for an address goes to one workflow (signal-with-start), which e-mails at
    most once per cooldown."""
    workflow_id = username_reminder_id(portal, email)
    _call(
        lambda client: client.start_workflow(
            UsernameReminderWorkflow.run,
            UsernameReminderStart(
                portal=portal.slug,
                email=email,
                cooldown_minutes=portal.policy.username_reminder_cooldown_minutes,
            ),
            id=workflow_id,
            task_queue=_task_queue(),
            start_signal="remind",
            start_signal_args=[ReminderRequest(first_name=first_name, last_name=last_name)],
            static_summary=f"{portal.name.source}: forgotten username",
        )
    )
    return workflow_id


def invitation_id(portal: Portal) -> str:
    """Opaque: the invitee's name and address stay in the database, never in the id."""
    return f"invitation/{portal.slug}/{secrets.token_hex(8)}"


def start_invitation(portal: Portal, workflow_id: str, invitation_pk: int, invited_by: str) -> None:
    _call(
        lambda client: client.start_workflow(
            InvitationWorkflow.run,
            InvitationStart(
                portal=portal.slug,
                invitation_id=invitation_pk,
                invitation_days=portal.policy.invitation_days,
                invited_by=invited_by,
            ),
            id=workflow_id,
            task_queue=_task_queue(),
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            static_summary=f"{portal.name.source}: employee invitation",
        )
    )


def accept_invitation(workflow_id: str, token_id: int, user_id: int) -> str:
    result = _call(
        lambda client: client.get_workflow_handle(workflow_id).execute_update(
            InvitationWorkflow.accept, InvitationAcceptance(token_id=token_id, user_id=user_id)
        )
    )
    return result.status


def revoke_invitation(workflow_id: str, revoked_by: str) -> None:
    _call(
        lambda client: client.get_workflow_handle(workflow_id).signal(
            InvitationWorkflow.revoke, RevokeRequest(revoked_by=revoked_by)
        )
    )
