"""What an e-mail change's process carries: its steps, its start, the signals the web tier owes
it, and the answers the service gives the web tier. Addresses never travel: the process
carries the change's id and the policy's numbers; the addresses stay in the database."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

WORKFLOW = "EmailChangeWorkflow"
"""The workflow's type name, as the outbox starts it and the recorded histories hold it."""


class Step(StrEnum):
    """A change's life. Only `pending` waits for the new address; only `applied` may be undone.
    The email_changes row holds the same value, claimed by conditional updates."""

    SENDING = "sending"
    PENDING = "pending"
    CONFIRMED = "confirmed"
    APPLIED = "applied"
    KEPT = "kept"
    UNDONE = "undone"
    EXPIRED = "expired"
    REPLACED = "replaced"
    REFUSED = "refused"
    GONE = "gone"


WAITING = (Step.SENDING, Step.PENDING)
"""A change still waiting for its confirmation: the one a newer request replaces."""


class LinkPurpose(StrEnum):
    """The two links of a change, as stored in email_tokens.purpose."""

    CONFIRM = "email_change"
    UNDO = "email_change_undo"


class Signal(StrEnum):
    """What the web tier owes a change's process, each in the transaction that made it true."""

    CONFIRM = "confirm"
    REPLACE = "replace"
    UNDO = "undo"


class Mail(StrEnum):
    """A change's e-mails, each a template pair under mail/templates/."""

    CONFIRM = "email_change_confirm"
    REQUESTED = "email_change_requested"
    APPLIED = "email_change_applied"


class Requested(StrEnum):
    """What the person's request form hears. `SENT` covers an address another account uses
    where the portal does not share addresses: the screen must not say why."""

    SENT = "sent"
    WRONG_PASSWORD = "wrong_password"
    LOCKED = "locked"
    SAME_ADDRESS = "same_address"


@dataclass
class EmailChangeStart:
    portal: str
    change_id: int
    link_hours: int
    undo_days: int
    shared_addresses: bool = False


@dataclass
class ChangeConfirmed:
    """The new address's link was pressed; the database already says `confirmed`."""

    token_id: int


@dataclass
class ChangeReplaced:
    """A newer request for the same account; the database already says `replaced`."""

    by_change_id: int


@dataclass
class ChangeUndone:
    """The old address's undo link was pressed; the database already restored it."""

    token_id: int


@dataclass
class EmailChangeOutcome:
    status: Step


@dataclass
class EmailChangeStatus:
    step: Step
