"""Look-ups against the organisation's records (member records) and the help desk's cases.

Identity strikes are counted here, per (portal, client ID) in the database, so starting a new
registration does not reset them; the workflow also counts its own tries in a row.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from mail.once import LinkMessage, MailingActivities, already_sent, deliver_once, send_link_once
from portal.audit import add_event
from portal.models import (
    AccountStatus,
    EmailToken,
    IdentityStrikes,
    IdentityTry,
    MemberRecord,
    Registration,
    SupportCase,
    User,
    utcnow,
)
from portal.tokens import revoke_links
from processes.registration.vocabulary import (
    CaseOutcome,
    CaseStatus,
    Outcome,
    Step,
    TokenPurpose,
)


@dataclass
class StepReached:
    """The read model follows the workflow, so pages never need to ask Temporal."""

    workflow_id: str
    status: Step
    overdue: bool = False


@dataclass
class ConfirmationClosing:
    workflow_id: str


@dataclass
class ConfirmationClosed:
    confirmed: bool


@dataclass
class AccountState:
    user_id: int
    status: AccountStatus


@dataclass
class RegistrationEnded:
    workflow_id: str
    user_id: int | None
    status: Outcome
    release_account: bool


@dataclass
class ReviewApplied:
    workflow_id: str
    user_id: int
    approved: bool
    reviewer: str
    reason: str


@dataclass
class IdentityAttempt:
    portal: str
    workflow_id: str
    first_name: str
    last_name: str
    suffix: str
    date_of_birth: str
    client_id: str
    strike_limit: int


@dataclass
class IdentityStrike:
    """The outcome of one try; `strikes` counts failures in a row for the typed client ID,
    across registrations. `blocked`: that client ID was already at the limit, so the try was
    not even compared (it goes straight to the help desk)."""

    portal: str
    workflow_id: str
    matched: bool
    strikes: int
    record_id: int | None = None
    blocked: bool = False


@dataclass
class SupportCaseRequest:
    """Open the help-desk case for one escalation (round) of a registration; idempotent."""

    portal: str
    workflow_id: str
    reference: str
    round: int = 1


@dataclass
class SupportCaseOpened:
    case_id: int
    duplicate_of: int | None = None


@dataclass
class CaseResolutionRequest:
    """Apply a help-desk outcome: case status, strikes, and the e-mail to the member."""

    portal: str
    workflow_id: str
    round: int
    outcome: str
    agent: str
    note: str = ""
    link_hours: int = 48


@dataclass
class CaseResolutionApplied:
    case_id: int | None
    contact_notified: bool


def clean_name(value: str) -> str:
    """Names compare as on the ID card: trimmed, repeated spaces folded, letter case ignored."""
    return " ".join((value or "").split()).casefold()


def client_key(client_id: str) -> str:
    """The client ID as strikes and cases are keyed: no spaces, upper case."""
    return "".join((client_id or "").split()).upper()


def mismatched_fields(record: MemberRecord | None, attempt: IdentityAttempt) -> list[str]:
    """Which typed fields differ from the member record; only `client_id` if there is none."""
    if record is None:
        return ["client_id"]
    compared = (
        ("date_of_birth", record.date_of_birth, attempt.date_of_birth.strip()),
        ("first_name", clean_name(record.first_name), clean_name(attempt.first_name)),
        ("last_name", clean_name(record.last_name), clean_name(attempt.last_name)),
        ("suffix", clean_name(record.suffix), clean_name(attempt.suffix)),
    )
    return [name for name, kept, typed in compared if kept != typed]


def member_contact(session: Session, portal: str, client_id: str) -> str:
    """The e-mail on the member record of a client ID ("" if none or unknown)."""
    if not client_id:
        return ""
    email = session.scalar(
        select(MemberRecord.email)
        .where(MemberRecord.portal == portal)
        .where(func.upper(MemberRecord.client_id) == client_key(client_id))
    )
    return email or ""


class RegistrationActivities:
    """The registration's read model and account changes: the table follows the workflow, so
    pages, the console and the metrics never need to ask Temporal."""

    def __init__(self, session_factory: sessionmaker[Session]):
        self.session_factory = session_factory

    @activity.defn
    def record_step(self, step: StepReached) -> None:
        with self.session_factory() as session:
            session.execute(
                update(Registration)
                .where(Registration.workflow_id == step.workflow_id)
                .values(status=step.status, overdue=step.overdue, updated_at=utcnow())
            )
            session.commit()

    @activity.defn
    def close_confirmation(self, request: ConfirmationClosing) -> ConfirmationClosed:
        """Revokes the unused confirmation links, then says whether one was redeemed: the
        click's conditional update and this one serialise on the row, so exactly one wins."""
        with self.session_factory() as session:
            revoke_links(session, request.workflow_id, TokenPurpose.CONFIRM_EMAIL)
            redeemed = session.scalar(
                select(EmailToken.id)
                .where(EmailToken.workflow_id == request.workflow_id)
                .where(EmailToken.purpose == TokenPurpose.CONFIRM_EMAIL)
                .where(EmailToken.used_at.is_not(None))
                .limit(1)
            )
            session.commit()
            return ConfirmationClosed(confirmed=redeemed is not None)

    @activity.defn
    def end_registration(self, request: RegistrationEnded) -> None:
        """Expired or closed: revoke its links and, if it never went live, free the username."""
        with self.session_factory() as session:
            now = utcnow()
            revoke_links(session, request.workflow_id, now=now)
            # Update first: it waits for a web transaction attaching an account to this row,
            # so the read below sees that account and releases it too.
            session.execute(
                update(Registration)
                .where(Registration.workflow_id == request.workflow_id)
                .values(status=request.status, updated_at=now)
            )
            registration = session.scalar(
                select(Registration).where(Registration.workflow_id == request.workflow_id)
            )
            portal = registration.portal if registration else ""
            user_id = request.user_id or (registration.user_id if registration else None)
            if user_id is not None and request.release_account:
                user = session.get(User, user_id)
                if user is not None and user.status != AccountStatus.ACTIVE:
                    portal = user.portal
                    if registration is not None:
                        registration.user_id = None
                    session.delete(user)
            add_event(
                session,
                actor="system",
                action=f"registration.{request.status}",
                portal=portal,
                workflow_id=request.workflow_id,
                user_id=request.user_id,
            )
            session.commit()

    @activity.defn
    def apply_review(self, request: ReviewApplied) -> AccountState:
        with self.session_factory() as session:
            now = utcnow()
            user = session.get(User, request.user_id)
            status = AccountStatus.ACTIVE if request.approved else AccountStatus.DENIED
            if user is not None and user.status in (
                AccountStatus.PENDING_REVIEW,
                AccountStatus.UNCONFIRMED,
            ):
                user.status = status
                if request.approved:
                    user.activated_at = now
            session.execute(
                update(Registration)
                .where(Registration.workflow_id == request.workflow_id)
                .values(
                    status=Outcome.APPROVED if request.approved else Outcome.DENIED,
                    decided_by=request.reviewer,
                    decision_reason=request.reason or None,
                    updated_at=now,
                )
            )
            add_event(
                session,
                actor=request.reviewer,
                action="registration.approved" if request.approved else "registration.denied",
                portal=user.portal if user else "",
                workflow_id=request.workflow_id,
                user_id=request.user_id,
                reason=request.reason,
            )
            session.commit()
            return AccountState(user_id=request.user_id, status=status)


class RecordActivities(MailingActivities):
    @activity.defn
    def match_member(self, attempt: IdentityAttempt) -> IdentityStrike:
        """Compares one try with the member record and counts it; a retry returns the first
        answer (keyed by run and activity), so no try counts twice."""
        info = activity.info()
        try_key = f"{info.workflow_run_id}/{info.activity_id}"
        key = client_key(attempt.client_id)
        with self.session_factory() as session:
            done = session.scalar(select(IdentityTry).where(IdentityTry.try_key == try_key))
            if done is not None:
                return IdentityStrike(
                    portal=attempt.portal,
                    workflow_id=attempt.workflow_id,
                    matched=done.matched,
                    strikes=done.strikes,
                    blocked=done.blocked,
                )
            counter = session.get(IdentityStrikes, (attempt.portal, key))
            if counter is None:
                counter = IdentityStrikes(portal=attempt.portal, client_id=key, strikes=0)
                session.add(counter)
            blocked = counter.strikes >= attempt.strike_limit
            record = None
            if not blocked:
                record = session.scalar(
                    select(MemberRecord)
                    .where(MemberRecord.portal == attempt.portal)
                    .where(func.upper(MemberRecord.client_id) == key)
                )
            mismatch = [] if blocked else mismatched_fields(record, attempt)
            matched = record is not None and not mismatch
            if matched:
                counter.strikes = 0
                session.execute(
                    update(Registration)
                    .where(Registration.workflow_id == attempt.workflow_id)
                    .values(client_id=record.client_id, updated_at=utcnow())
                )
            elif not blocked:
                counter.strikes += 1
            counter.updated_at = utcnow()
            session.add(
                IdentityTry(
                    try_key=try_key,
                    portal=attempt.portal,
                    workflow_id=attempt.workflow_id,
                    client_id=key,
                    first_name=" ".join(attempt.first_name.split())[:100],
                    last_name=" ".join(attempt.last_name.split())[:100],
                    suffix=" ".join(attempt.suffix.split())[:16],
                    birth_year=attempt.date_of_birth.strip()[:4],
                    matched=matched,
                    blocked=blocked,
                    strikes=counter.strikes,
                    mismatch=",".join(mismatch),
                )
            )
            add_event(
                session,
                actor="applicant",
                action=(
                    "identity.matched"
                    if matched
                    else "identity.blocked"
                    if blocked
                    else "identity.failed"
                ),
                portal=attempt.portal,
                workflow_id=attempt.workflow_id,
                strikes=counter.strikes,
            )
            session.commit()
            return IdentityStrike(
                portal=attempt.portal,
                workflow_id=attempt.workflow_id,
                matched=matched,
                strikes=counter.strikes,
                record_id=record.id if matched else None,
                blocked=blocked,
            )

    @activity.defn
    def open_support_case(self, request: SupportCaseRequest) -> SupportCaseOpened:
        """The case names the client ID of the registration's last try (read here, so it is
        not carried by the workflow); an open case of another registration for the same client
        ID is linked as `duplicate_of`, so the help desk sees both."""
        with self.session_factory() as session:
            case = session.scalar(
                select(SupportCase)
                .where(SupportCase.workflow_id == request.workflow_id)
                .where(SupportCase.round == request.round)
            )
            if case is not None:
                return SupportCaseOpened(case_id=case.id, duplicate_of=case.duplicate_of)
            client_id = (
                session.scalar(
                    select(IdentityTry.client_id)
                    .where(IdentityTry.workflow_id == request.workflow_id)
                    .where(IdentityTry.matched.is_(False))
                    .order_by(IdentityTry.id.desc())
                    .limit(1)
                )
                or ""
            )
            duplicate_of = None
            if client_id:
                duplicate_of = session.scalar(
                    select(SupportCase.id)
                    .where(SupportCase.portal == request.portal)
                    .where(SupportCase.client_id == client_id)
                    .where(SupportCase.status == CaseStatus.OPEN)
                    .where(SupportCase.workflow_id != request.workflow_id)
                    .order_by(SupportCase.id)
                    .limit(1)
                )
            case = SupportCase(
                portal=request.portal,
                workflow_id=request.workflow_id,
                round=request.round,
                reference=request.reference,
                client_id=client_id,
                status=CaseStatus.OPEN,
                duplicate_of=duplicate_of,
            )
            session.add(case)
            session.flush()
            add_event(
                session,
                actor="system",
                action="identity.escalated",
                portal=request.portal,
                workflow_id=request.workflow_id,
                case_id=case.id,
            )
            session.commit()
            return SupportCaseOpened(case_id=case.id, duplicate_of=duplicate_of)

    @activity.defn
    def resolve_support_case(self, request: CaseResolutionRequest) -> CaseResolutionApplied:
        """Records the outcome on the case, clears the client ID's strikes on `allow_retry`, and
        e-mails the member record's address: a fresh single-use link back to the identity step,
        or the news that the registration was closed. Sent once per (registration, round)."""
        send_key = f"{request.workflow_id}/case/{request.round}/{request.outcome}"
        with self.session_factory() as session:
            case = session.scalar(
                select(SupportCase)
                .where(SupportCase.workflow_id == request.workflow_id)
                .where(SupportCase.round == request.round)
            )
            if already_sent(session, send_key):
                return CaseResolutionApplied(
                    case_id=case.id if case else None, contact_notified=True
                )
            now = utcnow()
            client_id = case.client_id if case else ""
            if case is not None and case.status == CaseStatus.OPEN:
                case.status = (
                    CaseStatus.RETRY_ALLOWED
                    if request.outcome == CaseOutcome.ALLOW_RETRY
                    else CaseStatus.CLOSED
                )
                case.resolved_at = now
                case.resolved_by = request.agent[:100]
                case.resolution_note = request.note or None
                add_event(
                    session,
                    actor=request.agent or "unknown",
                    action=f"case.{case.status}",
                    portal=request.portal,
                    workflow_id=request.workflow_id,
                    case_id=case.id,
                    note=request.note,
                )
            if request.outcome == CaseOutcome.ALLOW_RETRY and client_id:
                counter = session.get(IdentityStrikes, (request.portal, client_id))
                if counter is not None:
                    counter.strikes = 0
                    counter.updated_at = now
            contact = member_contact(session, request.portal, client_id)
            if not contact or self.mailer is None:
                session.commit()
                return CaseResolutionApplied(
                    case_id=case.id if case else None, contact_notified=False
                )
            portal = self.portals.get(request.portal)
            context = {
                "portal": request.portal,
                "portal_name": portal.name if portal else request.portal,
                "helpdesk_email": (portal.helpdesk_email or portal.support_email) if portal else "",
                "reference": case.reference if case else "",
                "hours": str(request.link_hours),
            }
            if request.outcome == CaseOutcome.ALLOW_RETRY:
                send_link_once(
                    session,
                    self.mailer,
                    send_key,
                    lambda: LinkMessage(
                        purpose=TokenPurpose.IDENTITY_RETRY,
                        portal=request.portal,
                        workflow_id=request.workflow_id,
                        lifetime_hours=request.link_hours,
                        path=f"{request.portal}/register/continue",
                        to=contact,
                        template="identity_retry_allowed",
                        locale="es",
                        context=context,
                    ),
                )
            else:
                deliver_once(
                    session,
                    self.mailer,
                    send_key,
                    to=contact,
                    template="registration_closed",
                    locale="es",
                    context={**context, "base_url": self._base_url(), "link": ""},
                    portal=request.portal,
                    workflow_id=request.workflow_id,
                )
            return CaseResolutionApplied(case_id=case.id if case else None, contact_notified=True)

    def _base_url(self) -> str:
        return self.mailer.settings.public_base_url.rstrip("/") if self.mailer else ""
