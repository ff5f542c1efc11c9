"""Proxy grant activities: links are minted and mailed here (no raw token enters history), and
every change a timer makes is a conditional update with its audit line."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from mail.once import LinkMessage, MailingActivities, send_once
from portal.audit import add_event
from portal.config import Portal
from portal.models import ClinicalRecord, ProxyGrant, User, utcnow
from portal.tokens import revoke_links
from processes.logout_delivery.service import sign_out_everywhere
from processes.proxy_grant.vocabulary import IN_FORCE, Audience, LinkPurpose, Mail, Step
from processes.transitions import claim_row

LINKS = {
    Mail.INVITATION: (LinkPurpose.ACCEPT, "proxy/accept"),
    Mail.CONSENT: (LinkPurpose.CONSENT, "proxy/consent"),
}
"""The e-mails that carry a link: its purpose and its path under the portal."""

TO_THE_RECORD = (Mail.LIMITED, Mail.MAJORITY, Mail.REGISTER_INVITE)
"""What reaches a subject without an account at the record's address: a child growing up."""


@dataclass
class GrantSettling:
    """Move the grant to `status` if it is still at one of `sources`; `overdue` and `renew_by`
    (ISO, '' for no change) are written with it."""

    grant_id: int
    workflow_id: str
    status: Step
    sources: list[Step] = field(default_factory=list)
    overdue: bool = False
    renew_by: str = ""


@dataclass
class GrantState:
    status: Step


@dataclass
class GrantMail:
    grant_id: int
    workflow_id: str
    kind: Mail
    audience: Audience
    send_key: str
    lifetime_hours: int = 0


@dataclass
class GrantMailed:
    sent: bool
    token_id: int = 0


def end_proxy_sign_ins(session: Session, grant: ProxyGrant) -> None:
    """The proxy's sign-ins made under this grant carry `acting_for`, and so do the health apps
    given the person's record under it (their offline access included): they end and each of
    their clients is told (back-channel logout); the proxy's own sign-ins go on. Only grants not
    yet revoked are touched, so a retried activity ends nothing twice. The caller commits."""
    if grant.proxy_user_id is not None:
        sign_out_everywhere(session, grant.proxy_user_id, acting_for=grant.reference)


def subject_name(session: Session, grant: ProxyGrant) -> str:
    if grant.subject_user_id is not None:
        return session.get(User, grant.subject_user_id).display_name
    record = session.get(ClinicalRecord, grant.subject_record_id)
    return record.full_name if record else ""


class ProxyGrantActivities(MailingActivities):
    @activity.defn
    def settle_grant(self, request: GrantSettling) -> GrantState:
        """A timer's change, unless a click or a revoke claimed the grant first: the answer is
        what the database says now. Ending a grant ends the proxy's sign-ins in the same commit;
        limiting it ends the health apps given the child's record under it."""
        with self.session_factory() as session:
            now = utcnow()
            values: dict = {"status": request.status}
            if request.overdue:
                values["overdue"] = True
            if request.renew_by:
                values["renew_by"] = datetime.fromisoformat(request.renew_by)
            final = request.status not in IN_FORCE and request.status != Step.IN_REVIEW
            if final:
                values.update(ended_at=now, ended_by="system")
            claimed = claim_row(
                session,
                ProxyGrant,
                request.grant_id,
                ProxyGrant.status.in_(list(request.sources)),
                **values,
            )
            grant = session.get(ProxyGrant, request.grant_id)
            if grant is None:
                raise ApplicationError("grant no longer exists", non_retryable=True, type="Gone")
            changed = claimed and request.status not in request.sources
            if changed:
                if final:
                    revoke_links(session, request.workflow_id, now=now)
                    end_proxy_sign_ins(session, grant)
                elif request.status == Step.LIMITED and grant.proxy_user_id is not None:
                    sign_out_everywhere(
                        session,
                        grant.proxy_user_id,
                        acting_for=grant.reference,
                        health_apps_only=True,
                    )
                add_event(
                    session,
                    actor="system",
                    action=f"proxy.{request.status}",
                    portal=grant.portal,
                    workflow_id=request.workflow_id,
                    user_id=grant.subject_user_id,
                    grant=grant.reference,
                    proxy=f"user:{grant.proxy_user_id}" if grant.proxy_user_id else "",
                )
            elif claimed and request.overdue:
                add_event(
                    session,
                    actor="system",
                    action="proxy.review_overdue",
                    portal=grant.portal,
                    workflow_id=request.workflow_id,
                    grant=grant.reference,
                )
            session.commit()
            return GrantState(status=Step(grant.status))

    def _recipient(
        self, session: Session, grant: ProxyGrant, request: GrantMail, portal: Portal | None
    ) -> tuple[str, str, int | None]:
        """Address, language and account of the e-mail's audience; an empty address: no e-mail."""
        if request.audience == Audience.REVIEWERS:
            address = portal.escalation_email or portal.support_email if portal else ""
            return address, "es", None
        if request.audience == Audience.PROXY:
            if grant.proxy_user_id is not None:
                user = session.get(User, grant.proxy_user_id)
                return user.email, user.locale, user.id
            return grant.invite_email, "es", None
        if grant.subject_user_id is not None:
            user = session.get(User, grant.subject_user_id)
            return user.email, user.locale, user.id
        record = session.get(ClinicalRecord, grant.subject_record_id)
        if record is None or request.kind not in TO_THE_RECORD:
            return "", "es", None
        return record.email, "es", None

    @activity.defn
    def send_grant_mail(self, request: GrantMail) -> GrantMailed:
        """One of the grant's e-mails, sent once; a repeat carries the same link."""
        with self.session_factory() as session:

            def compose() -> LinkMessage | None:
                grant = session.get(ProxyGrant, request.grant_id)
                if grant is None:
                    raise ApplicationError(
                        "grant no longer exists", non_retryable=True, type="Gone"
                    )
                portal = self.portals.get(grant.portal)
                to, locale, user_id = self._recipient(session, grant, request, portal)
                if not to:
                    return None
                proxy = session.get(User, grant.proxy_user_id) if grant.proxy_user_id else None
                base_url = self.mailer.settings.public_base_url.rstrip("/")
                purpose, path = LINKS.get(request.kind, (None, ""))
                return LinkMessage(
                    purpose=purpose,
                    portal=grant.portal,
                    workflow_id=request.workflow_id,
                    lifetime_hours=request.lifetime_hours,
                    path=f"{grant.portal}/{path}",
                    to=to,
                    template="proxy_notice",
                    locale=locale,
                    context={
                        "kind": str(request.kind),
                        "audience": str(request.audience),
                        "portal": grant.portal,
                        "portal_info": portal,
                        "grant": grant,
                        "subject_name": subject_name(session, grant),
                        "proxy_name": proxy.display_name if proxy else grant.invite_email,
                        "hours": str(request.lifetime_hours),
                        "reason": (
                            grant.end_note if request.kind == Mail.ENDED else grant.decision_reason
                        )
                        or "",
                        "renew_by": grant.renew_by.date().isoformat() if grant.renew_by else "",
                        "register_url": f"{base_url}/{grant.portal}/register",
                    },
                    user_id=user_id,
                    detail={"grant": grant.reference, "kind": str(request.kind)},
                )

            sent = send_once(session, self.mailer, request.send_key, compose)
            return GrantMailed(sent=sent.now, token_id=sent.token_id)
