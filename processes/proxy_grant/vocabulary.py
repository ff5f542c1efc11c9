"""What a proxy grant's process carries: its steps, its start, the signals it hears and the
e-mails it sends. Names and addresses never travel: the process carries the grant's id, the
subject's birth date (to set its timers) and the policy's numbers."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

WORKFLOW = "ProxyGrantWorkflow"
"""The workflow's type name, as the outbox starts it and the recorded histories hold it."""


class Step(StrEnum):
    """A grant's life, the same value in proxy_grants.status and the AccesoStep attribute.
    Only `active` and `limited` let the proxy act; the rest either wait or are final."""

    INVITED = "invited"
    AWAITING_SUBJECT = "awaiting_subject"
    IN_REVIEW = "in_review"
    ACTIVE = "active"
    LIMITED = "limited"
    DECLINED = "declined"
    DENIED = "denied"
    EXPIRED = "expired"
    REVOKED = "revoked"
    LEFT = "left"
    ENDED = "ended"
    LAPSED = "lapsed"
    MAJORITY = "majority"


WAITING = (Step.INVITED, Step.AWAITING_SUBJECT, Step.IN_REVIEW)
"""A grant nobody has consented to yet: what a duplicate request collides with."""

IN_FORCE = (Step.ACTIVE, Step.LIMITED)
"""A grant under which the proxy may act for the subject."""

LIVE = WAITING + IN_FORCE
"""A grant that is not over: the one revoke and leave may end."""


class Origin(StrEnum):
    """How a grant began: the subject invited the proxy, or the proxy asked."""

    INVITATION = "invitation"
    REQUEST = "request"


class Access(StrEnum):
    VIEW = "view"
    MANAGE = "manage"
    LIMITED = "limited"
    """A parent's access after the child's adolescent birthday: the grant's own access."""


class Relationship(StrEnum):
    PARENT = "parent"
    LEGAL_GUARDIAN = "legal_guardian"
    HEALTHCARE_AGENT = "healthcare_agent"
    OTHER = "other"
    CHOSEN = "chosen"
    """Someone the subject invited themself."""


AGE_BOUND = (Relationship.PARENT, Relationship.LEGAL_GUARDIAN)
"""Relationships a child's birthdays limit and end."""


class Decision(StrEnum):
    APPROVE = "approve"
    DECLINE = "decline"


class Signal(StrEnum):
    """What the web tier (or an operator) tells a grant's process; the database already says it."""

    ACCEPT = "accept"
    SUBJECT_DECISION = "subject_decision"
    REVIEW_DECISION = "review_decision"
    REVOKE = "revoke"
    RENEW = "renew"


class LinkPurpose(StrEnum):
    """The grant's links, as stored in email_tokens.purpose."""

    ACCEPT = "proxy_accept"
    CONSENT = "proxy_consent"


class Mail(StrEnum):
    """A grant's e-mails: one template pair (proxy_notice), each kind its own text."""

    INVITATION = "invitation"
    CONSENT = "consent"
    REVIEW_OVERDUE = "review_overdue"
    ACTIVE = "active"
    DENIED = "denied"
    DECLINED = "declined"
    LIMITED = "limited"
    MAJORITY = "majority"
    REGISTER_INVITE = "register_invite"
    RENEWAL_REMINDER = "renewal_reminder"
    ENDED = "ended"


class Audience(StrEnum):
    """Who an e-mail goes to; the address is looked up by the activity."""

    PROXY = "proxy"
    SUBJECT = "subject"
    REVIEWERS = "reviewers"


class Requested(StrEnum):
    """What the proxy's request form hears; a mismatch never says which field."""

    SENT_TO_SUBJECT = "sent_to_subject"
    SENT_TO_STAFF = "sent_to_staff"
    NO_MATCH = "no_match"
    BLOCKED = "blocked"
    SELF = "self"
    DUPLICATE = "duplicate"


class Invited(StrEnum):
    SENT = "sent"
    SELF = "self"
    DUPLICATE = "duplicate"


@dataclass
class ProxyGrantStart:
    """`birth_date` and `ends_on` are ISO dates ('' for none); the ages and months are policy."""

    portal: str
    grant_id: int
    origin: Origin
    review: bool = False
    birth_date: str = ""
    ends_on: str = ""
    age_bound: bool = False
    adult_subject: bool = True
    link_hours: int = 72
    review_sla_hours: int = 24
    review_final_hours: int = 120
    adolescent_age: int = 12
    majority_age: int = 18
    renewal_months: int = 12


@dataclass
class GrantAccepted:
    """The invitee pressed the button signed in; the database already says `active`."""

    proxy_user_id: int


@dataclass
class SubjectDecision:
    decision: Decision


@dataclass
class ReviewDecision:
    """A reviewer's decision, also sendable from `temporal workflow signal` or the UI."""

    decision: Decision
    reviewer: str
    reason: str = ""


@dataclass
class GrantRevoked:
    """Either side, or staff, ended the grant; `by` says who (`user:<id>`, `staff:<name>`)."""

    by: str
    status: Step = Step.REVOKED


@dataclass
class GrantRenewed:
    by: str


@dataclass
class ProxyGrantOutcome:
    status: Step


@dataclass
class ProxyGrantStatus:
    step: Step
    overdue: bool = False
