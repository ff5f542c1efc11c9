"""What recovery's processes carry: each start, update, signal and answer of the password reset
and the username reminder; shared by the workflows and the web tier."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from portal.config import Policy, ResetMode

__all__ = ["ResetMode"]


class Workflow(StrEnum):
    """Recovery's workflow type names, as the outbox starts them and the histories hold them."""

    PASSWORD_RESET = "PasswordResetWorkflow"
    USERNAME_REMINDER = "UsernameReminderWorkflow"


class Signal(StrEnum):
    """Recovery's signals, by the workflow method names the outbox delivers them to."""

    REQUEST_AGAIN = "request_again"
    REMIND = "remind"


class ResetStep(StrEnum):
    """A password reset's steps and how it ends; `no_account` ends at once, sending nothing,
    so the requester cannot tell it from a real one."""

    STARTED = "started"
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    COMPLETED = "completed"
    EXPIRED = "expired"
    NO_ACCOUNT = "no_account"


@dataclass
class PasswordResetStart:
    """Started for every request, known account or not, so the answer and timing never differ.

    A known account's requests share one workflow ID while a reset is pending (signal-with-start
    of `request_again`), so repeated requests cannot flood its mailbox.
    """

    portal: str
    policy: Policy
    user_id: int | None


@dataclass
class PasswordResetOutcome:
    status: ResetStep


@dataclass
class ResetConfirmation:
    token_id: int


@dataclass
class ResetResult:
    applied: bool


@dataclass
class ResetStatus:
    step: ResetStep
    links_sent: int = 0
    requests: int = 0


@dataclass
class ResetRequested:
    """Another request for the same account while this one is pending."""

    source: str = "web"


@dataclass
class UsernameReminderStart:
    """Started (or joined, by signal-with-start) for every request, known address or not, so
    answers never differ; the look-up happens in the activity."""

    portal: str
    email: str
    cooldown_minutes: int = 15


@dataclass
class ReminderRequest:
    """One request; the provider portal also asks for the names on the account."""

    first_name: str = ""
    last_name: str = ""
