"""The registration's door for the web tier: every change is one database transaction that
also carries what the process must hear (an outbox start or signal), so no crash between two
systems can leave a username held without a process, or an account confirmed that its process
never hears of."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from portal.audit import add_event
from portal.config import Portal
from portal.models import (
    AccountStatus,
    MemberRecord,
    Office,
    Registration,
    RegistrationDraft,
    Role,
    SecurityAnswer,
    SupportCase,
    User,
    utcnow,
)
from portal.records import account_of_record, matching_record
from portal.tokens import claim_link, new_reference
from processes import links
from processes.account_notice.service import notify_address
from processes.account_notice.vocabulary import NoticeKind
from processes.links import LinkState
from processes.registration.vocabulary import (
    AWAITING_REVIEW,
    WORKFLOW,
    AccountSubmission,
    CaseResolution,
    CaseStatus,
    EmailConfirmed,
    IdentityCheck,
    IdentityResult,
    Outcome,
    RegistrationStart,
    ResendRequest,
    ReviewDecision,
    Signal,
    Step,
    Submission,
    TokenPurpose,
)
from processes.transitions import audit_and_signal, claim_row, start_process
from temporal import search_attributes
from temporal.bridge import ProcessUnavailable, TemporalBridge, ask


def registration_id(portal: Portal, reference: str) -> str:
    return f"registration/{portal.slug}/{reference}"


def begin(
    session: Session,
    portal: Portal,
    registration: Registration,
    rows: Iterable[object] = (),
    *,
    user: User | None = None,
    action: str = "registration.submitted",
    **audit_detail,
) -> bool:
    """Stores the registration's rows and owes Temporal its start, in the caller's transaction,
    then commits. False when the database's unique username index refused the account (a race
    the form's own check missed); nothing is kept then."""
    session.add_all([*rows, registration] if user is None else [*rows, user, registration])
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        return False
    add_event(
        session,
        actor="applicant",
        action=action,
        portal=portal.slug,
        workflow_id=registration.workflow_id,
        user_id=user.id if user else None,
        **audit_detail,
    )
    start_process(
        session,
        portal,
        workflow=WORKFLOW,
        workflow_id=registration.workflow_id,
        payload=RegistrationStart(
            portal=portal.slug,
            reference=registration.reference,
            steps=list(portal.steps),
            policy=portal.policy,
            user_id=user.id if user else None,
            recorded_step=registration.status,
        ),
        what="registration",
        reference=registration.reference,
        step=portal.steps[0],
    )
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return False
    return True


Link = links.Link[Registration]


def confirmation_link(session: Session, portal: Portal, raw: str) -> Link:
    """What the confirmation page may say about a link, read without changing anything."""
    return links.read_link(session, portal.slug, raw, TokenPurpose.CONFIRM_EMAIL, Registration)


def redeem_confirmation(session: Session, portal: Portal, raw: str) -> Link:
    """The confirmation click: link, account and read model change in one transaction that also
    owes the workflow its `email_confirmed` signal. Repeated or concurrent clicks are answered
    from the first one's result; the conditional update lets exactly one of them win."""
    link = confirmation_link(session, portal, raw)
    if link.state != LinkState.USABLE:
        return link
    token = link.token
    now = utcnow()
    if not claim_link(session, token.id):
        session.rollback()
        return confirmation_link(session, portal, raw)
    user = session.get(User, token.user_id) if token.user_id else None
    reviewed = Step.REVIEW in portal.steps
    next_status = AccountStatus.PENDING_REVIEW if reviewed else AccountStatus.ACTIVE
    if user is not None and user.status == AccountStatus.UNCONFIRMED:
        user.status = next_status
        if next_status == AccountStatus.ACTIVE:
            user.activated_at = now
    session.execute(
        update(Registration)
        .where(Registration.workflow_id == token.workflow_id)
        .values(status=Step.PENDING_REVIEW if reviewed else Outcome.ACTIVE, updated_at=now)
    )
    audit_and_signal(
        session,
        workflow_id=token.workflow_id,
        signal=Signal.EMAIL_CONFIRMED,
        payload=EmailConfirmed(
            workflow_id=token.workflow_id,
            token_id=token.id,
            user_id=user.id if user else 0,
            next_status=next_status,
        ),
        actor=f"user:{user.id}" if user else "applicant",
        action="registration.email_confirmed",
        portal=portal.slug,
        user_id=user.id if user else None,
        status=next_status,
    )
    return link.done_now()


def start_now(bridge: TemporalBridge, portal: Portal, reference: str) -> None:
    """Asks Temporal to start the registration at once (idempotent, by its ID), so the first
    identity try finds it running; if Temporal is away, the outbox relay starts it later."""
    from processes.registration.workflows import RegistrationWorkflow

    start = RegistrationStart(
        portal=portal.slug, reference=reference, steps=list(portal.steps), policy=portal.policy
    )
    with contextlib.suppress(WorkflowAlreadyStartedError, ProcessUnavailable):
        ask(
            bridge,
            lambda client: client.start_workflow(
                RegistrationWorkflow.run,
                start,
                id=registration_id(portal, reference),
                task_queue=bridge.settings.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                static_summary=f"{portal.name.source}: registration {reference}",
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(search_attributes.PORTAL, portal.slug),
                        SearchAttributePair(search_attributes.REFERENCE, reference),
                        SearchAttributePair(search_attributes.STEP, portal.steps[0]),
                    ]
                ),
            ),
        )


def check_identity(
    bridge: TemporalBridge, workflow_id: str, attempt: IdentityCheck, attempt_key: str = ""
) -> IdentityResult:
    """One identity try, answered by the workflow's update; refusals carry an IdentityRefusal.
    A press retried after a timeout carries the same `attempt_key` (the form's), so it joins
    the first press's update and gets its answer instead of spending a second try."""
    from processes.registration.workflows import RegistrationWorkflow

    update_id = None
    if attempt_key:
        update_id = "identity-" + hashlib.sha256(attempt_key.encode()).hexdigest()[:32]
    return ask(
        bridge,
        lambda client: client.get_workflow_handle(workflow_id).execute_update(
            RegistrationWorkflow.check_identity, attempt, id=update_id
        ),
    )


def resend_confirmation(bridge: TemporalBridge, workflow_id: str) -> None:
    from processes.registration.workflows import RegistrationWorkflow

    ask(
        bridge,
        lambda client: client.get_workflow_handle(workflow_id).signal(
            RegistrationWorkflow.resend_confirmation, ResendRequest()
        ),
    )


def resend_for_helpdesk(session: Session, user: User, actor: str) -> bool:
    """The help desk asks the account's registration for a new confirmation link, owed through
    the outbox with its audit line; False when the account is not waiting for a confirmation."""
    workflow_id = session.scalar(
        select(Registration.workflow_id)
        .where(Registration.user_id == user.id)
        .order_by(Registration.id.desc())
        .limit(1)
    )
    if user.status != AccountStatus.UNCONFIRMED or workflow_id is None:
        return False
    audit_and_signal(
        session,
        workflow_id=workflow_id,
        signal=Signal.RESEND_CONFIRMATION,
        payload=ResendRequest(requested_by=actor),
        actor=actor,
        action="registration.confirmation_resent_by_helpdesk",
        portal=user.portal,
        user_id=user.id,
    )
    return True


def note_existing_account(session: Session, portal: Portal, registration: Registration) -> None:
    """The matched client ID already has an account: the try is audited, nothing else changes."""
    add_event(
        session,
        actor="applicant",
        action="registration.client_has_account",
        portal=portal.slug,
        workflow_id=registration.workflow_id,
    )
    session.commit()


def keep_credentials(
    session: Session, registration: Registration, password_hash: str | None, answers: list
) -> None:
    """The member's password and secret answers, already hashed, wait on the registration's row
    until Finish creates the account; nothing secret reaches the session cookie."""
    details = dict(registration.details or {})
    if password_hash:
        details["password_hash"] = password_hash
    details["answers"] = answers
    registration.details = details
    session.commit()


@dataclass
class MemberAccount:
    """What Finish creates the account from: the wizard's typed values and the matched record."""

    username: str
    email: str
    question_indexes: list[int]
    locale: str
    record: MemberRecord


def submit_account(
    session: Session, portal: Portal, registration: Registration, account: MemberAccount
) -> Submission:
    """Creates the inactive account (hashes only) and claims the registration for it, in the
    transaction that owes the workflow its `submit_account` signal; the caller may have added
    its own rows (the form's remembered outcome) to the same transaction."""
    details = dict(registration.details or {})
    answers = details.get("answers") or []
    if "password_hash" not in details or not all(answers):
        session.rollback()
        return Submission.INCOMPLETE
    record = account.record
    questions = portal.security_questions
    user = _new_account(
        portal,
        Role.MEMBER,
        username=account.username,
        email=account.email,
        password_hash=details["password_hash"],
        locale=account.locale,
        first_name=record.first_name,
        last_name=record.last_name,
        full_name=" ".join(p for p in (record.first_name, record.last_name, record.suffix) if p),
        client_id=record.client_id,
        security_answers=[
            SecurityAnswer(question=questions[index].source, answer_hash=answer)
            for index, answer in zip(account.question_indexes, answers, strict=False)
        ],
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        return Submission.USERNAME_TAKEN
    claimed = claim_row(
        session,
        Registration,
        registration.id,
        Registration.status == Step.ACCOUNT,
        Registration.user_id.is_(None),
        user_id=user.id,
        details={},
    )
    if not claimed:
        session.rollback()
        return Submission.ENDED
    audit_and_signal(
        session,
        workflow_id=registration.workflow_id,
        signal=Signal.SUBMIT_ACCOUNT,
        payload=AccountSubmission(user_id=user.id),
        actor="applicant",
        action="registration.submitted",
        portal=portal.slug,
        user_id=user.id,
    )
    return Submission.SUBMITTED


def _new_registration(portal: Portal, step: Step, **fields) -> Registration:
    """A registration's row under a new opaque reference, which also names its process."""
    reference = new_reference()
    return Registration(
        reference=reference,
        portal=portal.slug,
        workflow_id=registration_id(portal, reference),
        status=step,
        **fields,
    )


def _new_account(
    portal: Portal,
    role: Role,
    *,
    username: str,
    email: str,
    password_hash: str,
    locale: str,
    **fields,
) -> User:
    """Every portal's new account waits for its e-mail confirmation, with hashes only."""
    return User(
        portal=portal.slug,
        username=username,
        email=email,
        password_hash=password_hash,
        status=AccountStatus.UNCONFIRMED,
        role=role,
        locale=locale,
        **fields,
    )


def start_member(session: Session, portal: Portal, remember: Callable[[str], None]) -> str:
    """The member's accepted agreement: the registration's row and its owed start commit
    together (with the form's outcome, which `remember` adds for the new reference)."""
    registration = _new_registration(portal, Step.IDENTITY)
    reference = registration.reference
    remember(reference)
    begin(session, portal, registration, action="registration.agreement_accepted")
    return reference


APPLICANT_SHOWN = ("first_name", "last_name", "email", "phone", "username")
"""What a provider's registration keeps of the applicant for the reviewer to read."""

OFFICE_NAMED = ("organization_name", "tax_id", "npi")
"""The office's own columns; the rest of what the wizard typed about it is its address."""


def submit_provider(
    session: Session,
    portal: Portal,
    draft: RegistrationDraft,
    locale: str,
    remember: Callable[[str], None],
) -> str | None:
    """The provider wizard's Finish: office, account (hashes only) and registration replace the
    draft in one transaction that owes the workflow its start; `remember` adds the form's
    outcome for the new reference. The reference, or None when the username was taken by a
    concurrent registration."""
    applicant, office_data = draft.data["user"], draft.data["office"]
    office = Office(
        portal=portal.slug,
        **{key: office_data[key] for key in OFFICE_NAMED},
        address={key: value for key, value in office_data.items() if key not in OFFICE_NAMED},
    )
    session.add(office)
    session.flush()
    user = _new_account(
        portal,
        Role.PROVIDER_PRIMARY,
        username=applicant["username"],
        email=applicant["email"],
        password_hash=applicant["password_hash"],
        locale=locale,
        first_name=applicant["first_name"],
        last_name=applicant["last_name"],
        phone=applicant["phone"],
        office_id=office.id,
    )
    user.security_answers = [
        SecurityAnswer(question=question, answer_hash=answer)
        for question, answer in zip(applicant["questions"], applicant["answer_hashes"], strict=True)
    ]
    registration = _new_registration(
        portal,
        Step.CONFIRM_EMAIL,
        user=user,
        details={
            "applicant": {key: applicant[key] for key in APPLICANT_SHOWN},
            "office": office_data,
        },
    )
    session.delete(draft)
    reference = registration.reference
    remember(reference)
    if not begin(session, portal, registration, user=user, office_id=office.id):
        return None
    return reference


@dataclass
class PatientAccount:
    """What the patient's one form creates the account from (the password already hashed)."""

    username: str
    email: str
    full_name: str
    password_hash: str
    locale: str


def submit_patient(
    session: Session, portal: Portal, account: PatientAccount, remember: Callable[[], None]
) -> Submission:
    """One transaction: the account, linked to the clinical record it matched, and its process;
    or a notice to the address, so the screen answers the same either way (being on a record is
    health information). `remember` adds the form's outcome to whichever transaction commits."""
    record = matching_record(session, portal.slug, account.email, account.full_name)
    if record is None:
        return _answer_by_mail(
            session, portal, account, remember, NoticeKind.REGISTRATION_NO_RECORD
        )
    if account_of_record(session, record) is not None:
        return _answer_by_mail(session, portal, account, remember, NoticeKind.REGISTRATION_EXISTING)
    user = _new_account(
        portal,
        Role.PATIENT,
        username=account.username,
        email=account.email,
        password_hash=account.password_hash,
        locale=account.locale,
        full_name=account.full_name,
        clinical_record_id=record.id,
    )
    registration = _new_registration(
        portal,
        Step.CONFIRM_EMAIL,
        user=user,
    )
    remember()
    if begin(session, portal, registration, user=user):
        return Submission.SUBMITTED
    if _username_held(session, portal, account.username):
        return Submission.USERNAME_TAKEN
    # A concurrent registration took the record: answered as for any record with an account.
    return _answer_by_mail(session, portal, account, remember, NoticeKind.REGISTRATION_EXISTING)


def _username_held(session: Session, portal: Portal, username: str) -> bool:
    return (
        session.scalar(
            select(User.id).where(
                User.portal == portal.slug, func.lower(User.username) == username.lower()
            )
        )
        is not None
    )


def _answer_by_mail(
    session: Session,
    portal: Portal,
    account: PatientAccount,
    remember: Callable[[], None],
    kind: NoticeKind,
) -> Submission:
    """The screen's one answer; the address's owner learns the rest by e-mail. Only the form's
    remembered outcome can collide here: the same form was accepted once already."""
    notify_address(session, portal.slug, account.email, account.locale, kind)
    add_event(session, actor="applicant", action="registration.refused_by_mail", portal=portal.slug)
    remember()
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return Submission.REPEATED
    return Submission.SUBMITTED


def _open_to_retry(registration: Registration) -> bool:
    return registration.status in (Step.IDENTITY, Step.ESCALATED)


def retry_link(session: Session, portal: Portal, raw: str) -> Link:
    """What the help desk's retry link's page may say, read without changing anything."""
    return links.read_link(
        session, portal.slug, raw, TokenPurpose.IDENTITY_RETRY, Registration, _open_to_retry
    )


def use_retry_link(session: Session, portal: Portal, raw: str) -> Link:
    """The retry link's POST: a conditional claim, so two clicks use it once."""
    link = retry_link(session, portal, raw)
    if link.state != LinkState.USABLE:
        return link
    if not claim_link(session, link.token.id):
        session.rollback()
        return links.Link(LinkState.EXPIRED)
    add_event(
        session,
        actor="applicant",
        action="registration.retry_link_used",
        portal=portal.slug,
        workflow_id=link.row.workflow_id,
    )
    session.commit()
    return link.done_now()


def decide(
    session: Session, registration: Registration, reviewer: str, approved: bool, reason: str
) -> bool:
    """A reviewer's decision: the claim, its audit line and the owed `review_decision` signal
    commit together, so a crash after the commit still delivers it (the outbox relay) and one
    before it leaves nothing decided. False when another decision or the process got there
    first."""
    claimed = claim_row(
        session,
        Registration,
        registration.id,
        Registration.status.in_(AWAITING_REVIEW),
        Registration.decided_by.is_(None),
        decided_by=reviewer,
        decision_reason=reason or None,
    )
    if not claimed:
        session.rollback()
        return False
    audit_and_signal(
        session,
        workflow_id=registration.workflow_id,
        signal=Signal.REVIEW_DECISION,
        payload=ReviewDecision(approved=approved, reviewer=reviewer, reason=reason),
        actor=reviewer,
        action="review.decision_sent",
        portal=registration.portal,
        user_id=registration.user_id,
        approved=approved,
        reason=reason,
    )
    return True


def resolve_case(session: Session, case: SupportCase, resolution: CaseResolution) -> bool:
    """The help desk's answer is owed as the `resolve_case` signal with its audit line, and
    nothing else: the case, the strikes and the e-mail are written by the workflow's activity,
    so the same signal from the Temporal UI has exactly the same effect. False if the case was
    already resolved."""
    if case.status != CaseStatus.OPEN:
        return False
    audit_and_signal(
        session,
        workflow_id=case.workflow_id,
        signal=Signal.RESOLVE_CASE,
        payload=resolution,
        actor=resolution.agent,
        action="case.resolution_sent",
        portal=case.portal,
        case_id=case.id,
        outcome=resolution.outcome,
    )
    return True
