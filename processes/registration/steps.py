"""The registration's steps after the first form, each a small class holding its own state and
its own wait (as samples-python's `UpdatableTimer` does): the identity check with its strikes and
the help desk, the e-mail confirmation with its resends, and the staff review with its SLA. The
workflow runs them in the seed's order and routes each message to the step it concerns."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, Protocol

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from portal.config import Policy
from processes.registration.vocabulary import (
    CaseOutcome,
    CaseResolution,
    IdentityCheck,
    IdentityRefusal,
    IdentityResult,
    RegistrationStart,
    ReviewDecision,
    Step,
    TokenPurpose,
)
from temporal.search_attributes import OVERDUE

with workflow.unsafe.imports_passed_through():
    from mail.activities import LinkEmail, MailActivities
    from processes.registration.activities import (
        CaseResolutionRequest,
        ConfirmationClosing,
        IdentityAttempt,
        RecordActivities,
        RegistrationActivities,
        SupportCaseRequest,
    )
    from temporal.retry_policies import DB_RETRY, MAIL_RETRY


class Registration(Protocol):
    """What a step needs from its workflow: where it is, its deadline, and its outside world."""

    start: RegistrationStart
    policy: Policy
    user_id: int | None
    step: Step
    lean: bool

    def at(self, *steps: Step) -> bool: ...

    def note(self, event: str) -> None: ...

    def restart_deadline(self) -> None: ...

    async def enter(self, step: Step) -> bool: ...

    async def record_step(self, step: Step) -> None: ...

    async def wait_until_deadline(self, condition: Callable[[], bool]) -> bool: ...

    async def notify(
        self, template: str, key: str, audience: str = "applicant", **context: str
    ) -> None: ...

    async def audit(self, action: str, actor: str = "system", **detail: str) -> None: ...

    async def mail(self, activity: Callable, request: Any, summary: str) -> Any: ...


class IdentityStep:
    """Step 1 (member): tries against the member record (updates), strikes, and the help desk.

    At the strike limit a try opens a help-desk case; the help desk is e-mailed and the step
    waits for `resolve_case`. That wait has no applicant deadline: the next move is the help
    desk's, and an open case stays on its list until resolved. `allow_retry` clears the strikes,
    e-mails the member a link back to this step and restarts the deadline; `close` ends it.
    """

    def __init__(self, registration: Registration) -> None:
        self.registration = registration
        self.strikes = 0
        self.verified = False
        self.escalated = False
        self.escalations = 0
        self.case_id = 0
        self.checking = False
        self.resolution: CaseResolution | None = None

    @property
    def tries_left(self) -> int:
        return max(self.registration.policy.identity_strike_limit - self.strikes, 0)

    async def run(self) -> bool:
        """True once a try matched; False when the deadline passed or the help desk closed it."""
        registration = self.registration
        await registration.enter(Step.IDENTITY)
        while True:
            if not await registration.wait_until_deadline(lambda: self.verified or self.escalated):
                return False
            if self.verified:
                return True
            await registration.enter(Step.ESCALATED)
            await registration.notify(
                "identity_escalated",
                key=f"escalated/{self.escalations}",
                audience="helpdesk",
                case_id=str(self.case_id),
            )
            await workflow.wait_condition(lambda: self.resolution is not None)
            if not await self.apply_resolution():
                return False
            await registration.enter(Step.IDENTITY)

    async def apply_resolution(self) -> bool:
        """The case, the strikes and the member's e-mail change in one activity; True when the
        help desk allowed another set of tries."""
        registration, resolution = self.registration, self.resolution
        registration.note(f"case {resolution.outcome} by {resolution.agent}")
        await workflow.execute_activity_method(
            RecordActivities.resolve_support_case,
            CaseResolutionRequest(
                portal=registration.start.portal,
                workflow_id=workflow.info().workflow_id,
                round=self.escalations,
                outcome=resolution.outcome,
                agent=resolution.agent,
                note=resolution.note,
                link_hours=registration.policy.email_link_hours,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=MAIL_RETRY,
            summary=f"help desk: {resolution.outcome}",
        )
        if resolution.outcome != CaseOutcome.ALLOW_RETRY:
            return False
        self.resolution = None
        self.strikes = 0
        self.escalated = False
        registration.restart_deadline()
        return True

    async def check(self, attempt: IdentityCheck) -> IdentityResult:
        """One try, answered at once. Strikes are the larger of this registration's failures in
        a row and the client ID's (counted in the database across registrations); a client ID
        already at the limit goes straight to the help desk."""
        registration = self.registration
        self.checking = True
        try:
            # A try sent just after `allow_retry` waits for the identity step to reopen.
            await workflow.wait_condition(
                lambda: not self.escalated and registration.at(Step.STARTED, Step.IDENTITY)
            )
            match = await workflow.execute_activity_method(
                RecordActivities.match_member,
                IdentityAttempt(
                    portal=registration.start.portal,
                    workflow_id=workflow.info().workflow_id,
                    first_name=attempt.first_name,
                    last_name=attempt.last_name,
                    suffix=attempt.suffix,
                    date_of_birth=attempt.date_of_birth,
                    client_id=attempt.client_id,
                    strike_limit=registration.policy.identity_strike_limit,
                ),
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=DB_RETRY,
                summary="identity check against the member record",
            )
            if match.matched:
                self.verified = True
                self.strikes = 0
                registration.note("identity matched")
            else:
                self.strikes = max(self.strikes + 1, match.strikes)
                registration.note(f"identity failed (strike {self.strikes})")
                limit = registration.policy.identity_strike_limit
                if match.blocked or self.strikes >= limit:
                    self.strikes = max(self.strikes, limit)
                    await self.escalate()
        finally:
            self.checking = False
        return IdentityResult(
            matched=match.matched, tries_left=self.tries_left, escalated=self.escalated
        )

    def validate(self) -> None:
        """Refuses only what is finished or already running; the kinds are IdentityRefusal."""
        registration = self.registration
        retry_allowed = (
            self.resolution is not None and self.resolution.outcome == CaseOutcome.ALLOW_RETRY
        )
        if self.escalated and not retry_allowed:
            raise ApplicationError(
                "identity check escalated to the help desk", type=IdentityRefusal.ESCALATED
            )
        if (
            Step.IDENTITY not in registration.start.steps
            or self.verified
            or (not registration.at(Step.STARTED, Step.IDENTITY) and not retry_allowed)
        ):
            raise ApplicationError(
                f"identity cannot be checked at step {registration.step}",
                type=IdentityRefusal.STEP,
            )
        if self.checking:
            raise ApplicationError("another identity check is running", type=IdentityRefusal.BUSY)

    def resolve(self, resolution: CaseResolution) -> None:
        """First outcome for an open case wins; anything else is logged and ignored."""
        if resolution.outcome not in tuple(CaseOutcome):
            workflow.logger.warning("resolve_case: unknown outcome %r ignored", resolution.outcome)
            return
        if self.escalated and self.resolution is None:
            self.resolution = resolution
        else:
            workflow.logger.info("resolve_case ignored at step %s", self.registration.step)

    async def escalate(self) -> None:
        """Opens the case first, so the help desk's e-mail names it; `checking` holds off
        other tries meanwhile."""
        self.escalations += 1
        opened = await workflow.execute_activity_method(
            RecordActivities.open_support_case,
            SupportCaseRequest(
                portal=self.registration.start.portal,
                workflow_id=workflow.info().workflow_id,
                reference=self.registration.start.reference,
                round=self.escalations,
            ),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=DB_RETRY,
            summary="open help-desk case",
        )
        self.case_id = opened.case_id
        self.escalated = True


class ConfirmationStep:
    """Step 3: the e-mailed link, which expires with the deadline and can be sent again."""

    def __init__(self, registration: Registration) -> None:
        self.registration = registration
        self.links_sent = 0
        self.resend_requested = False
        self.confirmed = False

    async def run(self) -> bool:
        wrote_row = await self.registration.enter(Step.CONFIRM_EMAIL)
        await self.send_link(local=not wrote_row)
        while True:
            if not await self.registration.wait_until_deadline(
                lambda: self.confirmed or self.resend_requested
            ):
                return await self.close()
            if self.confirmed:
                return True
            self.resend_requested = False
            if self.links_sent <= self.registration.policy.max_confirmation_resends:
                await self.send_link()

    def confirm(self) -> None:
        """Delivered at least once by the outbox relay; a repeat changes nothing."""
        if not self.confirmed:
            self.confirmed = True
            self.registration.note("email confirmed")

    def resend(self) -> None:
        if self.registration.at(Step.CONFIRM_EMAIL) and not self.confirmed:
            self.resend_requested = True

    async def send_link(self, local: bool = True) -> None:
        """A local activity's e-mail goes out before its workflow task is recorded: had that
        task also written the step on the row, a retry of the task (Temporal down meanwhile)
        would write it again after the applicant's click had moved it on. Such a first link
        goes out as a regular activity."""
        registration = self.registration
        self.links_sent += 1
        link = LinkEmail(
            template="confirm_email",
            purpose=TokenPurpose.CONFIRM_EMAIL,
            path="confirm",
            portal=registration.start.portal,
            workflow_id=workflow.info().workflow_id,
            user_id=registration.user_id,
            lifetime_hours=registration.policy.email_link_hours,
            send_key=f"{workflow.info().workflow_id}/confirm/{self.links_sent}",
        )
        summary = f"e-mail confirmation link #{self.links_sent}"
        if registration.lean and local:
            await registration.mail(MailActivities.send_link, link, summary)
            return
        await workflow.execute_activity_method(
            MailActivities.send_link,
            link,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=MAIL_RETRY,
            summary=summary,
        )

    async def close(self) -> bool:
        """At the deadline the database settles a click racing the timer: its links are revoked
        unless one was already redeemed, in which case the registration goes on."""
        closed = await workflow.execute_local_activity_method(
            RegistrationActivities.close_confirmation,
            ConfirmationClosing(workflow_id=workflow.info().workflow_id),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=DB_RETRY,
            summary="close the confirmation links",
        )
        if closed.confirmed:
            self.confirm()
        return closed.confirmed


class ReviewStep:
    """Step 4 (provider): staff review with an SLA timer, the reviewers e-mailed when it lapses,
    and a final deadline; the first decision wins."""

    def __init__(self, registration: Registration) -> None:
        self.registration = registration
        self.decision: ReviewDecision | None = None
        self.overdue = False

    async def run(self) -> ReviewDecision | None:
        """The decision, or None when the final deadline passed without one."""
        registration, policy = self.registration, self.registration.policy
        await registration.enter(Step.REVIEW)
        sla = timedelta(hours=policy.approval_sla_hours)
        final = timedelta(hours=policy.approval_final_hours)
        # The console reads the SLA clock from this event, so its pages never ask Temporal.
        await registration.audit(
            "registration.review_started",
            due_at=(workflow.now() + sla).isoformat(),
            final_at=(workflow.now() + final).isoformat(),
        )
        if await self.wait(sla, f"approval SLA ({policy.approval_sla_hours} h)"):
            return self.decision
        await self.lapse_sla()
        if not await self.wait(
            max(final - sla, timedelta(0)),
            f"final approval deadline ({policy.approval_final_hours} h)",
        ):
            return None
        return self.decision

    async def wait(self, timeout: timedelta, summary: str) -> bool:
        try:
            await workflow.wait_condition(
                lambda: self.decision is not None, timeout=timeout, timeout_summary=summary
            )
        except TimeoutError:
            return False
        return True

    async def lapse_sla(self) -> None:
        registration = self.registration
        self.overdue = True
        workflow.upsert_search_attributes([OVERDUE.value_set(True)])
        registration.note("review overdue")
        workflow.set_current_details("Step: review (overdue: reviewers e-mailed)")
        await registration.record_step(Step.REVIEW)
        await registration.audit(
            "registration.overdue", sla_hours=str(registration.policy.approval_sla_hours)
        )
        await registration.notify("review_overdue", key="overdue", audience="reviewers")

    def takes(self, decision: ReviewDecision) -> bool:
        """Also while the confirmation is still being applied: the console may already list the
        application (its read model says pending_review) before the workflow moves on."""
        registration = self.registration
        if (
            Step.REVIEW in registration.start.steps
            and registration.at(Step.CONFIRM_EMAIL, Step.REVIEW)
            and self.decision is None
        ):
            self.decision = decision
            registration.note(
                ("approved" if decision.approved else "denied") + f" by {decision.reviewer}"
            )
            return True
        return False
