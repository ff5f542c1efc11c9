"""The application's tables; integrity rules live in the database, not only in forms."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Stores aware UTC datetimes and returns them aware, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class AccountStatus(StrEnum):
    """An account's life: unconfirmed until its e-mail link is pressed, pending_review where a
    reviewer must approve it, active, and the two ends; only an active account signs in."""

    UNCONFIRMED = "unconfirmed"
    PENDING_REVIEW = "pending_review"
    ACTIVE = "active"
    DENIED = "denied"
    DISABLED = "disabled"


class Role(StrEnum):
    """What an applicant's account is in its portal; the provider office's primary registrant
    manages its employees."""

    PATIENT = "patient"
    MEMBER = "member"
    PROVIDER_PRIMARY = "provider_primary"
    PROVIDER_EMPLOYEE = "provider_employee"


class StaffRole(StrEnum):
    """What a console page needs; an admin may do everything."""

    REVIEWER = "reviewer"
    SUPPORT = "support"
    ADMIN = "admin"
    OPERATOR = "operator"


STAFF_MIN_PASSWORD_LENGTH = 12
"""Staff passwords, set from the console or the command line, are at least this long."""


# Accounts that hold their username and e-mail: everything but a denied application.
LIVE_ACCOUNT = (
    AccountStatus.UNCONFIRMED,
    AccountStatus.PENDING_REVIEW,
    AccountStatus.ACTIVE,
    AccountStatus.DISABLED,
)


class User(Base):
    """A portal account: patients, members, provider registrants and office employees."""

    __tablename__ = "users"
    __table_args__ = (
        Index("uq_users_portal_username", "portal", func.lower("username"), unique=True),
        Index("ix_users_portal_email", "portal", func.lower("email")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    portal: Mapped[str] = mapped_column(String(32))
    username: Mapped[str] = mapped_column(String(64))
    email: Mapped[str] = mapped_column(String(254))
    full_name: Mapped[str] = mapped_column(String(200), default="")
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    phone: Mapped[str] = mapped_column(String(32), default="")
    locale: Mapped[str] = mapped_column(String(8), default="es")
    password_hash: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(24), default=AccountStatus.UNCONFIRMED)
    role: Mapped[str] = mapped_column(String(24))
    client_id: Mapped[str | None] = mapped_column(String(64), index=True)
    office_id: Mapped[int | None] = mapped_column(ForeignKey("offices.id"), index=True)
    clinical_record_id: Mapped[int | None] = mapped_column(
        ForeignKey("clinical_records.id", ondelete="SET NULL"), unique=True
    )
    """The clinical record a patient account was registered against: one account per record,
    however many records share an address."""
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    password_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    activated_at: Mapped[datetime | None]

    security_answers: Mapped[list[SecurityAnswer]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )

    @property
    def display_name(self) -> str:
        return self.full_name or f"{self.first_name} {self.last_name}".strip() or self.username


class SecurityAnswer(Base):
    __tablename__ = "security_answers"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    question: Mapped[str] = mapped_column(String(200))
    answer_hash: Mapped[str] = mapped_column(String(255))

    user: Mapped[User] = relationship(back_populates="security_answers")


class LoginThrottle(Base):
    """Failed logins counted per typed username, known or not, so a lockout reveals nothing."""

    __tablename__ = "login_throttles"

    portal: Mapped[str] = mapped_column(String(32), primary_key=True)
    username_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_at: Mapped[datetime | None]


class StaffUser(Base):
    __tablename__ = "staff_users"
    __table_args__ = (Index("uq_staff_username", func.lower("username"), unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    full_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    roles: Mapped[str] = mapped_column(String(200), default="")
    portals: Mapped[str] = mapped_column(String(200), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    email: Mapped[str] = mapped_column(String(254), default="")
    last_login_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def role_set(self) -> set[str]:
        return {r for r in self.roles.split(",") if r}

    @property
    def portal_set(self) -> set[str]:
        """Portals this staff member may see; empty means every portal."""
        return {p for p in self.portals.split(",") if p}

    def has_role(self, role: str) -> bool:
        return role in self.role_set or StaffRole.ADMIN in self.role_set

    def sees_portal(self, portal: str) -> bool:
        return not self.portal_set or portal in self.portal_set


class UserSession(Base):
    """Server-side session rows: deleting one ends that session even if its cookie was copied."""

    __tablename__ = "user_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    staff_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_users.id", ondelete="CASCADE"), index=True
    )
    remember: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    user_agent: Mapped[str] = mapped_column(String(400), default="", server_default="")
    """As the browser sent it at sign-in, so the person can tell their sessions apart."""
    device_hash: Mapped[str | None] = mapped_column(String(64))
    """The hash of the browser's device cookie: "this was not me" ends its sessions."""


class KnownDevice(Base):
    """A browser that has signed in to an account, by the hash of its long-lived device cookie:
    a sign-in from any other browser is news the owner hears about by e-mail."""

    __tablename__ = "known_devices"
    __table_args__ = (UniqueConstraint("user_id", "device_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    device_hash: Mapped[str] = mapped_column(String(64))
    notice_workflow_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    """The new-device notice sent for its first sign-in, whose "not me" link names it."""
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class Registration(Base):
    """The web tier's read model of a registration process; the workflow is the source of truth."""

    __tablename__ = "registrations"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    portal: Mapped[str] = mapped_column(String(32), index=True)
    workflow_id: Mapped[str] = mapped_column(String(128), unique=True)
    status: Mapped[str] = mapped_column(String(32), default="started", index=True)  # a Step
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    client_id: Mapped[str | None] = mapped_column(String(64), index=True)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    user: Mapped[User | None] = relationship()


class EmailToken(Base):
    """A link sent by e-mail; only its SHA-256 is kept, so a database leak opens nothing."""

    __tablename__ = "email_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(32))
    portal: Mapped[str] = mapped_column(String(32))
    workflow_id: Mapped[str] = mapped_column(String(128), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    pending_password_hash: Mapped[str | None] = mapped_column(String(255))
    # The logical e-mail this link belongs to, and the salt its raw value is derived from
    # (HMAC under the secret key): a retried send finds the row and repeats the same link.
    send_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    salt: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    def usable(self, now: datetime) -> bool:
        return self.used_at is None and self.revoked_at is None and now < self.expires_at


class ClinicalRecord(Base):
    """Patients known to the clinic; registration needs an e-mail found here."""

    __tablename__ = "clinical_records"
    __table_args__ = (
        UniqueConstraint("portal", "record_number"),
        Index("ix_clinical_records_email", "portal", func.lower("email")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    portal: Mapped[str] = mapped_column(String(32))
    record_number: Mapped[str] = mapped_column(String(64))
    full_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254))
    date_of_birth: Mapped[str] = mapped_column(String(10), default="", server_default="")
    fhir_patient_id: Mapped[str | None] = mapped_column(String(64))
    """The FHIR Patient id a SMART app gets as its patient context (the import defaults it to
    the record number)."""


class MemberRecord(Base):
    """Members as on their ID card; the identity check matches against these."""

    __tablename__ = "member_records"
    __table_args__ = (UniqueConstraint("portal", "client_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    portal: Mapped[str] = mapped_column(String(32))
    client_id: Mapped[str] = mapped_column(String(64))
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    suffix: Mapped[str] = mapped_column(String(16), default="")
    date_of_birth: Mapped[str] = mapped_column(String(10))
    email: Mapped[str] = mapped_column(String(254), default="")
    fhir_patient_id: Mapped[str | None] = mapped_column(String(64))
    """The FHIR Patient id a SMART app gets as its patient context (the import defaults it to
    the client ID)."""


class Office(Base):
    """A provider office; its primary registrant administers its employees."""

    __tablename__ = "offices"

    id: Mapped[int] = mapped_column(primary_key=True)
    portal: Mapped[str] = mapped_column(String(32))
    organization_name: Mapped[str] = mapped_column(String(200))
    tax_id: Mapped[str] = mapped_column(String(16), index=True)
    npi: Mapped[str] = mapped_column(String(10), index=True)
    address: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """Who did what, when, in which process: every state change leaves one."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    portal: Mapped[str] = mapped_column(String(32), default="")
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64))
    workflow_id: Mapped[str | None] = mapped_column(String(128), index=True)
    user_id: Mapped[int | None] = mapped_column(Integer, index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class SentMail(Base):
    """One row per e-mail sent, keyed by workflow and step, so a retried activity sends once."""

    __tablename__ = "sent_mail"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    sent_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class RegistrationDraft(Base):
    """A provider's wizard between steps, kept on the server: the cookie holds only its id.

    Passwords and security answers are stored here already hashed (argon2id), never in plaintext.
    """

    __tablename__ = "registration_drafts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    portal: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Invitation(Base):
    """An office employee invited by the primary registrant; its workflow owns the outcome."""

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    portal: Mapped[str] = mapped_column(String(32))
    office_id: Mapped[int] = mapped_column(ForeignKey("offices.id", ondelete="CASCADE"), index=True)
    invited_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    email: Mapped[str] = mapped_column(String(254))
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    workflow_id: Mapped[str] = mapped_column(String(128), unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    ended_by: Mapped[str | None] = mapped_column(String(100))

    office: Mapped[Office] = relationship()

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class SupportCase(Base):
    """A member registration sent to the help desk after too many failed identity tries.

    One row per escalation of one registration; `resolve_case` on that workflow closes it.
    The full client ID stays here (the help desk needs it); pages show it masked.
    """

    __tablename__ = "support_cases"
    __table_args__ = (UniqueConstraint("workflow_id", "round"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    portal: Mapped[str] = mapped_column(String(32), index=True)
    workflow_id: Mapped[str] = mapped_column(String(128), index=True)
    round: Mapped[int] = mapped_column(Integer, default=1)
    reference: Mapped[str] = mapped_column(String(16), default="")
    client_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    duplicate_of: Mapped[int | None] = mapped_column(Integer)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(100))
    resolution_note: Mapped[str | None] = mapped_column(Text)


class IdentityStrikes(Base):
    """Failed identity tries in a row per typed client ID, across registrations."""

    __tablename__ = "identity_strikes"

    portal: Mapped[str] = mapped_column(String(32), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    strikes: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class IdentityTry(Base):
    """One identity try as the help desk may see it: names as typed, the rest already masked."""

    __tablename__ = "identity_tries"

    id: Mapped[int] = mapped_column(primary_key=True)
    try_key: Mapped[str] = mapped_column(String(200), unique=True)
    portal: Mapped[str] = mapped_column(String(32))
    workflow_id: Mapped[str] = mapped_column(String(128), index=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    suffix: Mapped[str] = mapped_column(String(16), default="")
    birth_year: Mapped[str] = mapped_column(String(4), default="")
    matched: Mapped[bool] = mapped_column(Boolean, default=False)
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    strikes: Mapped[int] = mapped_column(Integer, default=0)
    mismatch: Mapped[str] = mapped_column(String(100), default="", server_default="")
    """Comma-separated fields that differed from the record (`client_id` when there is no
    record for the typed ID), so the help desk knows what to ask about; never shown to the
    applicant, who only learns that the data did not validate."""
    at: Mapped[datetime] = mapped_column(default=utcnow)


class OutboxMessage(Base):
    """A workflow start the web tier owes Temporal, committed with the rows it concerns.

    The relay in every worker turns each row into exactly one start (or signal-with-start), so a
    web process killed after its commit still gets its process started, and one killed before it
    leaves nothing behind.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "relayed_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="start")
    workflow: Mapped[str] = mapped_column(String(64))
    workflow_id: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    signal: Mapped[str | None] = mapped_column(String(64))
    signal_payload: Mapped[dict[str, Any] | None] = mapped_column()
    reuse_finished_id: Mapped[bool] = mapped_column(Boolean, default=False)
    summary: Mapped[str] = mapped_column(String(200), default="")
    search_attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    relayed_at: Mapped[datetime | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(String(500), default="")


OWNER_IS_STAFF_OR_USER = "(staff_id IS NULL) <> (user_id IS NULL)"


class SecondFactor(Base):
    """An authenticator-app secret its owner confirmed with a first code; one per account.

    `last_step` is the TOTP time step of the last code accepted, so a code works once. `secret`
    is sealed (portal.two_factor.seal_secret): `kid:ciphertext`, never the base32 key itself.
    """

    __tablename__ = "second_factors"
    __table_args__ = (CheckConstraint(OWNER_IS_STAFF_OR_USER, name="ck_second_factors_owner"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_users.id", ondelete="CASCADE"), unique=True
    )
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), unique=True
    )
    secret: Mapped[str] = mapped_column(String(255))
    last_step: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RecoveryCode(Base):
    """One single-use recovery code, kept only as an argon2id hash."""

    __tablename__ = "recovery_codes"
    __table_args__ = (CheckConstraint(OWNER_IS_STAFF_OR_USER, name="ck_recovery_codes_owner"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_users.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(255))
    used_at: Mapped[datetime | None]


class Passkey(Base):
    """A WebAuthn credential a staff member registered as a second factor."""

    __tablename__ = "passkeys"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(
        ForeignKey("staff_users.id", ondelete="CASCADE"), index=True
    )
    credential_id: Mapped[str] = mapped_column(String(512), unique=True)
    public_key: Mapped[str] = mapped_column(Text)
    sign_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StaffInvitation(Base):
    """A staff member added from the console, waiting to set a password and enrol a factor."""

    __tablename__ = "staff_invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_users.id", ondelete="SET NULL"), index=True
    )
    email: Mapped[str] = mapped_column(String(254))
    workflow_id: Mapped[str] = mapped_column(String(128), unique=True)
    invited_by: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class FormSubmission(Base):
    """The outcome of one rendered form, keyed by the hash of its idempotency key, so a double
    click or a retried POST gets the first answer instead of an error about its own data."""

    __tablename__ = "form_submissions"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    portal: Mapped[str] = mapped_column(String(32))
    outcome_url: Mapped[str] = mapped_column(String(300))
    # The registration the submission started, for a wizard whose place is kept in the
    # session: a retry whose first answer (and cookie) was lost resumes it.
    started_reference: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class RateLimitCounter(Base):
    """One fixed window of attempts by one client at one kind of form, shared by every web
    process (a per-process counter is no limit under gunicorn); rows past expiry are reused."""

    __tablename__ = "rate_limit_counters"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[float] = mapped_column(Float, index=True)


class OidcClient(Base):
    """An application that signs people in with one portal; only the secret's argon2id hash stays."""

    __tablename__ = "oidc_clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    portal: Mapped[str] = mapped_column(String(32), index=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[str | None] = mapped_column(String(255))
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    first_party: Mapped[bool] = mapped_column(Boolean, default=False)
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    backchannel_logout_uri: Mapped[str | None] = mapped_column(String(500))
    signing_alg: Mapped[str] = mapped_column(String(16), default="ES256", server_default="ES256")
    """What its ID, access and logout tokens are signed with (portal.oidc.SigningAlg)."""
    allowed_origins: Mapped[list[str]] = mapped_column(
        JSON, default=list, server_default=text("'[]'")
    )
    """Browser origins besides its redirect URIs' that may call the token endpoints (CORS)."""
    approved_scopes: Mapped[list[str] | None] = mapped_column(JSON)
    """The scopes it may ask for (SMART apps are approved for theirs); None: the portal's
    OpenID Connect scopes, as before SMART."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OidcSigningKey(Base):
    """A token-signing key pair, its private half sealed with a payload-encryption key; a retired
    key stays published until its last token expires."""

    __tablename__ = "oidc_signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16), default="ES256")
    jwk: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """{"public": the public JWK, "sealed": "<codec kid>:<AES-GCM of the private JWK>"}."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    retired_at: Mapped[datetime | None]


class OidcSubject(Base):
    """The opaque, stable `sub` an account has towards every client: random, never its id."""

    __tablename__ = "oidc_subjects"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    subject: Mapped[str] = mapped_column(String(64), unique=True)


class OidcGrant(Base):
    """One sign-in of one account into one client: the family its tokens belong to.

    Revoking the grant stops every refresh and access token issued under it at once.
    """

    __tablename__ = "oidc_grants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_pk: Mapped[int] = mapped_column(
        ForeignKey("oidc_clients.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    portal: Mapped[str] = mapped_column(String(32))
    scope: Mapped[str] = mapped_column(String(500))
    code_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    sid: Mapped[str | None] = mapped_column(String(32), index=True)
    """The sign-in session it came from, so ending that session ends only its grants."""
    auth_time: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(index=True)
    patient: Mapped[str | None] = mapped_column(String(64))
    """The FHIR Patient id the app may read (SMART `launch/patient`)."""
    fhir_user: Mapped[str | None] = mapped_column(String(100))
    """Who signed in, as a FHIR reference: `Patient/<id>`, or `RelatedPerson/<proxy grant
    reference>` for a proxy who gave the app someone else's record."""
    offline: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """A third-party app's offline access: it outlives the portal session that granted it."""
    expires_at: Mapped[datetime | None] = mapped_column(index=True)
    """When an offline grant lapses unless used; each refresh pushes it back."""
    acting_for: Mapped[str | None] = mapped_column(String(16))
    """The proxy grant (its reference) the tokens rest on: with `launch/patient`, the one that
    gave the app `patient`; otherwise, with the `proxy` scope, the one the `acting_for` claim
    describes. Ending that proxy grant revokes this one."""


class OidcAuthorizationCode(Base):
    """A code handed to a client's redirect URI: hashed, single-use, 60 seconds."""

    __tablename__ = "oidc_authorization_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_pk: Mapped[int] = mapped_column(
        ForeignKey("oidc_clients.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    portal: Mapped[str] = mapped_column(String(32))
    redirect_uri: Mapped[str] = mapped_column(String(500))
    scope: Mapped[str] = mapped_column(String(500))
    nonce: Mapped[str | None] = mapped_column(String(255))
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    sid: Mapped[str | None] = mapped_column(String(32))
    auth_time: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    acting_for: Mapped[str | None] = mapped_column(String(16))
    """The proxy grant (its reference) the code's tokens will rest on: the person chosen on the
    SMART record picker, or the one acted for when signing in with the `proxy` scope."""


class OidcRefreshToken(Base):
    """A refresh token, hashed; using it rotates it, and reusing a rotated one ends its family."""

    __tablename__ = "oidc_refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    grant_id: Mapped[str] = mapped_column(
        ForeignKey("oidc_grants.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class OidcAccessToken(Base):
    """The `jti` of each access token issued, so revocation and a revoked family take effect."""

    __tablename__ = "oidc_access_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    grant_id: Mapped[str] = mapped_column(
        ForeignKey("oidc_grants.id", ondelete="CASCADE"), index=True
    )
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime | None]


class OidcConsent(Base):
    """What a person allowed a client to receive, remembered so the consent screen comes back
    only for scopes not allowed before; removing the application's access forgets it."""

    __tablename__ = "oidc_consents"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    client_pk: Mapped[int] = mapped_column(
        ForeignKey("oidc_clients.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    scope: Mapped[str] = mapped_column(String(500))
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class EmailChange(Base):
    """One request to change an account's e-mail address, and its process's read model.

    Only one per account waits for its confirmation at a time (a newer request replaces it);
    `status` is claimed by conditional updates, so a click, a replacement, the link's expiry and
    an undo each win or lose exactly once.
    """

    __tablename__ = "email_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    portal: Mapped[str] = mapped_column(String(32))
    workflow_id: Mapped[str] = mapped_column(String(128), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    old_email: Mapped[str] = mapped_column(String(254))
    new_email: Mapped[str] = mapped_column(String(254))
    status: Mapped[str] = mapped_column(String(16), index=True)  # an email_change Step
    requested_by: Mapped[str] = mapped_column(String(100))
    note: Mapped[str] = mapped_column(Text, default="")
    keep_session: Mapped[str | None] = mapped_column(String(64))
    """The hash of the session that asked, which survives the change; none for the help desk."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[datetime | None]
    applied_at: Mapped[datetime | None]
    undo_until: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]


class ProxyGrant(Base):
    """One person's permission to act for another, and its process's read model.

    `status` (a proxy_grant Step) is claimed by conditional updates, so an acceptance, a
    decision, a revoke and a timer (birthday, end date, renewal) each win or lose exactly once.
    The subject is an account, a clinical record, or both (a child has a record, not an
    account); the proxy is an account once the invitation is accepted.
    """

    __tablename__ = "proxy_grants"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    portal: Mapped[str] = mapped_column(String(32), index=True)
    workflow_id: Mapped[str] = mapped_column(String(128), unique=True)
    origin: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(24), index=True)
    subject_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    subject_record_id: Mapped[int | None] = mapped_column(
        ForeignKey("clinical_records.id", ondelete="SET NULL"), index=True
    )
    proxy_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    invite_email: Mapped[str] = mapped_column(String(254), default="")
    relationship: Mapped[str] = mapped_column(String(24))
    access: Mapped[str] = mapped_column(String(16))
    ends_on: Mapped[str] = mapped_column(String(10), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    activated_at: Mapped[datetime | None]
    renew_by: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    ended_by: Mapped[str | None] = mapped_column(String(100))
    end_note: Mapped[str | None] = mapped_column(Text)


class AppRegistration(Base):
    """A third-party health app asking to become a SMART client, and its process's read model.

    `status` (an app_registration Step) is claimed by conditional updates, so a reviewer's
    decision and the final deadline each win or lose exactly once. `checks` holds the automatic
    checks' results as staff see them; `client_pk` is the client approval made (never a secret).
    """

    __tablename__ = "app_registrations"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    portal: Mapped[str] = mapped_column(String(32), index=True)
    workflow_id: Mapped[str] = mapped_column(String(128), unique=True)
    status: Mapped[str] = mapped_column(String(24), index=True)
    app_name: Mapped[str] = mapped_column(String(80))
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    client_type: Mapped[str] = mapped_column(String(16))
    privacy_url: Mapped[str] = mapped_column(String(500))
    contact_name: Mapped[str] = mapped_column(String(200))
    contact_email: Mapped[str] = mapped_column(String(254))
    locale: Mapped[str] = mapped_column(String(8), default="es")
    checks: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    review_due_at: Mapped[datetime | None]
    review_final_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime | None]
    client_pk: Mapped[int | None] = mapped_column(
        ForeignKey("oidc_clients.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
