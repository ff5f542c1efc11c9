"""What an account notice carries: which message, to whom, about what moment. No secret."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class NoticeKind(StrEnum):
    """Each kind is an e-mail template pair, templates/email/<kind>.txt and .html."""

    PASSWORD_CHANGED = "password_changed"
    ACCOUNT_LOCKED = "account_locked"


@dataclass
class AccountNotice:
    portal: str
    user_id: int
    kind: str
    occurred_at: str
    context: dict[str, str] = field(default_factory=dict)


@dataclass
class NoticeDelivered:
    sent: bool
