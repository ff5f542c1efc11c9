"""The workflow and signal names a process's vocabulary gives the outbox are the names its
workflow really answers to: a renamed handler or a mistyped name fails here, not in a relay
that retries a signal no workflow can take."""

from __future__ import annotations

import pytest
from temporalio import workflow

from processes.account_notice import vocabulary as account_notice
from processes.account_notice.workflows import AccountNoticeWorkflow
from processes.app_registration import vocabulary as app_registration
from processes.app_registration.workflows import AppRegistrationWorkflow
from processes.email_change import vocabulary as email_change
from processes.email_change.workflows import EmailChangeWorkflow
from processes.invitation import vocabulary as invitation
from processes.invitation.workflows import InvitationWorkflow
from processes.logout_delivery import vocabulary as logout_delivery
from processes.logout_delivery.workflows import LogoutDeliveryWorkflow
from processes.proxy_grant import vocabulary as proxy_grant
from processes.proxy_grant.workflows import ProxyGrantWorkflow
from processes.recovery import vocabulary as recovery
from processes.recovery.workflows import PasswordResetWorkflow, UsernameReminderWorkflow
from processes.registration import vocabulary as registration
from processes.registration.workflows import RegistrationWorkflow
from processes.staff_invitation import vocabulary as staff_invitation
from processes.staff_invitation.workflows import StaffInvitationWorkflow


def definition(cls) -> workflow._Definition:
    return workflow._Definition.must_from_class(cls)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        (registration.WORKFLOW, RegistrationWorkflow),
        (email_change.WORKFLOW, EmailChangeWorkflow),
        (invitation.WORKFLOW, InvitationWorkflow),
        (staff_invitation.WORKFLOW, StaffInvitationWorkflow),
        (account_notice.WORKFLOW, AccountNoticeWorkflow),
        (logout_delivery.WORKFLOW, LogoutDeliveryWorkflow),
        (proxy_grant.WORKFLOW, ProxyGrantWorkflow),
        (app_registration.WORKFLOW, AppRegistrationWorkflow),
        (recovery.Workflow.PASSWORD_RESET, PasswordResetWorkflow),
        (recovery.Workflow.USERNAME_REMINDER, UsernameReminderWorkflow),
    ],
)
def test_each_named_workflow_type_is_the_workflows_own(name, cls):
    assert definition(cls).name == name


@pytest.mark.parametrize(
    ("signals", "classes"),
    [
        (registration.Signal, [RegistrationWorkflow]),
        (email_change.Signal, [EmailChangeWorkflow]),
        (proxy_grant.Signal, [ProxyGrantWorkflow]),
        (app_registration.Signal, [AppRegistrationWorkflow]),
        (invitation.Signal, [InvitationWorkflow]),
        (staff_invitation.Signal, [StaffInvitationWorkflow]),
        (recovery.Signal, [PasswordResetWorkflow, UsernameReminderWorkflow]),
    ],
)
def test_each_named_signal_has_a_handler(signals, classes):
    handled = {name for cls in classes for name in definition(cls).signals}
    assert set(signals) <= handled
