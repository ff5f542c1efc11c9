"""What an employee invitation's process carries: its start, the accept and revoke signals, its
status and its outcome."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class InvitationStart:
    """Carries ids and the policy's lifetime only; names and addresses stay in the database."""

    portal: str
    invitation_id: int
    invitation_days: int
    invited_by: str


@dataclass
class InvitationOutcome:
    status: str
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
    step: str
    expires_at: str
