"""The app registration's door for the web tier: a developer's application is one transaction
with its process's start (the outbox); a reviewer's decision is claimed on the row in the
transaction that owes the process its signal; the credentials link is claimed once, and only
then is a confidential client's secret minted, shown in that one answer and stored hashed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from portal.audit import add_event
from portal.config import Portal
from portal.models import AppRegistration, AuditEvent, EmailToken, OidcClient, utcnow
from portal.oidc import rotate_client_secret
from portal.smart import SMART_FLOWS, supported_smart_scopes
from portal.tokens import new_reference, token_hash
from processes.app_registration.activities import redirect_uri_problem
from processes.app_registration.vocabulary import (
    WORKFLOW,
    AppRegistrationStart,
    Check,
    ClientType,
    Decided,
    Decision,
    LinkPurpose,
    LinkState,
    ReviewDecision,
    Signal,
    Step,
)
from temporal import search_attributes
from temporal.outbox import enqueue_signal, enqueue_start

__all__ = ["redirect_uri_problem"]

OPENID_SCOPES = ("openid", "offline_access")
"""The OpenID Connect scopes a health app may ask for besides the SMART ones."""


def requestable_scopes() -> list[str]:
    """The scopes a developer may tick: what discovery lists for a SMART app."""
    return [*OPENID_SCOPES, *supported_smart_scopes()]


def app_portals(portals: dict[str, Portal]) -> list[Portal]:
    """The portals a health app may connect to: those whose people have a FHIR Patient."""
    return [portal for portal in portals.values() if portal.flow in SMART_FLOWS]


def app_registration_id(reference: str) -> str:
    return f"app-registration/{reference}"


@dataclass
class Application:
    """What the developer typed, already checked by the form."""

    app_name: str
    redirect_uris: list[str]
    scopes: list[str]
    client_type: ClientType
    privacy_url: str
    contact_name: str
    contact_email: str
    locale: str = "es"


def submit(
    session: Session,
    portal: Portal,
    application: Application,
    accepted_with: Callable[[Session, str], None] | None = None,
) -> str:
    """Stores the application and owes its process a start, in one commit (with whatever
    `accepted_with` adds for the reference, e.g. the form's answer for a double click)."""
    reference = new_reference()
    row = AppRegistration(
        reference=reference,
        portal=portal.slug,
        workflow_id=app_registration_id(reference),
        status=Step.CHECKING,
        app_name=application.app_name,
        redirect_uris=list(dict.fromkeys(application.redirect_uris)),
        scopes=list(dict.fromkeys(application.scopes)),
        client_type=application.client_type,
        privacy_url=application.privacy_url,
        contact_name=application.contact_name,
        contact_email=application.contact_email,
        locale=application.locale,
    )
    session.add(row)
    session.flush()
    add_event(
        session,
        actor="developer",
        action="app_registration.submitted",
        portal=portal.slug,
        workflow_id=row.workflow_id,
        application=reference,
    )
    policy = portal.policy
    enqueue_start(
        session,
        workflow=WORKFLOW,
        workflow_id=row.workflow_id,
        payload=AppRegistrationStart(
            portal=portal.slug,
            application_id=row.id,
            review_sla_hours=policy.app_review_sla_hours,
            review_final_hours=policy.app_review_final_hours,
            credentials_link_hours=policy.app_credentials_link_hours,
        ),
        summary=f"{portal.name.source}: app registration {reference}",
        search_attributes={
            search_attributes.PORTAL.name: portal.slug,
            search_attributes.REFERENCE.name: reference,
            search_attributes.STEP.name: Step.CHECKING,
        },
    )
    if accepted_with is not None:
        accepted_with(session, reference)
    session.commit()
    return reference


# --- staff -----------------------------------------------------------------------------------


@dataclass
class ApplicationView:
    """One application as the console shows it: its row, its checks and its review clock."""

    application: AppRegistration
    checks: list[dict] = field(default_factory=list)
    age: timedelta = timedelta(0)
    left: timedelta | None = None

    @property
    def failed_checks(self) -> list[str]:
        return [c["check"] for c in self.checks if not c.get("passed")]


def _view(application: AppRegistration) -> ApplicationView:
    now = utcnow()
    due = application.review_due_at
    return ApplicationView(
        application=application,
        checks=list(application.checks or []),
        age=now - application.created_at,
        left=(due - now) if due is not None else None,
    )


def waiting_for_review(session: Session, portals: list[str]) -> list[ApplicationView]:
    """Applications waiting for a reviewer (and those still being checked), oldest first."""
    rows = session.scalars(
        select(AppRegistration)
        .where(AppRegistration.portal.in_(portals))
        .where(AppRegistration.status.in_([Step.CHECKING, Step.IN_REVIEW]))
        .order_by(AppRegistration.created_at)
    )
    return [_view(row) for row in rows]


def recent_applications(
    session: Session, portals: list[str], limit: int = 50
) -> list[ApplicationView]:
    rows = session.scalars(
        select(AppRegistration)
        .where(AppRegistration.portal.in_(portals))
        .where(AppRegistration.status.not_in([Step.CHECKING, Step.IN_REVIEW]))
        .order_by(AppRegistration.id.desc())
        .limit(limit)
    )
    return [_view(row) for row in rows]


def application_by_reference(session: Session, reference: str) -> AppRegistration | None:
    return session.scalar(select(AppRegistration).where(AppRegistration.reference == reference))


def view_of(application: AppRegistration) -> ApplicationView:
    return _view(application)


def client_of(session: Session, application: AppRegistration) -> OidcClient | None:
    return session.get(OidcClient, application.client_pk) if application.client_pk else None


def timeline(session: Session, application: AppRegistration) -> list[AuditEvent]:
    return list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.workflow_id == application.workflow_id)
            .order_by(AuditEvent.at, AuditEvent.id)
        )
    )


def decide(
    session: Session,
    application: AppRegistration,
    reviewer: str,
    decision: Decision,
    reason: str,
) -> Decided:
    """A reviewer's decision on an application waiting for review, claimed on its row with its
    audit line and the process's signal. An application whose redirect URIs failed their check
    is never approved: its client would send people's codes over plain http."""
    approved = decision == Decision.APPROVE
    insecure = any(
        c["check"] == Check.REDIRECT_URIS and not c.get("passed") for c in application.checks or []
    )
    if approved and insecure:
        return Decided.INSECURE_REDIRECT
    now = utcnow()
    claimed = session.execute(
        update(AppRegistration)
        .where(AppRegistration.id == application.id)
        .where(AppRegistration.status == Step.IN_REVIEW)
        .values(
            status=Step.APPROVED if approved else Step.DENIED,
            decided_by=reviewer,
            decision_reason=reason or None,
            decided_at=now,
            ended_at=None if approved else now,
        )
    ).rowcount
    if not claimed:
        session.rollback()
        return Decided.NOT_WAITING
    add_event(
        session,
        actor=reviewer,
        action=f"app_registration.{'approved' if approved else 'denied'}",
        portal=application.portal,
        workflow_id=application.workflow_id,
        application=application.reference,
        reason=reason,
    )
    enqueue_signal(
        session,
        workflow_id=application.workflow_id,
        signal=Signal.REVIEW_DECISION,
        payload=ReviewDecision(decision=decision, reviewer=reviewer),
    )
    session.commit()
    return Decided.DONE


# --- the developer's credentials link --------------------------------------------------------


@dataclass
class CredentialsLink:
    """What the credentials page may show; `secret` is set only in the answer that minted it."""

    state: LinkState
    app_name: str = ""
    client_id: str = ""
    confidential: bool = False
    secret: str | None = None


def _find(session: Session, raw: str) -> tuple[EmailToken | None, AppRegistration | None]:
    token = session.scalar(select(EmailToken).where(EmailToken.token_hash == token_hash(raw)))
    if token is None or token.purpose != LinkPurpose.CREDENTIALS:
        return None, None
    application = session.scalar(
        select(AppRegistration).where(AppRegistration.workflow_id == token.workflow_id)
    )
    return token, application


def read_credentials_link(session: Session, raw: str) -> CredentialsLink:
    """What the link's page may say, read without changing anything."""
    token, application = _find(session, raw)
    if token is None or application is None or application.client_pk is None:
        return CredentialsLink(LinkState.UNKNOWN)
    name = application.app_name
    if token.used_at is not None:
        return CredentialsLink(LinkState.USED, app_name=name)
    if not token.usable(utcnow()):
        return CredentialsLink(LinkState.EXPIRED, app_name=name)
    return CredentialsLink(
        LinkState.USABLE,
        app_name=name,
        confidential=application.client_type == ClientType.CONFIDENTIAL,
    )


def reveal_credentials(session: Session, raw: str) -> CredentialsLink:
    """The page's button: the link is claimed once; a confidential client gets a new secret,
    stored hashed, returned here and nowhere else (no log, no history, no e-mail)."""
    link = read_credentials_link(session, raw)
    if link.state != LinkState.USABLE:
        return link
    token, application = _find(session, raw)
    now = utcnow()
    claimed = session.execute(
        update(EmailToken)
        .where(EmailToken.id == token.id)
        .where(EmailToken.used_at.is_(None))
        .where(EmailToken.revoked_at.is_(None))
        .where(EmailToken.expires_at > now)
        .values(used_at=now)
    ).rowcount
    if not claimed:
        session.rollback()
        return read_credentials_link(session, raw)
    client = session.get(OidcClient, application.client_pk)
    if client is None:
        session.rollback()
        return CredentialsLink(LinkState.UNKNOWN)
    secret = None if client.public else rotate_client_secret(session, client.name)
    add_event(
        session,
        actor="developer",
        action="app_registration.credentials_shown",
        portal=application.portal,
        workflow_id=application.workflow_id,
        application=application.reference,
        client_id=client.client_id,
    )
    session.commit()
    return CredentialsLink(
        LinkState.SHOWN_NOW,
        app_name=application.app_name,
        client_id=client.client_id,
        confidential=not client.public,
        secret=secret,
    )
