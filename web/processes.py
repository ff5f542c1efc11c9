"""Every conversation the web tier has with a workflow, in one place: start, update, signal."""

from __future__ import annotations

import contextlib
import secrets

from flask import current_app
from temporalio.client import WorkflowUpdateFailedError
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from portal.config import Portal
from processes import search_attributes
from processes.recovery.vocabulary import ResetConfirmation
from processes.recovery.workflows import PasswordResetWorkflow
from processes.registration.service import registration_id
from processes.registration.vocabulary import (
    IdentityCheck,
    IdentityResult,
    RegistrationStart,
    ResendRequest,
)
from processes.registration.workflows import RegistrationWorkflow


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
    with contextlib.suppress(WorkflowAlreadyStartedError):
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


def confirm_password_reset(workflow_id: str, token_id: int) -> bool:
    result = _call(
        lambda client: client.get_workflow_handle(workflow_id).execute_update(
            PasswordResetWorkflow.confirm_reset, ResetConfirmation(token_id=token_id)
        )
    )
    return result.applied


def invitation_id(portal: Portal) -> str:
    """Opaque: the invitee's name and address stay in the database, never in the id."""
    return f"invitation/{portal.slug}/{secrets.token_hex(8)}"
