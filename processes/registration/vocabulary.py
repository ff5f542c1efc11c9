"""What a registration's process carries: its start and outcome, and each update, signal and
query message; shared by the workflow, the web tier and the staff console."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from portal.config import Policy


class Step(StrEnum):
    """Where a registration stands while it runs. The workflow moves through these and the
    registrations table keeps the latest (a confirmation click and a review decision write theirs first), so pages,
    the console and the metrics read the table instead of asking Temporal."""

    STARTED = "started"
    IDENTITY = "identity"
    ESCALATED = "escalated"
    ACCOUNT = "account"
    CONFIRM_EMAIL = "confirm_email"
    PENDING_REVIEW = "pending_review"
    REVIEW = "review"


class Outcome(StrEnum):
    """How a registration ended (or, for `approved`, is ending); the registrations table keeps
    it in the same column as the step, as the last place the registration reached."""

    APPROVED = "approved"
    ACTIVE = "active"
    DENIED = "denied"
    EXPIRED = "expired"
    CLOSED = "closed"
    LAPSED = "lapsed"


AWAITING_REVIEW = (Step.PENDING_REVIEW, Step.REVIEW)


class CaseOutcome(StrEnum):
    """The help desk's answer to an escalated identity check."""

    ALLOW_RETRY = "allow_retry"
    CLOSE = "close"


class CaseStatus(StrEnum):
    OPEN = "open"
    RETRY_ALLOWED = "retry_allowed"
    CLOSED = "closed"


WORKFLOW = "RegistrationWorkflow"
"""The workflow's type name, as the outbox starts it and the recorded histories hold it."""


class Signal(StrEnum):
    """The registration's signals, by the workflow method names the outbox delivers them to."""

    SUBMIT_ACCOUNT = "submit_account"
    EMAIL_CONFIRMED = "email_confirmed"
    RESEND_CONFIRMATION = "resend_confirmation"
    REVIEW_DECISION = "review_decision"
    RESOLVE_CASE = "resolve_case"


class IdentityRefusal(StrEnum):
    """Why the identity-check update's validator said no (the ApplicationError type the web
    tier receives as the refusal's kind)."""

    ESCALATED = "Escalated"
    STEP = "Step"
    BUSY = "Busy"


class TokenPurpose(StrEnum):
    """The e-mailed links a registration mints, as their rows are marked."""

    CONFIRM_EMAIL = "confirm_email"
    IDENTITY_RETRY = "identity_retry"


class WizardStep(StrEnum):
    """The member wizard's pages (seed 001) and where it sends the applicant once the
    registration has moved on without them (help desk, expiry, done)."""

    AGREEMENT = "agreement"
    IDENTITY = "identity"
    ESCALATED = "escalated"
    ACCOUNT = "account"
    REVIEW = "review"
    DONE = "done"
    EXPIRED = "expired"
    CLOSED = "closed"


class Submission(StrEnum):
    """How a member's Finish or a patient's form ended: the account stored and owed to the
    workflow (or, for a patient, the answer owed by e-mail), or why not; `repeated` is a second
    post of a form whose first one was accepted."""

    SUBMITTED = "submitted"
    INCOMPLETE = "incomplete"
    USERNAME_TAKEN = "username_taken"
    ENDED = "ended"
    REPEATED = "repeated"


@dataclass
class RegistrationStart:
    portal: str
    reference: str
    steps: list[str]
    policy: Policy
    user_id: int | None = None
    client_id_key: str = ""
    recorded_step: str = ""
    """The step the web tier wrote on the registration's row with this start: the workflow
    need not write it again when it enters that step first."""


@dataclass
class RegistrationOutcome:
    status: Outcome
    user_id: int | None


@dataclass
class IdentityCheck:
    """One identity try, answered at once by the update."""

    first_name: str
    last_name: str
    suffix: str
    date_of_birth: str
    client_id: str


@dataclass
class IdentityResult:
    matched: bool
    tries_left: int
    escalated: bool


@dataclass
class AccountSubmission:
    """The web tier stored the account (password already hashed); the workflow only hears its id."""

    user_id: int


@dataclass
class EmailConfirmed:
    """The web tier redeemed the link; its transaction already changed the account and owed
    this signal through the outbox, so the database and the process learn it together."""

    workflow_id: str
    token_id: int
    user_id: int
    next_status: str


@dataclass
class ResendRequest:
    requested_by: str = "applicant"


@dataclass
class ReviewDecision:
    approved: bool
    reviewer: str
    reason: str = ""


@dataclass
class CaseResolution:
    """A help-desk outcome: `allow_retry` gives another set of tries, `close` ends it.

    Sent by the staff console, `temporal workflow signal --name resolve_case --input
    '{"outcome": "close", "agent": "ops"}'` or the Temporal UI; all take the same path.
    """

    outcome: str
    agent: str = ""
    note: str = ""


@dataclass
class RegistrationStatus:
    """Where it is (the last step entered) and, once ended, how it ended."""

    step: Step
    outcome: Outcome | None = None
    overdue: bool = False
    tries_left: int = 0
    escalated: bool = False
    decided: bool = False
    history: list[str] = field(default_factory=list)
