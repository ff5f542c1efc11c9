"""What the staff invitation carries: IDs and a lifetime, never a name, address or token."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

WORKFLOW = "StaffInvitationWorkflow"
LINK_PURPOSE = "staff_invitation"
LINK_PORTAL = "staff"


class Signal(StrEnum):
    """The staff invitation's signals, by the workflow method names the outbox delivers them to."""

    ACCEPT = "accept"
    REVOKE = "revoke"


class InvitationStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass
class StaffInvitationStart:
    invitation_id: int
    lifetime_hours: int
    invited_by: str


@dataclass
class StaffInvitationOutcome:
    status: str


@dataclass
class AcceptInvitation:
    """The web tier already stored the password and consumed the link; this ends the wait."""

    staff_id: int


@dataclass
class RevokeInvitation:
    """The web tier already ended the invitation and voided its link; this ends the wait."""

    revoked_by: str


@dataclass
class SendInvitationLink:
    invitation_id: int
    workflow_id: str
    lifetime_hours: int
    send_key: str


@dataclass
class InvitationLinkSent:
    token_id: int


@dataclass
class EndInvitation:
    invitation_id: int
    workflow_id: str
    status: str


@dataclass
class InvitationEnded:
    status: str
