"""One proxy grant: consent (the invitee's acceptance, the adult subject's approval or a staff
review with its SLA), then the grant's life as durable timers: its end date, the child's
adolescent birthday and majority, or the adult subject's yearly renewal; `revoke` may end it
at any moment, from either side or from staff."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from temporalio import workflow

from processes.proxy_grant.vocabulary import (
    WORKFLOW,
    Audience,
    Decision,
    GrantAccepted,
    GrantRenewed,
    GrantRevoked,
    Mail,
    Origin,
    ProxyGrantOutcome,
    ProxyGrantStart,
    ProxyGrantStatus,
    ReviewDecision,
    Signal,
    Step,
    SubjectDecision,
)
from temporal.search_attributes import OVERDUE, PORTAL, STEP

with workflow.unsafe.imports_passed_through():
    from processes.proxy_grant.activities import (
        GrantMail,
        GrantSettling,
        ProxyGrantActivities,
    )
    from processes.proxy_grant.steps import add_months, birthday, on_or_after
    from temporal.retry_policies import DB_RETRY, MAIL_RETRY

RENEWAL_REMINDER_DAYS = (30, 7)


@workflow.defn(name=WORKFLOW)
class ProxyGrantWorkflow:
    """Started by the outbox with its row. Every decision is claimed in the database by the
    service before its signal is sent, and every timer's change is a conditional update, so a
    click racing a birthday or a deadline wins or loses exactly once."""

    @workflow.init
    def __init__(self, start: ProxyGrantStart) -> None:
        self.start = start
        self.step = Step.INVITED
        self.overdue = False
        self.accepted = False
        self.subject_decision: Decision | None = None
        self.review: ReviewDecision | None = None
        self.revoked: GrantRevoked | None = None
        self.renewed = 0

    @workflow.run
    async def run(self, start: ProxyGrantStart) -> ProxyGrantOutcome:
        workflow.upsert_search_attributes([PORTAL.value_set(start.portal)])
        consented = await self.consent()
        if consented is not None:
            return consented
        if self.revoked is not None:
            return self.finish(self.revoked.status)
        status = await self.settle(Step.ACTIVE, [Step.ACTIVE])
        if status != Step.ACTIVE:
            return self.finish(status)
        self.enter(Step.ACTIVE, "Grant in force")
        await self.mail(Mail.ACTIVE, Audience.PROXY)
        await self.mail(Mail.ACTIVE, Audience.SUBJECT)
        return await self.in_force()

    async def consent(self) -> ProxyGrantOutcome | None:
        """Waits for the consent the grant's origin needs; an outcome if the grant never starts."""
        start = self.start
        if start.origin == Origin.INVITATION:
            self.enter(Step.INVITED, "Waiting for the invited person to accept")
            await self.mail(Mail.INVITATION, Audience.PROXY, start.link_hours)
            if not await self.wait_for(lambda: self.accepted, start.link_hours, "invitation"):
                return await self.close(Step.EXPIRED, [Step.INVITED])
            return self.revoked_outcome()
        if not start.review:
            self.enter(Step.AWAITING_SUBJECT, "Waiting for the person's own approval")
            await self.mail(Mail.CONSENT, Audience.SUBJECT, start.link_hours)
            if not await self.wait_for(
                lambda: self.subject_decision is not None, start.link_hours, "approval link"
            ):
                return await self.close(Step.EXPIRED, [Step.AWAITING_SUBJECT], Mail.ENDED)
            if self.revoked is not None:
                return self.revoked_outcome()
            if self.subject_decision == Decision.DECLINE:
                await self.mail(Mail.DECLINED, Audience.PROXY)
                return self.finish(Step.DECLINED)
            return None
        self.enter(Step.IN_REVIEW, "Waiting for staff review")
        decided = await self.wait_for(
            lambda: self.review is not None, start.review_sla_hours, "review SLA"
        )
        if not decided and self.revoked is None:
            self.overdue = True
            workflow.upsert_search_attributes([OVERDUE.value_set(True)])
            workflow.set_current_details("Waiting for staff review (overdue: reviewers e-mailed)")
            await self.settle(Step.IN_REVIEW, [Step.IN_REVIEW], overdue=True)
            await self.mail(Mail.REVIEW_OVERDUE, Audience.REVIEWERS)
            remaining = max(start.review_final_hours - start.review_sla_hours, 0)
            decided = await self.wait_for(
                lambda: self.review is not None, remaining, "final review deadline"
            )
        if not decided:
            return await self.close(Step.EXPIRED, [Step.IN_REVIEW], Mail.ENDED)
        if self.revoked is not None:
            return self.revoked_outcome()
        if self.review.decision == Decision.DECLINE:
            await self.mail(Mail.DENIED, Audience.PROXY)
            return self.finish(Step.DENIED)
        return None

    async def in_force(self) -> ProxyGrantOutcome:
        """The grant's timers, earliest first, until one of them or a revoke ends it."""
        start = self.start
        renew_due = add_months(workflow.now(), start.renewal_months)
        renews = start.adult_subject or not start.birth_date
        if renews:
            await self.settle(self.step, [self.step], renew_by=renew_due)
        while True:
            now = workflow.now()
            events: list[tuple[datetime, str]] = []
            if start.ends_on:
                events.append((on_or_after(datetime.fromisoformat(start.ends_on).date()), "end"))
            if not renews:
                adolescent = birthday(start.birth_date, start.adolescent_age)
                if start.age_bound and self.step == Step.ACTIVE and adolescent is not None:
                    events.append((adolescent, "adolescent"))
                majority = birthday(start.birth_date, start.majority_age)
                if majority is not None:
                    events.append((majority, "majority"))
            else:
                for days in RENEWAL_REMINDER_DAYS:
                    reminder = renew_due - timedelta(days=days)
                    if reminder > now:
                        events.append((reminder, f"reminder/{days}"))
                events.append((renew_due, "renewal"))
            at, event = min(events)
            seen = self.renewed
            if at > now:
                await self.wait_for(lambda seen=seen: self.renewed != seen, at - now, event)
            if self.revoked is not None:
                await self.mail(Mail.ENDED, Audience.PROXY)
                await self.mail(Mail.ENDED, Audience.SUBJECT)
                return self.finish(self.revoked.status)
            if self.renewed != seen:
                renew_due = add_months(workflow.now(), start.renewal_months)
                await self.settle(self.step, [self.step], renew_by=renew_due)
                continue
            if event == "adolescent":
                limited = await self.settle(Step.LIMITED, [Step.ACTIVE])
                if limited != Step.LIMITED:
                    return self.finish(limited)
                self.enter(Step.LIMITED, "Limited at the child's adolescent birthday")
                await self.mail(Mail.LIMITED, Audience.PROXY)
                await self.mail(Mail.LIMITED, Audience.SUBJECT)
            elif event == "majority":
                outcome = await self.close(Step.MAJORITY, [Step.ACTIVE, Step.LIMITED])
                if outcome.status == Step.MAJORITY:
                    await self.mail(Mail.MAJORITY, Audience.PROXY, key_suffix="ended")
                    await self.mail(Mail.REGISTER_INVITE, Audience.SUBJECT)
                return outcome
            elif event.startswith("reminder/"):
                await self.mail(
                    Mail.RENEWAL_REMINDER,
                    Audience.SUBJECT,
                    key_suffix=f"{renew_due.date().isoformat()}/{event}",
                )
            elif event == "renewal":
                return await self.close(Step.LAPSED, [Step.ACTIVE, Step.LIMITED], Mail.ENDED)
            else:
                return await self.close(Step.ENDED, [Step.ACTIVE, Step.LIMITED], Mail.ENDED)

    async def wait_for(self, done, hours_or_delta, summary: str) -> bool:
        """True if `done` (or a revoke) came before the timer."""
        timeout = (
            hours_or_delta
            if isinstance(hours_or_delta, timedelta)
            else timedelta(hours=hours_or_delta)
        )
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: done() or self.revoked is not None,
                timeout=timeout,
                timeout_summary=summary,
            )
        return done() or self.revoked is not None

    async def settle(
        self,
        status: Step,
        sources: list[Step],
        overdue: bool = False,
        renew_by: datetime | None = None,
    ) -> Step:
        settled = await workflow.execute_activity_method(
            ProxyGrantActivities.settle_grant,
            GrantSettling(
                grant_id=self.start.grant_id,
                workflow_id=workflow.info().workflow_id,
                status=status,
                sources=sources,
                overdue=overdue,
                renew_by=renew_by.isoformat() if renew_by else "",
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=DB_RETRY,
            summary=f"grant: {status}",
        )
        return settled.status

    async def close(
        self, status: Step, sources: list[Step], notice: Mail | None = None
    ) -> ProxyGrantOutcome:
        """A timer's end, unless a click or a revoke claimed the grant first."""
        if self.revoked is not None:
            return self.finish(self.revoked.status)
        settled = await self.settle(status, sources)
        if settled == status and notice is not None:
            await self.mail(notice, Audience.PROXY, key_suffix=status)
            await self.mail(notice, Audience.SUBJECT, key_suffix=status)
        return self.finish(settled)

    async def mail(
        self, kind: Mail, audience: Audience, lifetime_hours: int = 0, key_suffix: str = ""
    ) -> None:
        key = f"{workflow.info().workflow_id}/{workflow.info().run_id}/{kind}/{audience}"
        await workflow.execute_activity_method(
            ProxyGrantActivities.send_grant_mail,
            GrantMail(
                grant_id=self.start.grant_id,
                workflow_id=workflow.info().workflow_id,
                kind=kind,
                audience=audience,
                send_key=f"{key}/{key_suffix}" if key_suffix else key,
                lifetime_hours=lifetime_hours,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=MAIL_RETRY,
            summary=f"e-mail {kind} to {audience}",
        )

    def revoked_outcome(self) -> ProxyGrantOutcome | None:
        return None if self.revoked is None else self.finish(self.revoked.status)

    def finish(self, status: Step) -> ProxyGrantOutcome:
        self.enter(status, f"Grant {status}")
        return ProxyGrantOutcome(status=status)

    @workflow.signal(name=Signal.ACCEPT)
    def accept(self, accepted: GrantAccepted) -> None:
        """Delivered at least once by the outbox relay; a repeat changes nothing."""
        self.accepted = True

    @workflow.signal(name=Signal.SUBJECT_DECISION)
    def decide_as_subject(self, decision: SubjectDecision) -> None:
        if self.subject_decision is None:
            self.subject_decision = decision.decision

    @workflow.signal(name=Signal.REVIEW_DECISION)
    def review_decision(self, decision: ReviewDecision) -> None:
        if self.review is None:
            self.review = decision

    @workflow.signal(name=Signal.REVOKE)
    def revoke(self, revoked: GrantRevoked) -> None:
        if self.revoked is None:
            self.revoked = revoked

    @workflow.signal(name=Signal.RENEW)
    def renew(self, renewed: GrantRenewed) -> None:
        self.renewed += 1

    @workflow.query
    def get_status(self) -> ProxyGrantStatus:
        return ProxyGrantStatus(step=self.step, overdue=self.overdue)

    def enter(self, step: Step, details: str) -> None:
        self.step = step
        workflow.set_current_details(details)
        workflow.upsert_search_attributes([STEP.value_set(step)])
