"""What a back-channel logout carries: which client, which account, how long to keep trying.

IDs only: the logout token is minted and signed in the activity, never in workflow history.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

DEFAULT_DEADLINE_SECONDS = 24 * 3600


WORKFLOW = "LogoutDeliveryWorkflow"
"""The workflow's type name, as the outbox starts it and the recorded histories hold it."""


class DeliveryOutcome(StrEnum):
    DELIVERED = "delivered"
    CLIENT_GONE = "client_gone"
    GAVE_UP = "gave_up"


@dataclass
class LogoutNotice:
    """The workflow's input: one account's session (`sid`), or all its sessions (no sid), ended;
    tell one client."""

    portal: str
    client_pk: int
    user_id: int
    deadline_seconds: int = DEFAULT_DEADLINE_SECONDS
    sid: str | None = None


@dataclass
class LogoutAttempt:
    portal: str
    client_pk: int
    user_id: int
    sid: str | None = None


@dataclass
class LogoutAnswered:
    outcome: str
    status: int = 0


@dataclass
class LogoutDelivered:
    outcome: str
