"""What an account notice carries: which message, to whom, about what moment. No secret."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class NoticeKind(StrEnum):
    """Each kind is an e-mail template pair, templates/email/<kind>.txt and .html."""

    PASSWORD_CHANGED = "password_changed"
    SECOND_FACTOR_ADDED = "second_factor_added"
    SECOND_FACTOR_REMOVED = "second_factor_removed"
    RECOVERY_CODE_USED = "recovery_code_used"
    UNLOCKED_BY_HELPDESK = "unlocked_by_helpdesk"


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
