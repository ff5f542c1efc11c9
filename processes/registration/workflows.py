"""One applicant's registration, from the first form to an active account (or its end)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from processes.registration.vocabulary import (
    AccountSubmission,
    CaseOutcome,
    CaseResolution,
    EmailConfirmed,
    IdentityCheck,
    IdentityResult,
    RegistrationOutcome,
    RegistrationStart,
    RegistrationStatus,
    ResendRequest,
    ReviewDecision,
    Step,
    TokenPurpose,
)
from temporal.search_attributes import OVERDUE, PORTAL, REFERENCE, STEP

with workflow.unsafe.imports_passed_through():
    from activities.audit import AuditActivities, AuditEntry
    from activities.mail import LinkEmail, MailActivities, NoticeEmail
    from processes.registration.activities import (
        CaseResolutionRequest,
        ConfirmationClosing,
        IdentityAttempt,
        RecordActivities,
        RegistrationActivities,
        RegistrationEnded,
        ReviewApplied,
        StepReached,
        SupportCaseRequest,
    )
    from temporal.retry_policies import DB_RETRY, MAIL_RETRY


@workflow.defn
class RegistrationWorkflow:
    """Identity (member), account (member), e-mail confirmation, review (provider), activation."""

    @workflow.init
    def __init__(self, start: RegistrationStart) -> None:
        self.start = start
        self.policy = start.policy
        self.user_id = start.user_id
        self.step = Step.STARTED
        self.status = Step.STARTED
        self.overdue = False
        self.strikes = 0
        self.escalated = False
        self.identity_verified = False
        self.case_resolution: CaseResolution | None = None
        self.escalations = 0
        self.case_id = 0
        self.checking = False
        self.token_id = 0
        self.links_sent = 0
        self.resend_requested = False
        self.email_confirmed = False
        self.decision: ReviewDecision | None = None
        self.history: list[str] = []
        self.deadline = workflow.now() + timedelta(hours=self.policy.registration_abandon_hours)

    @workflow.run
    async def run(self, start: RegistrationStart) -> RegistrationOutcome:
        outcome = await self.proceed(start)
        # A late review decision is still being recorded: let it finish before closing.
        await workflow.wait_condition(workflow.all_handlers_finished)
        return outcome

    async def proceed(self, start: RegistrationStart) -> RegistrationOutcome:
        if workflow.info().typed_search_attributes.get(PORTAL) is None:
            workflow.upsert_search_attributes(
                [PORTAL.value_set(start.portal), REFERENCE.value_set(start.reference)]
            )
        if Step.IDENTITY in start.steps and not await self.verify_identity():
            return await self.end(Step.CLOSED if self.escalated else Step.EXPIRED)
        if Step.ACCOUNT in start.steps and not await self.collect_account():
            return await self.end(Step.EXPIRED)
        if Step.CONFIRM_EMAIL in start.steps and not await self.confirm_email():
            return await self.end(Step.EXPIRED)
        if Step.REVIEW in start.steps:
            decision = await self.review()
            if decision is None:
                return await self.end(Step.LAPSED, notify="registration_lapsed")
            if not decision.approved:
                return await self.deny(decision)
        return await self.activate()

    # Step 1: identity check against the member record, with strikes and the help desk.
    async def verify_identity(self) -> bool:
        """Tries (updates) until one matches, within the applicant's deadline.

        At the strike limit the update opens a help-desk case; here the help desk is e-mailed
        and the registration waits for `resolve_case`. That wait has no applicant deadline: the
        next move is the help desk's, and an open case stays on its list until resolved.
        `allow_retry` clears the strikes, e-mails the member a link back to this step and
        restarts the deadline; `close` e-mails the member and ends the registration.
        """
        await self.enter(Step.IDENTITY)
        while True:
            done = await self.wait_until_deadline(lambda: self.identity_verified or self.escalated)
            if not done:
                return False
            if self.identity_verified:
                return True
            await self.enter(Step.ESCALATED)
            await self.notify(
                "identity_escalated",
                key=f"escalated/{self.escalations}",
                audience="helpdesk",
                case_id=str(self.case_id),
            )
            await workflow.wait_condition(lambda: self.case_resolution is not None)
            resolution = self.case_resolution
            self.history.append(
                f"{workflow.now().isoformat()} case {resolution.outcome} by {resolution.agent}"
            )
            await workflow.execute_activity_method(
                RecordActivities.resolve_support_case,
                CaseResolutionRequest(
                    portal=self.start.portal,
                    workflow_id=workflow.info().workflow_id,
                    round=self.escalations,
                    outcome=resolution.outcome,
                    agent=resolution.agent,
                    note=resolution.note,
                    link_hours=self.policy.email_link_hours,
                ),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=MAIL_RETRY,
                summary=f"help desk: {resolution.outcome}",
            )
            if resolution.outcome != CaseOutcome.ALLOW_RETRY:
                return False
            self.case_resolution = None
            self.strikes = 0
            self.escalated = False
            self.deadline = workflow.now() + timedelta(hours=self.policy.registration_abandon_hours)
            await self.enter(Step.IDENTITY)

    # Step 2: username, e-mail, password and secret question, stored by the web tier.
    async def collect_account(self) -> bool:
        await self.enter(Step.ACCOUNT)
        return await self.wait_until_deadline(lambda: self.user_id is not None)

    # Step 3: the e-mailed link, which expires and can be sent again.
    async def confirm_email(self) -> bool:
        await self.enter(Step.CONFIRM_EMAIL)
        await self.send_confirmation_link()
        while True:
            done = await self.wait_until_deadline(
                lambda: self.email_confirmed or self.resend_requested
            )
            if not done:
                return await self.close_confirmation()
            if self.email_confirmed:
                return True
            self.resend_requested = False
            if self.links_sent <= self.policy.max_confirmation_resends:
                await self.send_confirmation_link()

    # Step 4: staff review with an SLA timer, escalation, and a final deadline.
    async def review(self) -> ReviewDecision | None:
        await self.enter(Step.REVIEW)
        sla = timedelta(hours=self.policy.approval_sla_hours)
        final = timedelta(hours=self.policy.approval_final_hours)
        # The console reads the SLA clock from this event, so its pages never ask Temporal.
        await self.audit(
            "registration.review_started",
            due_at=(workflow.now() + sla).isoformat(),
            final_at=(workflow.now() + final).isoformat(),
        )
        try:
            await workflow.wait_condition(
                lambda: self.decision is not None,
                timeout=sla,
                timeout_summary=f"approval SLA ({self.policy.approval_sla_hours} h)",
            )
        except TimeoutError:
            self.overdue = True
            workflow.upsert_search_attributes([OVERDUE.value_set(True)])
            self.history.append(f"{workflow.now().isoformat()} review overdue")
            workflow.set_current_details("Step: review (overdue: reviewers e-mailed)")
            await self.record_step(Step.REVIEW)
            await self.audit("registration.overdue", sla_hours=str(self.policy.approval_sla_hours))
            await self.notify("review_overdue", key="overdue", audience="reviewers")
            try:
                await workflow.wait_condition(
                    lambda: self.decision is not None,
                    timeout=max(final - sla, timedelta(0)),
                    timeout_summary=f"final approval deadline ({self.policy.approval_final_hours} h)",
                )
            except TimeoutError:
                return None
        return self.decision

    # Step 5: the account goes live and the applicant hears so.
    async def activate(self) -> RegistrationOutcome:
        if Step.REVIEW in self.start.steps:
            await self.apply_review(self.decision)
            await self.notify("registration_approved", key="approved")
        else:
            await self.notify("user_confirmed", key="confirmed")
        self.step = self.status = Step.ACTIVE
        workflow.upsert_search_attributes([STEP.value_set(self.step)])
        return RegistrationOutcome(status=Step.ACTIVE, user_id=self.user_id)

    async def deny(self, decision: ReviewDecision) -> RegistrationOutcome:
        await self.apply_review(decision)
        await self.notify("registration_denied", key="denied", reason=decision.reason)
        self.step = self.status = Step.DENIED
        workflow.upsert_search_attributes([STEP.value_set(self.step)])
        return RegistrationOutcome(status=Step.DENIED, user_id=self.user_id)

    async def end(self, status: Step, notify: str = "") -> RegistrationOutcome:
        if notify:
            await self.notify(notify, key=status)
        if self.escalated or status == Step.CLOSED:
            await self.notify("registration_closed", key="closed")
        await workflow.execute_activity_method(
            RegistrationActivities.end_registration,
            RegistrationEnded(
                workflow_id=workflow.info().workflow_id,
                user_id=self.user_id,
                status=status,
                release_account=True,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=DB_RETRY,
            summary=f"end registration: {status}",
        )
        self.step = self.status = status
        workflow.upsert_search_attributes([STEP.value_set(self.step)])
        return RegistrationOutcome(status=status, user_id=self.user_id)

    # Messages from the web tier, the staff console, the CLI and the Temporal UI.
    @workflow.update
    async def check_identity(self, attempt: IdentityCheck) -> IdentityResult:
        """One try, answered at once. Strikes are the larger of this registration's failures in
        a row and the client ID's (counted in the database across registrations); a client ID
        already at the limit goes straight to the help desk."""
        self.checking = True
        try:
            # A try sent just after `allow_retry` waits for the identity step to reopen.
            await workflow.wait_condition(
                lambda: not self.escalated and self.step in (Step.STARTED, Step.IDENTITY)
            )
            match = await workflow.execute_activity_method(
                RecordActivities.match_member,
                IdentityAttempt(
                    portal=self.start.portal,
                    workflow_id=workflow.info().workflow_id,
                    first_name=attempt.first_name,
                    last_name=attempt.last_name,
                    suffix=attempt.suffix,
                    date_of_birth=attempt.date_of_birth,
                    client_id=attempt.client_id,
                    strike_limit=self.policy.identity_strike_limit,
                ),
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=DB_RETRY,
                summary="identity check against the member record",
            )
            if match.matched:
                self.identity_verified = True
                self.strikes = 0
                self.history.append(f"{workflow.now().isoformat()} identity matched")
            else:
                self.strikes = max(self.strikes + 1, match.strikes)
                self.history.append(
                    f"{workflow.now().isoformat()} identity failed (strike {self.strikes})"
                )
                if match.blocked or self.strikes >= self.policy.identity_strike_limit:
                    self.strikes = max(self.strikes, self.policy.identity_strike_limit)
                    await self.escalate()
        finally:
            self.checking = False
        return IdentityResult(
            matched=match.matched,
            tries_left=max(self.policy.identity_strike_limit - self.strikes, 0),
            escalated=self.escalated,
        )

    @check_identity.validator
    def validate_check_identity(self, attempt: IdentityCheck) -> None:
        retry_allowed = (
            self.case_resolution is not None
            and self.case_resolution.outcome == CaseOutcome.ALLOW_RETRY
        )
        if self.escalated and not retry_allowed:
            raise ApplicationError("identity check escalated to the help desk", type="Escalated")
        if (
            Step.IDENTITY not in self.start.steps
            or self.identity_verified
            or (self.step not in (Step.STARTED, Step.IDENTITY) and not retry_allowed)
        ):
            raise ApplicationError(f"identity cannot be checked at step {self.step}", type="Step")
        if self.checking:
            raise ApplicationError("another identity check is running", type="Busy")

    @workflow.signal
    def submit_account(self, submission: AccountSubmission) -> None:
        """Owed through the outbox with the account's row; late or repeated ones are ignored,
        and an account that arrives after the deadline is released by the ending step."""
        if self.step == Step.ACCOUNT and self.user_id is None:
            self.user_id = submission.user_id

    @workflow.signal
    def email_confirmed(self, confirmed: EmailConfirmed) -> None:
        """Delivered at least once by the outbox relay; a repeat changes nothing."""
        if self.email_confirmed or Step.CONFIRM_EMAIL not in self.start.steps:
            return
        self.email_confirmed = True
        self.history.append(f"{workflow.now().isoformat()} email confirmed")

    @workflow.signal
    def resend_confirmation(self, request: ResendRequest) -> None:
        if self.step == Step.CONFIRM_EMAIL and not self.email_confirmed:
            self.resend_requested = True

    @workflow.signal
    async def review_decision(self, decision: ReviewDecision) -> None:
        """First decision wins; a later one (or one before review) is ignored and audited.

        The console refuses a second decision before sending it; this covers the Temporal UI,
        `temporal workflow signal` and two reviewers racing.
        """
        # Also while the confirmation is still being applied: the console may already list
        # the application (its read model says pending_review) before this step moves on.
        if (
            Step.REVIEW in self.start.steps
            and self.step in (Step.CONFIRM_EMAIL, Step.REVIEW)
            and self.decision is None
        ):
            self.decision = decision
            self.history.append(
                f"{workflow.now().isoformat()} "
                + ("approved" if decision.approved else "denied")
                + f" by {decision.reviewer}"
            )
            return
        await self.audit(
            "registration.decision_ignored",
            actor=decision.reviewer or "unknown",
            approved=str(decision.approved).lower(),
            step=self.step,
            reason="already decided" if self.decision is not None else "not under review",
        )

    @workflow.signal
    def resolve_case(self, resolution: CaseResolution) -> None:
        """First outcome for an open case wins; anything else is logged and ignored."""
        if resolution.outcome not in tuple(CaseOutcome):
            workflow.logger.warning("resolve_case: unknown outcome %r ignored", resolution.outcome)
            return
        if self.escalated and self.case_resolution is None:
            self.case_resolution = resolution
        else:
            workflow.logger.info("resolve_case ignored at step %s", self.step)

    @workflow.query
    def get_status(self) -> RegistrationStatus:
        return RegistrationStatus(
            step=self.step,
            status=self.status,
            overdue=self.overdue,
            tries_left=max(self.policy.identity_strike_limit - self.strikes, 0),
            escalated=self.escalated,
            decided=self.decision is not None,
            history=list(self.history),
        )

    # Helpers: each says what it does to the outside world through an activity.
    async def enter(self, step: Step) -> None:
        self.step = step
        self.status = step
        self.history.append(f"{workflow.now().isoformat()} {step}")
        workflow.set_current_details(f"Step: {step}")
        if workflow.info().typed_search_attributes.get(STEP) != step:
            workflow.upsert_search_attributes([STEP.value_set(step)])
        await self.record_step(step)

    async def record_step(self, status: Step) -> None:
        """A local activity: a one-row update needs no task queue round trip of its own."""
        await workflow.execute_local_activity_method(
            RegistrationActivities.record_step,
            StepReached(
                workflow_id=workflow.info().workflow_id, status=status, overdue=self.overdue
            ),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=DB_RETRY,
            summary=f"record step: {status}",
        )

    async def close_confirmation(self) -> bool:
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
            self.email_confirmed = True
            self.history.append(f"{workflow.now().isoformat()} email confirmed")
        return closed.confirmed

    async def wait_until_deadline(self, condition) -> bool:
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

    async def send_confirmation_link(self) -> None:
        self.links_sent += 1
        sent = await workflow.execute_activity_method(
            MailActivities.send_link,
            LinkEmail(
                template="confirm_email",
                purpose=TokenPurpose.CONFIRM_EMAIL,
                path="confirm",
                portal=self.start.portal,
                workflow_id=workflow.info().workflow_id,
                user_id=self.user_id,
                lifetime_hours=self.policy.email_link_hours,
                send_key=f"{workflow.info().workflow_id}/confirm/{self.links_sent}",
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=MAIL_RETRY,
            summary=f"e-mail confirmation link #{self.links_sent}",
        )
        self.token_id = sent.token_id

    async def escalate(self) -> None:
        """Opens the case first, so the help desk's e-mail names it; `checking` holds off
        other tries meanwhile."""
        self.escalations += 1
        opened = await workflow.execute_activity_method(
            RecordActivities.open_support_case,
            SupportCaseRequest(
                portal=self.start.portal,
                workflow_id=workflow.info().workflow_id,
                reference=self.start.reference,
                round=self.escalations,
            ),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=DB_RETRY,
            summary="open help-desk case",
        )
        self.case_id = opened.case_id
        self.escalated = True

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
        await workflow.execute_activity_method(
            MailActivities.send_notice,
            NoticeEmail(
                template=template,
                portal=self.start.portal,
                workflow_id=workflow.info().workflow_id,
                send_key=f"{workflow.info().workflow_id}/{key}",
                audience=audience,
                user_id=self.user_id,
                context={"reference": self.start.reference, **context},
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=MAIL_RETRY,
            summary=f"e-mail {template} to {audience}",
        )
