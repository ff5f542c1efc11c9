"""The app registration's door for the web tier: a developer's application is one transaction
with its process's start (the outbox); a reviewer's decision is claimed on the row in the
transaction that owes the process its signal; the credentials link is claimed once, and only
then is a confidential client's secret minted, shown in that one answer and stored hashed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.audit import add_event
from portal.config import Portal
from portal.models import AppRegistration, AuditEvent, OidcClient, utcnow
from portal.oidc import rotate_client_secret
from portal.smart import SMART_FLOWS, supported_smart_scopes
from portal.tokens import claim_link, new_reference
from processes import links
from processes.app_registration.activities import redirect_uri_problem
from processes.app_registration.vocabulary import (
    CREDENTIALS_WORKFLOW,
    WORKFLOW,
    AppCredentialsStart,
    AppRegistrationStart,
    Check,
    ClientType,
    Decided,
    Decision,
    LinkPurpose,
    ReviewDecision,
    Signal,
    Step,
)
from processes.links import LinkState
from processes.transitions import audit_and_signal, claim_row, start_process

__all__ = ["redirect_uri_problem"]

OPENID_SCOPES = ("openid", "offline_access")
"""The OpenID Connect scopes a health app may ask for besides the SMART ones."""


def requestable_scopes() -> list[str]:
    """The scopes a developer may tick: what discovery lists for a SMART app."""
    return [*OPENID_SCOPES, *supported_smart_scopes()]


def app_portals(portals: dict[str, Portal]) -> list[Portal]:
    """The portals a health app may connect to: those whose people have a FHIR Patient."""
    return [portal for portal in portals.values() if portal.flow in SMART_FLOWS]


NEW_CREDENTIALS_QUIET_MINUTES = 15
"""After a new credentials link is mailed, further requests for the same app start nothing
for this long: the contact's mailbox cannot be flooded through the public form."""


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
    start_process(
        session,
        portal,
        workflow=WORKFLOW,
        workflow_id=row.workflow_id,
        payload=AppRegistrationStart(
            portal=portal.slug,
            application_id=row.id,
            review_sla_hours=policy.app_review_sla_hours,
            review_final_hours=policy.app_review_final_hours,
            credentials_link_hours=policy.app_credentials_link_hours,
        ),
        what="app registration",
        reference=reference,
        step=Step.CHECKING,
    )
    if accepted_with is not None:
        accepted_with(session, reference)
    session.commit()
    return reference


def request_new_credentials(
    session: Session, portals: dict[str, Portal], client_id: str, contact_email: str
) -> None:
    """A developer who lost a confidential client's secret: when the client_id belongs to a
    registered app whose contact address is the one typed, the contact gets a new single-use
    credentials link. The caller shows the same answer whatever matched, so the form tells a
    stranger nothing about which apps exist or who their contacts are."""
    application = session.scalar(
        select(AppRegistration)
        .join(OidcClient, OidcClient.id == AppRegistration.client_pk)
        .where(OidcClient.client_id == client_id.strip())
        .where(OidcClient.public.is_(False))
        .where(AppRegistration.status == Step.REGISTERED)
        .where(func.lower(AppRegistration.contact_email) == contact_email.strip().lower())
    )
    portal = portals.get(application.portal) if application is not None else None
    if application is None or portal is None:
        return
    add_event(
        session,
        actor="developer",
        action="app_registration.new_credentials_requested",
        portal=portal.slug,
        workflow_id=application.workflow_id,
        application=application.reference,
    )
    start_process(
        session,
        portal,
        workflow=CREDENTIALS_WORKFLOW,
        workflow_id=f"app-credentials/{application.reference}",
        payload=AppCredentialsStart(
            portal=portal.slug,
            application_id=application.id,
            application_workflow_id=application.workflow_id,
            credentials_link_hours=portal.policy.app_credentials_link_hours,
            quiet_minutes=NEW_CREDENTIALS_QUIET_MINUTES,
        ),
        what="new credentials for app",
        reference=application.reference,
        step="mailing",
        reuse_finished_id=True,
    )
    session.commit()


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
    claimed = claim_row(
        session,
        AppRegistration,
        application.id,
        AppRegistration.status == Step.IN_REVIEW,
        status=Step.APPROVED if approved else Step.DENIED,
        decided_by=reviewer,
        decision_reason=reason or None,
        decided_at=now,
        ended_at=None if approved else now,
    )
    if not claimed:
        session.rollback()
        return Decided.NOT_WAITING
    audit_and_signal(
        session,
        workflow_id=application.workflow_id,
        signal=Signal.REVIEW_DECISION,
        payload=ReviewDecision(decision=decision, reviewer=reviewer),
        actor=reviewer,
        action=f"app_registration.{'approved' if approved else 'denied'}",
        portal=application.portal,
        application=application.reference,
        reason=reason,
    )
    return Decided.DONE


# --- the developer's credentials link --------------------------------------------------------


@dataclass
class CredentialsLink:
    """What the credentials page may show; `secret` is set only in the answer that minted it."""

    state: LinkState
    app_name: str = ""
    client_id: str = ""
    confidential: bool = False
    replaces_secret: bool = False
    """The client already has a secret, which pressing the button ends."""
    secret: str | None = None


def _read(session: Session, raw: str) -> links.Link[AppRegistration]:
    """The credentials link's page is under no portal; an application without its client yet
    has no credentials to show."""
    link = links.read_link(session, None, raw, LinkPurpose.CREDENTIALS, AppRegistration)
    if link.row is not None and link.row.client_pk is None:
        return links.Link(LinkState.UNKNOWN)
    return link


def read_credentials_link(session: Session, raw: str) -> CredentialsLink:
    """What the link's page may say, read without changing anything."""
    return _page(session, _read(session, raw))


def _page(session: Session, link: links.Link[AppRegistration]) -> CredentialsLink:
    if link.state != LinkState.USABLE:
        return CredentialsLink(
            link.state,
            app_name=link.row.app_name if link.row else "",
            confidential=link.row is not None and link.row.client_type == ClientType.CONFIDENTIAL,
        )
    client = session.get(OidcClient, link.row.client_pk)
    return CredentialsLink(
        LinkState.USABLE,
        app_name=link.row.app_name,
        confidential=link.row.client_type == ClientType.CONFIDENTIAL,
        replaces_secret=client is not None and client.secret_hash is not None,
    )


def reveal_credentials(session: Session, raw: str, secret_key: bytes) -> CredentialsLink:
    """The page's button: the link is claimed once; a confidential client gets a new secret,
    stored hashed with `secret_key` (portal.server_keys.client_secret_key), returned here and
    nowhere else (no log, no history, no e-mail)."""
    link = _read(session, raw)
    if link.state != LinkState.USABLE:
        return _page(session, link)
    application = link.row
    if not claim_link(session, link.token.id):
        session.rollback()
        return read_credentials_link(session, raw)
    client = session.get(OidcClient, application.client_pk)
    if client is None:
        session.rollback()
        return CredentialsLink(LinkState.UNKNOWN)
    secret = None if client.public else rotate_client_secret(session, client.name, secret_key)
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
        LinkState.DONE_NOW,
        app_name=application.app_name,
        client_id=client.client_id,
        confidential=not client.public,
        secret=secret,
    )
