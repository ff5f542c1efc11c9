"""What an account notice carries: which message, to whom, about what moment. No secret."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

WORKFLOW = "AccountNoticeWorkflow"
"""The workflow's type name, as the outbox starts it and the recorded histories hold it."""
SIGN_IN_NOTICE_WORKFLOW = "SignInNoticeWorkflow"
"""The new-device notice's workflow type name, named once like the other."""


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
    NEW_DEVICE_SIGN_IN = "new_device_sign_in"


NOT_ME_PURPOSE = "not_me"
"""The purpose of the link in a new-device notice: "this was not me"."""
NOT_ME_PATH = "account/not-me"


STAFF_NOTICE_TEMPLATE = "staff_security_notice"
"""Staff notices share one template pair that names the change; there is no portal to link."""
STAFF_AUDIENCE = "staff"


@dataclass
class AccountNotice:
    """To an account (`user_id`), to a staff member (`staff_id`), or to an address with no
    account behind it (`email`, which the payload codec encrypts like every other personal
    datum in a payload)."""

    portal: str
    user_id: int | None
    kind: str
    occurred_at: str
    context: dict[str, str] = field(default_factory=dict)
    email: str = ""
    locale: str = "es"
    staff_id: int | None = None


@dataclass
class NoticeDelivered:
    sent: bool


@dataclass
class NewDeviceNotice:
    """A sign-in from a browser the account had not used: when, and the browser as parsed.
    The "not me" link is minted by the mail activity, so its token never enters history."""

    portal: str
    user_id: int
    occurred_at: str
    browser: str
    system: str
    link_hours: int
