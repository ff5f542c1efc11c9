"""What a sweep is asked and what it answers; the tables it may empty are a closed set."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

SCHEDULE_ID = "cleanup/expired-rows"


class SweptTable(StrEnum):
    """Each table whose rows end: a row goes once it has been over for the grace period, so an
    expired link or code still answers "expired" for a while instead of "unknown"."""

    AUTHORIZATION_CODES = "oidc_authorization_codes"
    ACCESS_TOKENS = "oidc_access_tokens"
    REFRESH_TOKENS = "oidc_refresh_tokens"
    SESSIONS = "user_sessions"
    EMAIL_TOKENS = "email_tokens"
    FORM_SUBMISSIONS = "form_submissions"
    RELAYED_OUTBOX = "outbox"
    RATE_LIMITS = "rate_limit_counters"
    SENT_MAIL = "sent_mail"
    """What makes a retried e-mail activity send once: a retry comes within minutes of its send,
    never a week after."""
    OIDC_GRANTS = "oidc_grants"
    """A grant is over when it was revoked, when its offline access lapsed, or when nothing is
    left of it (its tokens were swept); its tokens go with it."""


LATER_TABLES = {
    SweptTable.RATE_LIMITS: "sweep-rate-limits",
    SweptTable.SENT_MAIL: "sweep-sent-mail",
    SweptTable.OIDC_GRANTS: "sweep-oidc-grants",
}
"""Tables added to the sweep after it first ran, each with the patch ID that keeps a sweep
recorded before it replaying as it ran."""


@dataclass
class CleanupRequest:
    """What the schedule starts each sweep with; `batch` bounds how long one DELETE holds locks."""

    batch: int = 500
    grace_days: int = 7
    max_batches_per_table: int = 200


@dataclass
class SweepBatch:
    table: str
    batch: int
    grace_days: int


@dataclass
class BatchSwept:
    deleted: int


@dataclass
class CleanupReport:
    deleted: dict[str, int] = field(default_factory=dict)
