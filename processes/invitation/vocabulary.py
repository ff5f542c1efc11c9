"""What an employee invitation's process carries: its start, the accept and revoke signals, its
status and its outcome."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

WORKFLOW = "InvitationWorkflow"
"""The workflow's type name, as the outbox starts it and the recorded histories hold it."""


class Signal(StrEnum):
    """The invitation's signals, by the workflow method names the outbox delivers them to."""

    ACCEPT = "accept"
    REVOKE = "revoke"


class Step(StrEnum):
    """An invitation's life; the invitations table keeps the pending one and how it ended."""

    SENDING = "sending"
    PENDING = "pending"
    ACCEPTED = "accepted"
    REVOKED = "revoked"
    EXPIRED = "expired"
    GONE = "gone"  # no such invitation any more


class Acceptance(StrEnum):
    """What the invitee's form hears: the account is live, the username is taken, or the
    invitation is over (revoked, expired or already used)."""

    ACCEPTED = "accepted"
    USERNAME_TAKEN = "username_taken"
    GONE = "gone"


@dataclass
class InvitationStart:
    """Carries ids and the policy's lifetime only; names and addresses stay in the database."""

    portal: str
    invitation_id: int
    invitation_days: int
    invited_by: str


@dataclass
class InvitationOutcome:
    status: Step
    user_id: int | None = None


@dataclass
class InvitationAcceptance:
    """The web tier already made the invitee's account live, in the transaction that consumed
    the link and owed this signal."""

    token_id: int
    user_id: int


@dataclass
class RevokeRequest:
    revoked_by: str


@dataclass
class InvitationStatus:
    step: Step
    expires_at: str
