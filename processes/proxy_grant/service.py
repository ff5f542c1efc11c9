"""The proxy grant's door for the web tier and the staff console: every invitation, request,
acceptance, decision, revoke and renewal is one transaction that claims the grant's `status`
with a conditional update and carries what the process must hear (an outbox start or signal)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from portal.audit import add_event
from portal.config import Portal
from portal.models import (
    AccountStatus,
    AuditEvent,
    ClinicalRecord,
    IdentityStrikes,
    ProxyGrant,
    User,
    utcnow,
)
from portal.oidc import subject_for
from portal.smart import patient_id_for, record_patient_id
from portal.tokens import new_reference, revoke_links
from processes import links
from processes.links import LinkState
from processes.proxy_grant.activities import end_proxy_sign_ins, subject_name
from processes.proxy_grant.steps import age_on
from processes.proxy_grant.vocabulary import (
    AGE_BOUND,
    IN_FORCE,
    LIVE,
    WAITING,
    WORKFLOW,
    Access,
    Decision,
    GrantAccepted,
    GrantRenewed,
    GrantRevoked,
    Invited,
    LinkPurpose,
    Origin,
    ProxyGrantStart,
    Relationship,
    Requested,
    ReviewDecision,
    Signal,
    Step,
    SubjectDecision,
)
from processes.transitions import audit_and_signal, claim_row, start_process

NEEDS_STAFF = (Relationship.LEGAL_GUARDIAN, Relationship.HEALTHCARE_AGENT)
"""A representative of an adult who cannot consent: staff review, not the adult's own link."""


def proxy_grant_id(portal: Portal, reference: str) -> str:
    return f"proxy/{portal.slug}/{reference}"


def _start(session: Session, portal: Portal, grant: ProxyGrant, **fields) -> None:
    policy = portal.policy
    start_process(
        session,
        portal,
        workflow=WORKFLOW,
        workflow_id=grant.workflow_id,
        payload=ProxyGrantStart(
            portal=portal.slug,
            grant_id=grant.id,
            origin=Origin(grant.origin),
            ends_on=grant.ends_on,
            link_hours=policy.proxy_link_hours,
            review_sla_hours=policy.proxy_review_sla_hours,
            review_final_hours=policy.proxy_review_final_hours,
            adolescent_age=policy.proxy_adolescent_age,
            majority_age=policy.proxy_majority_age,
            renewal_months=policy.proxy_renewal_months,
            **fields,
        ),
        what="proxy grant",
        reference=grant.reference,
        step=grant.status,
    )


def _new_grant(portal: Portal, **fields) -> ProxyGrant:
    reference = new_reference()
    return ProxyGrant(
        reference=reference,
        portal=portal.slug,
        workflow_id=proxy_grant_id(portal, reference),
        **fields,
    )


def _birth_date(session: Session, user: User) -> str:
    record = (
        session.get(ClinicalRecord, user.clinical_record_id) if user.clinical_record_id else None
    )
    return record.date_of_birth if record else ""


@dataclass
class Invitation:
    email: str
    access: Access
    ends_on: date | None = None


AcceptedWith = Callable[[Session], None]
"""What the caller adds to the transaction of an accepted form (its remembered outcome)."""


def invite(
    session: Session,
    portal: Portal,
    subject: User,
    invitation: Invitation,
    accepted_with: AcceptedWith | None = None,
) -> Invited:
    """The subject names someone by e-mail; they accept with an account of the same portal."""
    email = invitation.email.strip()
    if email.lower() == subject.email.lower():
        return Invited.SELF
    waiting = session.scalar(
        select(ProxyGrant.id)
        .outerjoin(User, User.id == ProxyGrant.proxy_user_id)
        .where(ProxyGrant.subject_user_id == subject.id)
        .where(ProxyGrant.status.in_(list(LIVE)))
        .where(
            or_(
                func.lower(ProxyGrant.invite_email) == email.lower(),
                func.lower(User.email) == email.lower(),
            )
        )
        .limit(1)
    )
    if waiting is not None:
        return Invited.DUPLICATE
    grant = _new_grant(
        portal,
        origin=Origin.INVITATION,
        status=Step.INVITED,
        subject_user_id=subject.id,
        subject_record_id=subject.clinical_record_id,
        invite_email=email,
        relationship=Relationship.CHOSEN,
        access=invitation.access,
        ends_on=invitation.ends_on.isoformat() if invitation.ends_on else "",
    )
    session.add(grant)
    session.flush()
    add_event(
        session,
        actor=f"user:{subject.id}",
        action="proxy.invited",
        portal=portal.slug,
        workflow_id=grant.workflow_id,
        user_id=subject.id,
        grant=grant.reference,
        access=str(invitation.access),
    )
    _start(session, portal, grant, adult_subject=True, birth_date=_birth_date(session, subject))
    if accepted_with is not None:
        accepted_with(session)
    session.commit()
    return Invited.SENT


def _count_strike(session: Session, portal: Portal, key: str) -> int:
    """One atomic upsert (SQLite and PostgreSQL alike): concurrent wrong guesses each count."""
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(IdentityStrikes).values(
        portal=portal.slug, client_id=key, strikes=1, updated_at=utcnow()
    )
    statement = statement.on_conflict_do_update(
        index_elements=[IdentityStrikes.portal, IdentityStrikes.client_id],
        set_={"strikes": IdentityStrikes.strikes + 1, "updated_at": utcnow()},
    ).returning(IdentityStrikes.strikes)
    return session.execute(statement).scalar_one()


def strike_key(proxy: User) -> str:
    """Strikes are the asking account's: a guess from anywhere under it counts."""
    return f"PROXY:{proxy.id}"


@dataclass
class AccessRequest:
    record_number: str
    date_of_birth: date
    relationship: Relationship
    note: str = ""


def request_access(
    session: Session,
    portal: Portal,
    proxy: User,
    request: AccessRequest,
    accepted_with: AcceptedWith | None = None,
) -> Requested:
    """Checks the record number and birth date together (a mismatch counts a strike and never
    says which field), then sends the request to the adult subject's own link or to staff."""
    key = strike_key(proxy)
    limit = portal.policy.identity_strike_limit
    strikes = session.scalar(
        select(IdentityStrikes.strikes)
        .where(IdentityStrikes.portal == portal.slug)
        .where(IdentityStrikes.client_id == key)
    )
    if strikes is not None and strikes >= limit:
        return Requested.BLOCKED
    record = session.scalar(
        select(ClinicalRecord)
        .where(ClinicalRecord.portal == portal.slug)
        .where(func.upper(ClinicalRecord.record_number) == request.record_number.strip().upper())
        .where(ClinicalRecord.date_of_birth == request.date_of_birth.isoformat())
    )
    if record is None:
        counted = _count_strike(session, portal, key)
        add_event(
            session,
            actor=f"user:{proxy.id}",
            action="proxy.request_mismatch",
            portal=portal.slug,
            user_id=proxy.id,
            strikes=counted,
        )
        session.commit()
        return Requested.BLOCKED if counted >= limit else Requested.NO_MATCH
    session.execute(
        update(IdentityStrikes)
        .where(IdentityStrikes.portal == portal.slug)
        .where(IdentityStrikes.client_id == key)
        .values(strikes=0, updated_at=utcnow())
    )
    if proxy.clinical_record_id == record.id:
        session.commit()
        return Requested.SELF
    session.scalar(select(User.id).where(User.id == proxy.id).with_for_update())
    pending = session.scalar(
        select(ProxyGrant.id)
        .where(ProxyGrant.subject_record_id == record.id)
        .where(ProxyGrant.proxy_user_id == proxy.id)
        .where(ProxyGrant.status.in_(list(LIVE)))
        .limit(1)
    )
    if pending is not None:
        session.commit()
        return Requested.DUPLICATE
    subject = session.scalar(
        select(User)
        .where(User.clinical_record_id == record.id)
        .where(User.status == AccountStatus.ACTIVE)
    )
    minor = bool(record.date_of_birth) and (
        age_on(record.date_of_birth, utcnow().date()) < portal.policy.proxy_majority_age
    )
    review = minor or subject is None or request.relationship in NEEDS_STAFF
    grant = _new_grant(
        portal,
        origin=Origin.REQUEST,
        status=Step.IN_REVIEW if review else Step.AWAITING_SUBJECT,
        subject_user_id=subject.id if subject else None,
        subject_record_id=record.id,
        proxy_user_id=proxy.id,
        relationship=request.relationship,
        access=Access.VIEW if request.relationship == Relationship.OTHER else Access.MANAGE,
        note=request.note,
    )
    session.add(grant)
    session.flush()
    add_event(
        session,
        actor=f"user:{proxy.id}",
        action="proxy.requested",
        portal=portal.slug,
        workflow_id=grant.workflow_id,
        user_id=subject.id if subject else None,
        grant=grant.reference,
        relationship=str(request.relationship),
        review=review,
    )
    _start(
        session,
        portal,
        grant,
        review=review,
        birth_date=record.date_of_birth,
        adult_subject=not minor,
        age_bound=request.relationship in AGE_BOUND,
    )
    if accepted_with is not None:
        accepted_with(session)
    session.commit()
    return Requested.SENT_TO_STAFF if review else Requested.SENT_TO_SUBJECT


Link = links.Link[ProxyGrant]


def read_link(session: Session, portal: Portal, raw: str, purpose: LinkPurpose) -> Link:
    """What a link's page may say, read without changing anything."""
    return links.read_link(
        session, portal.slug, raw, purpose, ProxyGrant, lambda grant: grant.status in WAITING
    )


def _claim(session: Session, link: Link, source: Step, **values) -> bool:
    return links.claim(session, link, ProxyGrant.status == source, **values)


def accept(session: Session, portal: Portal, raw: str, proxy: User) -> Link:
    """The invitee's button, pressed signed in: that account becomes the proxy."""
    link = read_link(session, portal, raw, LinkPurpose.ACCEPT)
    if link.state != LinkState.USABLE:
        return link
    if proxy.id == link.row.subject_user_id or proxy.portal != portal.slug:
        return Link(LinkState.WRONG_PERSON, link.token, link.row)
    if not _claim(
        session,
        link,
        Step.INVITED,
        status=Step.ACTIVE,
        proxy_user_id=proxy.id,
        activated_at=utcnow(),
    ):
        session.rollback()
        return read_link(session, portal, raw, LinkPurpose.ACCEPT)
    audit_and_signal(
        session,
        workflow_id=link.row.workflow_id,
        signal=Signal.ACCEPT,
        payload=GrantAccepted(proxy_user_id=proxy.id),
        actor=f"user:{proxy.id}",
        action="proxy.accepted",
        portal=portal.slug,
        user_id=link.row.subject_user_id,
        grant=link.row.reference,
    )
    return link.done_now()


def decide_as_subject(
    session: Session, portal: Portal, raw: str, decision: Decision, signed_in: User | None
) -> Link:
    """The adult subject's approval or refusal from their e-mailed link; anyone signed in as
    another account is refused, so a shared computer cannot answer for them."""
    link = read_link(session, portal, raw, LinkPurpose.CONSENT)
    if link.state != LinkState.USABLE:
        return link
    if signed_in is not None and signed_in.id != link.row.subject_user_id:
        return Link(LinkState.WRONG_PERSON, link.token, link.row)
    approved = decision == Decision.APPROVE
    now = utcnow()
    values = {"status": Step.ACTIVE, "activated_at": now} if approved else {"status": Step.DECLINED}
    if not approved:
        values.update(ended_at=now, ended_by=f"user:{link.row.subject_user_id}")
    if not _claim(session, link, Step.AWAITING_SUBJECT, **values):
        session.rollback()
        return read_link(session, portal, raw, LinkPurpose.CONSENT)
    audit_and_signal(
        session,
        workflow_id=link.row.workflow_id,
        signal=Signal.SUBJECT_DECISION,
        payload=SubjectDecision(decision=decision),
        actor=f"user:{link.row.subject_user_id}",
        action="proxy.approved" if approved else "proxy.declined",
        portal=portal.slug,
        user_id=link.row.subject_user_id,
        grant=link.row.reference,
        proxy=f"user:{link.row.proxy_user_id}",
    )
    return link.done_now()


def review(
    session: Session, grant: ProxyGrant, reviewer: str, decision: Decision, reason: str
) -> bool:
    """A reviewer's decision on a request waiting for staff; False if it was no longer waiting."""
    approved = decision == Decision.APPROVE
    now = utcnow()
    values = {"status": Step.ACTIVE, "activated_at": now} if approved else {"status": Step.DENIED}
    if not approved:
        values.update(ended_at=now, ended_by=reviewer)
    claimed = claim_row(
        session,
        ProxyGrant,
        grant.id,
        ProxyGrant.status == Step.IN_REVIEW,
        decided_by=reviewer,
        decision_reason=reason,
        **values,
    )
    if not claimed:
        session.rollback()
        return False
    audit_and_signal(
        session,
        workflow_id=grant.workflow_id,
        signal=Signal.REVIEW_DECISION,
        payload=ReviewDecision(decision=decision, reviewer=reviewer, reason=reason),
        actor=reviewer,
        action="proxy.review_approved" if approved else "proxy.review_denied",
        portal=grant.portal,
        user_id=grant.subject_user_id,
        grant=grant.reference,
        reason=reason,
    )
    return True


def end_grant(
    session: Session, grant: ProxyGrant, by: str, status: Step = Step.REVOKED, note: str = ""
) -> bool:
    """Revoked by the subject or staff, or left by the proxy: the proxy's sign-ins end (every
    client told) in the same transaction; False if the grant had already ended."""
    now = utcnow()
    claimed = claim_row(
        session,
        ProxyGrant,
        grant.id,
        ProxyGrant.status.in_(list(LIVE)),
        status=status,
        ended_at=now,
        ended_by=by,
        end_note=note or None,
    )
    if not claimed:
        session.rollback()
        return False
    revoke_links(session, grant.workflow_id, now=now)
    end_proxy_sign_ins(session, grant)
    audit_and_signal(
        session,
        workflow_id=grant.workflow_id,
        signal=Signal.REVOKE,
        payload=GrantRevoked(by=by, status=status),
        actor=by,
        action=f"proxy.{status}",
        portal=grant.portal,
        user_id=grant.subject_user_id,
        grant=grant.reference,
        proxy=f"user:{grant.proxy_user_id}" if grant.proxy_user_id else "",
        note=note,
    )
    return True


def renew(session: Session, grant: ProxyGrant, subject: User) -> bool:
    """The adult subject keeps the grant for another term; the process moves its timers."""
    if grant.subject_user_id != subject.id or grant.status not in IN_FORCE:
        return False
    audit_and_signal(
        session,
        workflow_id=grant.workflow_id,
        signal=Signal.RENEW,
        payload=GrantRenewed(by=f"user:{subject.id}"),
        actor=f"user:{subject.id}",
        action="proxy.renewed",
        portal=grant.portal,
        user_id=subject.id,
        grant=grant.reference,
    )
    return True


@dataclass
class GrantView:
    """A grant as a page shows it: the names are looked up here, not stored on the grant."""

    grant: ProxyGrant
    subject_name: str
    proxy_name: str


def _view(session: Session, grant: ProxyGrant) -> GrantView:
    proxy = session.get(User, grant.proxy_user_id) if grant.proxy_user_id else None
    return GrantView(
        grant=grant,
        subject_name=subject_name(session, grant),
        proxy_name=proxy.display_name if proxy else grant.invite_email,
    )


def grants_for_subject(session: Session, subject: User) -> list[GrantView]:
    """The people who act, or asked or were invited to act, for this account."""
    grants = session.scalars(
        select(ProxyGrant)
        .where(
            or_(
                ProxyGrant.subject_user_id == subject.id,
                ProxyGrant.subject_record_id == subject.clinical_record_id,
            )
            if subject.clinical_record_id
            else ProxyGrant.subject_user_id == subject.id
        )
        .where(ProxyGrant.status.in_(list(LIVE)))
        .order_by(ProxyGrant.id)
    )
    return [_view(session, grant) for grant in grants]


def grants_as_proxy(session: Session, proxy: User, in_force_only: bool = False) -> list[GrantView]:
    """The people this account acts for (and, for its page, the requests it is waiting on)."""
    statuses = IN_FORCE if in_force_only else LIVE
    grants = session.scalars(
        select(ProxyGrant)
        .where(ProxyGrant.proxy_user_id == proxy.id)
        .where(ProxyGrant.status.in_(list(statuses)))
        .order_by(ProxyGrant.id)
    )
    return [_view(session, grant) for grant in grants]


def grant_by_reference(session: Session, reference: str) -> ProxyGrant | None:
    return session.scalar(select(ProxyGrant).where(ProxyGrant.reference == reference))


def acting_grant(session: Session, proxy: User, reference: str) -> GrantView | None:
    """The grant under which `proxy` acts now, or None if it is no longer in force."""
    grant = grant_by_reference(session, reference)
    if grant is None or grant.proxy_user_id != proxy.id or grant.status not in IN_FORCE:
        return None
    return _view(session, grant)


def both_people(grant: ProxyGrant) -> dict[str, str]:
    """What every audit line written while acting carries: the proxy, the person, the grant."""
    return {
        "acting_as": f"user:{grant.proxy_user_id}",
        "acting_for": (
            f"user:{grant.subject_user_id}"
            if grant.subject_user_id
            else f"record:{grant.subject_record_id}"
        ),
        "proxy_grant": grant.reference,
    }


def start_acting(session: Session, proxy: User, reference: str) -> GrantView | None:
    """The proxy starts acting for the grant's person: an audit line on the grant's timeline;
    None (nothing written) when the grant is no longer in force."""
    acting = acting_grant(session, proxy, reference)
    if acting is None:
        return None
    add_event(
        session,
        actor=f"user:{proxy.id}",
        action="proxy.acting_started",
        portal=proxy.portal,
        workflow_id=acting.grant.workflow_id,
        user_id=acting.grant.subject_user_id,
        **both_people(acting.grant),
    )
    session.commit()
    return acting


def stop_acting(session: Session, proxy: User, grant: ProxyGrant) -> None:
    """The proxy goes back to their own view: an audit line on the grant's timeline."""
    add_event(
        session,
        actor=f"user:{proxy.id}",
        action="proxy.acting_stopped",
        portal=proxy.portal,
        workflow_id=grant.workflow_id,
        user_id=proxy.id,
    )
    session.commit()


def waiting_for_review(session: Session, portals: list[str]) -> list[GrantView]:
    grants = session.scalars(
        select(ProxyGrant)
        .where(ProxyGrant.portal.in_(portals))
        .where(ProxyGrant.status == Step.IN_REVIEW)
        .order_by(ProxyGrant.created_at)
    )
    return [_view(session, grant) for grant in grants]


def recent_grants(session: Session, portals: list[str], limit: int = 50) -> list[GrantView]:
    grants = session.scalars(
        select(ProxyGrant)
        .where(ProxyGrant.portal.in_(portals))
        .where(ProxyGrant.status != Step.IN_REVIEW)
        .order_by(ProxyGrant.id.desc())
        .limit(limit)
    )
    return [_view(session, grant) for grant in grants]


def view_of(session: Session, grant: ProxyGrant) -> GrantView:
    return _view(session, grant)


def timeline(session: Session, grant: ProxyGrant) -> list[AuditEvent]:
    """Every audit line of the grant's process, oldest first: what staff read before acting."""
    return list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.workflow_id == grant.workflow_id)
            .order_by(AuditEvent.at, AuditEvent.id)
        )
    )


def acting_claim(session: Session, proxy: User, reference: str, secret: str) -> dict | None:
    """The `acting_for` claim of a proxy's tokens while the grant is in force: the subject's
    own `sub` if they have an account, else a stable pseudonym of their record (never its
    number), the relationship and the access."""
    grant = grant_by_reference(session, reference)
    if grant is None or grant.proxy_user_id != proxy.id or grant.status not in IN_FORCE:
        return None
    if grant.subject_user_id is not None:
        subject = subject_for(session, grant.subject_user_id)
    else:
        digest = hmac.new(
            secret.encode(),
            f"proxy-record:{grant.portal}:{grant.subject_record_id}".encode(),
            hashlib.sha256,
        ).digest()
        subject = base64.urlsafe_b64encode(digest[:24]).rstrip(b"=").decode()
    return {
        "sub": subject,
        "relationship": grant.relationship,
        "access": Access.LIMITED if grant.status == Step.LIMITED else grant.access,
    }


@dataclass(frozen=True)
class PatientChoice:
    """Someone whose record a proxy may give a health app (SMART `launch/patient`): the grant it
    rests on, their name and their FHIR Patient id."""

    reference: str
    name: str
    patient: str

    @property
    def fhir_user(self) -> str:
        """The proxy as FHIR sees them in this relationship: a RelatedPerson whose id is the
        grant's reference, stable for the grant's whole life and naming no one."""
        return f"RelatedPerson/{self.reference}"


def _subject_patient_id(session: Session, grant: ProxyGrant) -> str | None:
    if grant.subject_record_id is not None:
        record = session.get(ClinicalRecord, grant.subject_record_id)
        if record is not None:
            return record_patient_id(record)
    if grant.subject_user_id is not None:
        subject = session.get(User, grant.subject_user_id)
        if subject is not None:
            return patient_id_for(session, subject)
    return None


def _gives_apps_the_record(grant: ProxyGrant, write: bool) -> bool:
    """Only a grant at full access lets a health app in: not a `limited` one (a parent's after
    the child's adolescent birthday, when the teenager's whole record is no longer the parent's
    to hand over), and a `view` one only to an app that reads and searches, never to one that
    may create, update or delete."""
    if grant.status != Step.ACTIVE:
        return False
    return grant.access == Access.MANAGE or (grant.access == Access.VIEW and not write)


def _choice(session: Session, grant: ProxyGrant, write: bool) -> PatientChoice | None:
    if not _gives_apps_the_record(grant, write):
        return None
    patient = _subject_patient_id(session, grant)
    if patient is None:
        return None
    return PatientChoice(grant.reference, subject_name(session, grant), patient)


def patient_choices(session: Session, proxy: User, write: bool) -> list[PatientChoice]:
    """The people whose record this account may give a health app now; `write` when the app
    asks to create, update or delete."""
    grants = session.scalars(
        select(ProxyGrant)
        .where(ProxyGrant.proxy_user_id == proxy.id)
        .where(ProxyGrant.portal == proxy.portal)
        .where(ProxyGrant.status == Step.ACTIVE)
        .order_by(ProxyGrant.id)
    )
    choices = (_choice(session, grant, write) for grant in grants)
    return [choice for choice in choices if choice is not None]


def record_app_given(session: Session, proxy: User, choice: PatientChoice, client: str) -> None:
    """The audit line of a health app given a person's record by their proxy, on the grant's
    timeline where staff and the subject's history see it; the caller commits."""
    grant = grant_by_reference(session, choice.reference)
    add_event(
        session,
        actor=f"user:{proxy.id}",
        action="proxy.app_given",
        portal=proxy.portal,
        workflow_id=grant.workflow_id,
        user_id=grant.subject_user_id,
        grant=grant.reference,
        client=client,
    )


def patient_under(
    session: Session, proxy: User, reference: str, write: bool
) -> PatientChoice | None:
    """The person a health app's tokens reach through the grant `reference`, or None once that
    grant no longer allows it (ended, limited, or not this proxy's)."""
    grant = grant_by_reference(session, reference)
    if grant is None or grant.proxy_user_id != proxy.id or grant.portal != proxy.portal:
        return None
    return _choice(session, grant, write)
