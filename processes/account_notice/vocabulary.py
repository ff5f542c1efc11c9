"""What an account notice carries: which message, to whom, about what moment. No secret."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

WORKFLOW = "AccountNoticeWorkflow"
"""The workflow's type name, as the outbox starts it and the recorded histories hold it."""


class NoticeKind(StrEnum):
    """Each kind is an e-mail template pair, mail/templates/<kind>.txt and .html."""

    PASSWORD_CHANGED = "password_changed"
    SECOND_FACTOR_ADDED = "second_factor_added"
    SECOND_FACTOR_REMOVED = "second_factor_removed"
    RECOVERY_CODE_USED = "recovery_code_used"
    UNLOCKED_BY_HELPDESK = "unlocked_by_helpdesk"
    # Registration answers every applicant alike on screen; the mailbox owner learns the truth.
    REGISTRATION_NO_RECORD = "registration_no_record"
    REGISTRATION_EXISTING = "registration_existing"
    ACCOUNT_LOCKED = "account_locked"
    # An e-mail change to an address another account uses, where the portal does not share
    # addresses: the screen answers as for any address, that mailbox learns it.
    EMAIL_ADDRESS_IN_USE = "email_address_in_use"


@dataclass
class AccountNotice:
    """To an account (`user_id`), or to an address with no account behind it (`email`, which
    the payload codec encrypts like every other personal datum in a payload)."""

    portal: str
    user_id: int | None
    kind: str
    occurred_at: str
    context: dict[str, str] = field(default_factory=dict)
    email: str = ""
    locale: str = "es"


@dataclass
class NoticeDelivered:
    sent: bool
