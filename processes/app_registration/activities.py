"""App registration activities: the automatic checks, the row's changes (each a conditional
update with its audit line), making the approved client and the e-mails. The client's secret
never leaves the database as anything but a hash, and the credentials link is minted and
mailed here, so neither enters workflow history."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import asdict, dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

import requests
from temporalio import activity
from temporalio.exceptions import ApplicationError

from mail.once import LinkMessage, MailingActivities, send_once
from portal.audit import add_event
from portal.models import AppRegistration, utcnow
from portal.oidc import add_client
from portal.tokens import revoke_links
from processes.app_registration.vocabulary import (
    FINAL,
    Check,
    CheckResult,
    ClientType,
    LinkPurpose,
    Mail,
    Step,
)
from processes.transitions import claim_row

CREDENTIALS_PATH = "developers/apps/credentials"
"""Where the credentials link opens, under the public base URL."""

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
"""Where a native or development app may listen on plain http (RFC 8252 7.3)."""

PRIVACY_TIMEOUT_SECONDS = 5


def redirect_uri_problem(uri: str) -> str | None:
    """Why a redirect URI is not acceptable for a third-party app, or None: https, or http on
    the loopback interface, absolute, with no fragment, wildcard or user name."""
    if len(uri) > 500:
        return "longer than 500 characters"
    if "#" in uri or "*" in uri:
        return "has a fragment or a wildcard"
    try:
        parts = urlsplit(uri)
        host = parts.hostname
        parts.port  # noqa: B018 (a bad port raises here)
    except ValueError:
        return "not a valid URL"
    if "@" in parts.netloc or not host:
        return "not an absolute URL with a host"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and host in LOOPBACK_HOSTS:
        return None
    return "not https (plain http is allowed only on 127.0.0.1, [::1] or localhost)"


def private_address_problem(url: str) -> str | None:
    """Why fetching this URL would reach inside the organisation's network, or None: the
    privacy check is a GET from the worker to an address a stranger typed, so a name that
    resolves to a loopback, private, link-local or reserved address is refused, not fetched.
    A name that does not resolve raises OSError (the check is retried as unreachable)."""
    host = urlsplit(url).hostname or ""
    port = urlsplit(url).port or (443 if url.startswith("https") else 80)
    for *_, sockaddr in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP):
        address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not address.is_global or address.is_multicast:
            return f"resolves to a non-public address ({address})"
    return None


@dataclass
class AppCheckRequest:
    application_id: int
    check: Check


@dataclass
class AppSettling:
    """Move the application to `status` if it is still at one of `sources`; `checks`,
    `overdue` and the review's clock (ISO, '' for no change) are written with it."""

    application_id: int
    workflow_id: str
    status: Step
    sources: list[Step] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    overdue: bool = False
    due_at: str = ""
    final_at: str = ""


@dataclass
class AppState:
    status: Step


@dataclass
class AppClientRequest:
    application_id: int
    workflow_id: str


@dataclass
class AppClientMade:
    """Only the client's row id: its client_id is shown on the credentials page, its secret
    is minted when that page's button is pressed."""

    client_pk: int


@dataclass
class AppMail:
    application_id: int
    workflow_id: str
    kind: Mail
    send_key: str
    lifetime_hours: int = 0


@dataclass
class AppMailed:
    token_id: int = 0


def _gone() -> ApplicationError:
    return ApplicationError("application no longer exists", non_retryable=True, type="Gone")


class AppRegistrationActivities(MailingActivities):
    @activity.defn
    def run_check(self, request: AppCheckRequest) -> CheckResult:
        """One automatic check. A bad redirect URI cannot get better, so it is a result at
        once; an unreachable privacy policy raises, so the retry policy tries it again."""
        with self.session_factory() as session:
            application = session.get(AppRegistration, request.application_id)
            if application is None:
                raise _gone()
            uris, privacy_url = list(application.redirect_uris), application.privacy_url
        if request.check == Check.REDIRECT_URIS:
            problems = [f"{uri}: {p}" for uri in uris if (p := redirect_uri_problem(uri))]
            return CheckResult(request.check, passed=not problems, detail="; ".join(problems))
        try:
            if not self.mailer.settings.app_check_private_urls and (
                problem := private_address_problem(privacy_url)
            ):
                return CheckResult(request.check, passed=False, detail=problem)
            answer = requests.get(
                privacy_url,
                timeout=PRIVACY_TIMEOUT_SECONDS,
                allow_redirects=False,
                stream=True,
                headers={"User-Agent": "Acceso app review"},
            )
            answer.close()
        except (requests.RequestException, OSError, ValueError) as error:
            raise ApplicationError(
                f"unreachable ({type(error).__name__})", type="Unreachable"
            ) from None
        if not 200 <= answer.status_code < 400:
            raise ApplicationError(f"answered HTTP {answer.status_code}", type="Unreachable")
        return CheckResult(request.check, passed=True, detail=f"HTTP {answer.status_code}")

    @activity.defn
    def settle_application(self, request: AppSettling) -> AppState:
        """The process's change, unless a reviewer claimed the application first: the answer
        is what the database says now."""
        with self.session_factory() as session:
            now = utcnow()
            values: dict = {"status": request.status}
            if request.checks:
                values["checks"] = [{**asdict(c), "check": str(c.check)} for c in request.checks]
            if request.overdue:
                values["overdue"] = True
            if request.due_at:
                values["review_due_at"] = datetime.fromisoformat(request.due_at)
            if request.final_at:
                values["review_final_at"] = datetime.fromisoformat(request.final_at)
            if request.status in FINAL:
                values["ended_at"] = now
            claimed = claim_row(
                session,
                AppRegistration,
                request.application_id,
                AppRegistration.status.in_(list(request.sources)),
                **values,
            )
            application = session.get(AppRegistration, request.application_id)
            if application is None:
                raise _gone()
            if claimed:
                action = (
                    "app_registration.review_overdue"
                    if request.overdue
                    else f"app_registration.{request.status}"
                )
                detail = {}
                if request.checks:
                    detail["failed"] = ", ".join(c.check for c in request.checks if not c.passed)
                add_event(
                    session,
                    actor="system",
                    action=action,
                    portal=application.portal,
                    workflow_id=request.workflow_id,
                    application=application.reference,
                    **detail,
                )
            if claimed and request.status == Step.LAPSED:
                revoke_links(session, request.workflow_id, now=now)
            session.commit()
            return AppState(status=Step(application.status))

    @activity.defn
    def create_client(self, request: AppClientRequest) -> AppClientMade:
        """The approved application's client, in one transaction with its link to the row and
        its audit line; a retry finds the client already made. A confidential client has no
        secret yet: the credentials page mints the one the developer sees."""
        with self.session_factory() as session:
            application = session.get(AppRegistration, request.application_id, with_for_update=True)
            if application is None:
                raise _gone()
            if application.client_pk is not None:
                return AppClientMade(client_pk=application.client_pk)
            if application.status != Step.APPROVED:
                raise ApplicationError(
                    f"application is {application.status}, not approved",
                    non_retryable=True,
                    type="NotApproved",
                )
            made = add_client(
                session,
                f"{application.app_name} ({application.reference})",
                portal=application.portal,
                redirect_uris=list(application.redirect_uris),
                public=application.client_type == ClientType.PUBLIC,
                approved_scopes=list(application.scopes),
            )
            application.client_pk = made.client.id
            add_event(
                session,
                actor="system",
                action="app_registration.client_created",
                portal=application.portal,
                workflow_id=request.workflow_id,
                application=application.reference,
                client_id=made.client.client_id,
            )
            session.commit()
            return AppClientMade(client_pk=made.client.id)

    def _context(self, application: AppRegistration, kind: Mail) -> dict:
        portal = self.portals.get(application.portal)
        return {
            "kind": str(kind),
            "application": application,
            "portal_info": portal,
            "base_url": self.mailer.settings.public_base_url.rstrip("/"),
            "reason": application.decision_reason or "",
        }

    @activity.defn
    def send_app_mail(self, request: AppMail) -> AppMailed:
        """One of the application's e-mails, sent once; the credentials e-mail's link is minted
        here and a repeat carries the same one."""
        with self.session_factory() as session:

            def compose() -> LinkMessage | None:
                application = session.get(AppRegistration, request.application_id)
                if application is None:
                    raise _gone()
                context = self._context(application, request.kind)
                purpose = None
                if request.kind in (Mail.CREDENTIALS, Mail.NEW_CREDENTIALS):
                    if request.kind == Mail.NEW_CREDENTIALS and application.client_pk is None:
                        return None
                    purpose = LinkPurpose.CREDENTIALS
                    to, locale = application.contact_email, application.locale
                    context["hours"] = str(request.lifetime_hours)
                elif request.kind == Mail.REVIEW_OVERDUE:
                    portal = self.portals.get(application.portal)
                    to = (portal.escalation_email or portal.support_email) if portal else ""
                    locale = "es"
                else:
                    to, locale = application.contact_email, application.locale
                if not to:
                    return None
                return LinkMessage(
                    purpose=purpose,
                    portal=application.portal,
                    workflow_id=request.workflow_id,
                    lifetime_hours=request.lifetime_hours,
                    path=CREDENTIALS_PATH,
                    to=to,
                    template="app_registration",
                    locale=locale,
                    context=context,
                    detail={"application": application.reference, "kind": str(request.kind)},
                )

            return AppMailed(
                token_id=send_once(session, self.mailer, request.send_key, compose).token_id
            )
