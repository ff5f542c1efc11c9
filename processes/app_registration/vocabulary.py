"""What an app registration's process carries: its steps, its start, the decision it waits for,
the checks it runs and the e-mails it sends. No address, secret or token travels: the process
carries the application's id and the policy's numbers; the rest stays in the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

WORKFLOW = "AppRegistrationWorkflow"
"""The workflow's type name, as the outbox starts it and the recorded histories hold it."""

CREDENTIALS_WORKFLOW = "AppCredentialsWorkflow"
"""A developer's request for new credentials, mailed once, then a quiet period."""


class Step(StrEnum):
    """An application's life, the same value in app_registrations.status and AccesoStep.
    Only `in_review` takes a decision; `approved` is decided but its client is being made."""

    CHECKING = "checking"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    REGISTERED = "registered"
    DENIED = "denied"
    LAPSED = "lapsed"


FINAL = (Step.REGISTERED, Step.DENIED, Step.LAPSED)


class ClientType(StrEnum):
    PUBLIC = "public"
    CONFIDENTIAL = "confidential"


class Decision(StrEnum):
    APPROVE = "approve"
    DENY = "deny"


class Decided(StrEnum):
    """What a reviewer's decision did."""

    DONE = "done"
    NOT_WAITING = "not_waiting"
    INSECURE_REDIRECT = "insecure_redirect"


class Check(StrEnum):
    """The automatic checks, in the order they run and are shown to staff."""

    REDIRECT_URIS = "redirect_uris"
    PRIVACY_POLICY = "privacy_policy"


class Signal(StrEnum):
    REVIEW_DECISION = "review_decision"


class Mail(StrEnum):
    """The process's e-mails: kinds of the one template pair `app_registration`."""

    RECEIVED = "received"
    REVIEW_OVERDUE = "review_overdue"
    DENIED = "denied"
    LAPSED = "lapsed"
    CREDENTIALS = "credentials"
    NEW_CREDENTIALS = "new_credentials"


class LinkPurpose(StrEnum):
    CREDENTIALS = "app_credentials"


@dataclass
class AppRegistrationStart:
    portal: str
    application_id: int
    review_sla_hours: int
    review_final_hours: int
    credentials_link_hours: int


@dataclass
class CheckResult:
    """One automatic check as staff see it; `detail` says what failed, never a secret."""

    check: Check
    passed: bool
    detail: str = ""


@dataclass
class ReviewDecision:
    """The database already says `approved` or `denied`, with the reason; this tells the
    process who decided."""

    decision: Decision
    reviewer: str


@dataclass
class AppRegistrationOutcome:
    status: Step
    client_pk: int = 0


@dataclass
class AppRegistrationStatus:
    step: Step
    overdue: bool = False
    checks: list[CheckResult] = field(default_factory=list)


@dataclass
class AppCredentialsStart:
    """A new credentials link for a registered app: the link belongs to the application's own
    process (`application_workflow_id`), so its page finds the application; the request's
    process only mails it and then, for `quiet_minutes`, turns further requests into no-ops."""

    portal: str
    application_id: int
    application_workflow_id: str
    credentials_link_hours: int
    quiet_minutes: int


@dataclass
class AppCredentialsOutcome:
    mailed: bool
