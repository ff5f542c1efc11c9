"""One applicant's registration, from the first form to an active account (or its end).

`run()` reads as the seed's steps; each step's state and wait live in `steps.py`. Where the
registration is (`step`) and how it ended (`outcome`) are kept apart."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as ActivityTimeout

from processes.registration.steps import ConfirmationStep, IdentityStep, ReviewStep
from processes.registration.vocabulary import (
    AccountSubmission,
    CaseResolution,
    EmailConfirmed,
    IdentityCheck,
    IdentityResult,
    Outcome,
    RegistrationOutcome,
    RegistrationStart,
    RegistrationStatus,
    ResendRequest,
    ReviewDecision,
    Step,
)
from temporal.search_attributes import PORTAL, REFERENCE, STEP

with workflow.unsafe.imports_passed_through():
    from activities.audit import AuditActivities, AuditEntry
    from mail.activities import MailActivities, NoticeEmail
    from processes.registration.activities import (
        RegistrationActivities,
        RegistrationEnded,
        ReviewApplied,
        StepReached,
    )
    from temporal.retry_policies import DB_RETRY, MAIL_FIRST_TRY, MAIL_RETRY

LEAN_LIFECYCLE = "registration-lean-lifecycle"
"""Patch: the start's search attributes in one upsert, the first step's row left as the web tier
wrote it, each e-mail first tried as a local activity, and one timer per deadline rather than
one per wait (a finished registration leaves it unfired). A patient's lifecycle went from 25
history events to 13, plus the two this patch writes itself until it is retired."""


@workflow.defn
class RegistrationWorkflow:
    """Identity (member), account (member), e-mail confirmation, review (provider), activation."""

    @workflow.init
    def __init__(self, start: RegistrationStart) -> None:
        self.start = start
        self.policy = start.policy
        self.user_id = start.user_id
        self.step = Step.STARTED
        self.outcome: Outcome | None = None
        self.history: list[str] = []
        self.lean = False
        self.unset_attributes: list = []
        self.deadline_timer: asyncio.Task | None = None
        self.deadline_timer_at = None
        self.restart_deadline()
        self.identity = IdentityStep(self)
        self.confirmation = ConfirmationStep(self)
        self.review = ReviewStep(self)

    @workflow.run
    async def run(self, start: RegistrationStart) -> RegistrationOutcome:
        self.lean = workflow.patched(LEAN_LIFECYCLE)
        outcome = await self.proceed(start)
        # A late review decision is still being recorded: let it finish before closing.
        await workflow.wait_condition(workflow.all_handlers_finished)
        return outcome

    async def proceed(self, start: RegistrationStart) -> RegistrationOutcome:
        if workflow.info().typed_search_attributes.get(PORTAL) is None:
            attributes = [PORTAL.value_set(start.portal), REFERENCE.value_set(start.reference)]
            if self.lean:
                self.unset_attributes = attributes
            else:
                workflow.upsert_search_attributes(attributes)
        if Step.IDENTITY in start.steps and not await self.identity.run():
            return await self.end(Outcome.CLOSED if self.identity.escalated else Outcome.EXPIRED)
        if Step.ACCOUNT in start.steps and not await self.collect_account():
            return await self.end(Outcome.EXPIRED)
        if Step.CONFIRM_EMAIL in start.steps and not await self.confirmation.run():
            return await self.end(Outcome.EXPIRED)
        if Step.REVIEW in start.steps:
            self.disarm_deadline()
            decision = await self.review.run()
            if decision is None:
                return await self.end(Outcome.LAPSED, notify="registration_lapsed")
            if not decision.approved:
                return await self.deny(decision)
        return await self.activate()

    # Step 2: username, e-mail, password and secret question, stored by the web tier.
    async def collect_account(self) -> bool:
        await self.enter(Step.ACCOUNT)
        return await self.wait_until_deadline(lambda: self.user_id is not None)

    # Step 5: the account goes live and the applicant hears so.
    async def activate(self) -> RegistrationOutcome:
        if Step.REVIEW in self.start.steps:
            await self.apply_review(self.review.decision)
            await self.notify("registration_approved", key="approved")
        else:
            await self.notify("user_confirmed", key="confirmed")
        return self.ended(Outcome.ACTIVE)

    async def deny(self, decision: ReviewDecision) -> RegistrationOutcome:
        await self.apply_review(decision)
        await self.notify("registration_denied", key="denied", reason=decision.reason)
        return self.ended(Outcome.DENIED)

    async def end(self, outcome: Outcome, notify: str = "") -> RegistrationOutcome:
        if notify:
            await self.notify(notify, key=outcome)
        if self.identity.escalated or outcome == Outcome.CLOSED:
            await self.notify("registration_closed", key="closed")
        await workflow.execute_activity_method(
            RegistrationActivities.end_registration,
            RegistrationEnded(
                workflow_id=workflow.info().workflow_id,
                user_id=self.user_id,
                status=outcome,
                release_account=True,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=DB_RETRY,
            summary=f"end registration: {outcome}",
        )
        return self.ended(outcome)

    def ended(self, outcome: Outcome) -> RegistrationOutcome:
        self.outcome = outcome
        workflow.upsert_search_attributes([*self.unset_attributes, STEP.value_set(outcome)])
        self.unset_attributes = []
        return RegistrationOutcome(status=outcome, user_id=self.user_id)

    # Messages from the web tier, the staff console, the CLI and the Temporal UI; each goes to
    # the step it concerns.
    @workflow.update
    async def check_identity(self, attempt: IdentityCheck) -> IdentityResult:
        return await self.identity.check(attempt)

    @check_identity.validator
    def validate_check_identity(self, attempt: IdentityCheck) -> None:
        self.identity.validate()

    @workflow.signal
    def submit_account(self, submission: AccountSubmission) -> None:
        """Owed through the outbox with the account's row; late or repeated ones are ignored,
        and an account that arrives after the deadline is released by the ending step."""
        if self.at(Step.ACCOUNT) and self.user_id is None:
            self.user_id = submission.user_id

    @workflow.signal
    def email_confirmed(self, confirmed: EmailConfirmed) -> None:
        if Step.CONFIRM_EMAIL in self.start.steps:
            self.confirmation.confirm()

    @workflow.signal
    def resend_confirmation(self, request: ResendRequest) -> None:
        self.confirmation.resend()

    @workflow.signal
    async def review_decision(self, decision: ReviewDecision) -> None:
        """First decision wins; a later one (or one before review) is ignored and audited.

        The console refuses a second decision before sending it; this covers the Temporal UI,
        `temporal workflow signal` and two reviewers racing.
        """
        if self.review.takes(decision):
            return
        await self.audit(
            "registration.decision_ignored",
            actor=decision.reviewer or "unknown",
            approved=str(decision.approved).lower(),
            step=self.outcome or self.step,
            reason="already decided" if self.review.decision is not None else "not under review",
        )

    @workflow.signal
    def resolve_case(self, resolution: CaseResolution) -> None:
        self.identity.resolve(resolution)

    @workflow.query
    def get_status(self) -> RegistrationStatus:
        return RegistrationStatus(
            step=self.step,
            outcome=self.outcome,
            overdue=self.review.overdue,
            tries_left=self.identity.tries_left,
            escalated=self.identity.escalated,
            decided=self.review.decision is not None,
            history=list(self.history),
        )

    # What the steps share: the deadline, the read model, history, e-mail and audit.
    def at(self, *steps: Step) -> bool:
        """Still running, at one of these steps."""
        return self.outcome is None and self.step in steps

    def note(self, event: str) -> None:
        self.history.append(f"{workflow.now().isoformat()} {event}")

    def restart_deadline(self) -> None:
        self.deadline = workflow.now() + timedelta(hours=self.policy.registration_abandon_hours)
        self.deadline_passed = False

    async def enter(self, step: Step) -> bool:
        """True when this wrote the step on the registration's row (a local activity)."""
        first = self.step == Step.STARTED
        self.step = step
        self.note(step)
        workflow.set_current_details(f"Step: {step}")
        if not self.lean:
            if workflow.info().typed_search_attributes.get(STEP) != step:
                workflow.upsert_search_attributes([STEP.value_set(step)])
            await self.record_step(step)
            return True
        attributes, self.unset_attributes = self.unset_attributes, []
        if workflow.info().typed_search_attributes.get(STEP) != step:
            attributes.append(STEP.value_set(step))
        if attributes:
            workflow.upsert_search_attributes(attributes)
        if first and step == self.start.recorded_step:
            return False
        await self.record_step(step)
        return True

    async def record_step(self, step: Step) -> None:
        """A local activity: a one-row update needs no task queue round trip of its own."""
        await workflow.execute_local_activity_method(
            RegistrationActivities.record_step,
            StepReached(
                workflow_id=workflow.info().workflow_id, status=step, overdue=self.review.overdue
            ),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=DB_RETRY,
            summary=f"record step: {step}",
        )

    async def wait_until_deadline(self, condition) -> bool:
        if self.lean:
            self.arm_deadline()
            await workflow.wait_condition(lambda: condition() or self.deadline_passed)
            return condition()
        remaining = self.deadline - workflow.now()
        if remaining <= timedelta(0):
            return condition()
        try:
            await workflow.wait_condition(
                condition, timeout=remaining, timeout_summary=f"{self.step} deadline"
            )
        except TimeoutError:
            return condition()
        return True

    def arm_deadline(self) -> None:
        """One timer per deadline, shared by every wait before it: a wait that ends early
        leaves it running rather than cancelling it and starting another."""
        if self.deadline_timer is not None and self.deadline_timer_at == self.deadline:
            return
        self.disarm_deadline()
        self.deadline_timer_at = self.deadline
        if self.deadline <= workflow.now():
            self.deadline_passed = True
            return
        self.deadline_timer = asyncio.create_task(self.expire(self.deadline))

    def disarm_deadline(self) -> None:
        if self.deadline_timer is not None and not self.deadline_timer.done():
            self.deadline_timer.cancel()
        self.deadline_timer = None

    async def expire(self, deadline) -> None:
        await workflow.sleep(deadline - workflow.now(), summary="registration deadline")
        if deadline == self.deadline:
            self.deadline_passed = True

    async def apply_review(self, decision: ReviewDecision) -> None:
        await workflow.execute_activity_method(
            RegistrationActivities.apply_review,
            ReviewApplied(
                workflow_id=workflow.info().workflow_id,
                user_id=self.user_id,
                approved=decision.approved,
                reviewer=decision.reviewer,
                reason=decision.reason,
            ),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=DB_RETRY,
            summary="apply review: " + ("approved" if decision.approved else "denied"),
        )

    async def audit(self, action: str, actor: str = "system", **detail: str) -> None:
        await workflow.execute_activity_method(
            AuditActivities.record_event,
            AuditEntry(
                actor=actor,
                action=action,
                portal=self.start.portal,
                workflow_id=workflow.info().workflow_id,
                user_id=self.user_id,
                detail=detail,
            ),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=DB_RETRY,
            summary=f"audit: {action}",
        )

    async def notify(
        self, template: str, key: str, audience: str = "applicant", **context: str
    ) -> None:
        if audience == "applicant" and self.user_id is None:
            return
        notice = NoticeEmail(
            template=template,
            portal=self.start.portal,
            workflow_id=workflow.info().workflow_id,
            send_key=f"{workflow.info().workflow_id}/{key}",
            audience=audience,
            user_id=self.user_id,
            context={"reference": self.start.reference, **context},
        )
        if self.lean:
            await self.mail(MailActivities.send_notice, notice, f"e-mail {template} to {audience}")
            return
        await workflow.execute_activity_method(
            MailActivities.send_notice,
            notice,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=MAIL_RETRY,
            summary=f"e-mail {template} to {audience}",
        )

    async def mail(self, activity, request: Any, summary: str) -> Any:
        """One e-mail: first tried as a local activity (one marker in history, no task of its
        own); if that try fails, a regular activity retries it, visible in the UI. Sends are
        once per send key (mail/once.py), so a repeated try never sends twice."""
        try:
            return await workflow.execute_local_activity_method(
                activity,
                request,
                start_to_close_timeout=timedelta(seconds=15),
                retry_policy=MAIL_FIRST_TRY,
                summary=summary,
            )
        except (ActivityError, ApplicationError, ActivityTimeout):
            # A local activity's failure arrives as its cause (the error it raised, or its
            # timeout), not wrapped in an ActivityError as a regular activity's is.
            workflow.logger.info("%s: first try failed, retrying as an activity", summary)
        return await workflow.execute_activity_method(
            activity,
            request,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=MAIL_RETRY,
            summary=summary,
        )
