"""One third-party app's registration: the developer is told it arrived, the automatic checks
run as retried activities, staff review it with an SLA (reviewers e-mailed when it passes) and a
final deadline (the application lapses), and an approval makes the client and e-mails a
single-use link to its credentials.

A check that still fails after its retries does not end the application: its result goes to
the reviewer with the application, who decides (a privacy page that was down for an hour is
not a reason to lose an application; an insecure redirect URI is one the service refuses to
approve)."""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from processes.app_registration.vocabulary import (
    CREDENTIALS_WORKFLOW,
    WORKFLOW,
    AppCredentialsOutcome,
    AppCredentialsStart,
    AppRegistrationOutcome,
    AppRegistrationStart,
    AppRegistrationStatus,
    Check,
    CheckResult,
    Decision,
    Mail,
    ReviewDecision,
    Signal,
    Step,
)
from temporal.search_attributes import OVERDUE, PORTAL, STEP

with workflow.unsafe.imports_passed_through():
    from processes.app_registration.activities import (
        AppCheckRequest,
        AppClientRequest,
        AppMail,
        AppRegistrationActivities,
        AppSettling,
    )
    from temporal.retry_policies import CHECK_RETRY, DB_RETRY, MAIL_RETRY


@workflow.defn(name=WORKFLOW)
class AppRegistrationWorkflow:
    """Started by the outbox with its row. A reviewer's decision is claimed in the database by
    the service before its signal is sent, and the lapse is a conditional update, so a decision
    racing the final deadline wins or loses exactly once."""

    @workflow.init
    def __init__(self, start: AppRegistrationStart) -> None:
        self.start = start
        self.step = Step.CHECKING
        self.overdue = False
        self.checks: list[CheckResult] = []
        self.decision: ReviewDecision | None = None

    @workflow.run
    async def run(self, start: AppRegistrationStart) -> AppRegistrationOutcome:
        workflow.upsert_search_attributes([PORTAL.value_set(start.portal)])
        self.enter(Step.CHECKING, "Running the automatic checks")
        await self.mail(Mail.RECEIVED)
        for check in Check:
            self.checks.append(await self.check(check))
        sla = timedelta(hours=start.review_sla_hours)
        final = timedelta(hours=max(start.review_final_hours, start.review_sla_hours))
        await self.settle(
            Step.IN_REVIEW,
            [Step.CHECKING],
            checks=self.checks,
            due_at=(workflow.now() + sla).isoformat(),
            final_at=(workflow.now() + final).isoformat(),
        )
        failed = [c.check for c in self.checks if not c.passed]
        self.enter(
            Step.IN_REVIEW,
            "Waiting for staff review"
            + (f" (failed checks: {', '.join(failed)})" if failed else ""),
        )
        if not await self.wait_for_decision(sla, f"review SLA ({start.review_sla_hours} h)"):
            self.overdue = True
            workflow.upsert_search_attributes([OVERDUE.value_set(True)])
            workflow.set_current_details("Waiting for staff review (overdue: reviewers e-mailed)")
            await self.settle(Step.IN_REVIEW, [Step.IN_REVIEW], overdue=True)
            await self.mail(Mail.REVIEW_OVERDUE)
            if not await self.wait_for_decision(
                final - sla, f"final review deadline ({start.review_final_hours} h)"
            ):
                lapsed = await self.settle(Step.LAPSED, [Step.IN_REVIEW])
                if lapsed == Step.LAPSED:
                    await self.mail(Mail.LAPSED)
                    return self.finish(Step.LAPSED)
                # A reviewer claimed it just before the deadline: its signal is on its way.
                await workflow.wait_condition(lambda: self.decision is not None)
        if self.decision.decision == Decision.DENY:
            await self.mail(Mail.DENIED)
            return self.finish(Step.DENIED)
        self.enter(Step.APPROVED, f"Approved by {self.decision.reviewer}: making the client")
        made = await workflow.execute_activity_method(
            AppRegistrationActivities.create_client,
            AppClientRequest(
                application_id=start.application_id, workflow_id=workflow.info().workflow_id
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=DB_RETRY,
            summary="make the client",
        )
        await self.mail(Mail.CREDENTIALS, start.credentials_link_hours)
        await self.settle(Step.REGISTERED, [Step.APPROVED])
        return self.finish(Step.REGISTERED, made.client_pk)

    async def check(self, check: Check) -> CheckResult:
        """The check's result; one that still fails after its retries is a failed result for
        the reviewer, with the last error's message."""
        try:
            return await workflow.execute_activity_method(
                AppRegistrationActivities.run_check,
                AppCheckRequest(application_id=self.start.application_id, check=check),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=CHECK_RETRY,
                summary=f"check {check}",
            )
        except ActivityError as error:
            cause = error.cause
            detail = cause.message if isinstance(cause, ApplicationError) else str(cause)
            return CheckResult(check=check, passed=False, detail=f"{detail}, after retries")

    async def wait_for_decision(self, timeout: timedelta, summary: str) -> bool:
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self.decision is not None, timeout=timeout, timeout_summary=summary
            )
        return self.decision is not None

    async def settle(
        self,
        status: Step,
        sources: list[Step],
        checks: list[CheckResult] | None = None,
        overdue: bool = False,
        due_at: str = "",
        final_at: str = "",
    ) -> Step:
        settled = await workflow.execute_activity_method(
            AppRegistrationActivities.settle_application,
            AppSettling(
                application_id=self.start.application_id,
                workflow_id=workflow.info().workflow_id,
                status=status,
                sources=sources,
                checks=checks or [],
                overdue=overdue,
                due_at=due_at,
                final_at=final_at,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=DB_RETRY,
            summary=f"application: {status}" + (" (overdue)" if overdue else ""),
        )
        return settled.status

    async def mail(self, kind: Mail, lifetime_hours: int = 0) -> None:
        info = workflow.info()
        await workflow.execute_activity_method(
            AppRegistrationActivities.send_app_mail,
            AppMail(
                application_id=self.start.application_id,
                workflow_id=info.workflow_id,
                kind=kind,
                send_key=f"{info.workflow_id}/{info.run_id}/{kind}",
                lifetime_hours=lifetime_hours,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=MAIL_RETRY,
            summary=f"e-mail {kind}",
        )

    def finish(self, status: Step, client_pk: int = 0) -> AppRegistrationOutcome:
        self.enter(status, f"Application {status}")
        return AppRegistrationOutcome(status=status, client_pk=client_pk)

    @workflow.signal(name=Signal.REVIEW_DECISION)
    def review_decision(self, decision: ReviewDecision) -> None:
        """Delivered at least once by the outbox relay; the first decision stands."""
        if self.decision is None:
            self.decision = decision

    @workflow.query
    def get_status(self) -> AppRegistrationStatus:
        return AppRegistrationStatus(step=self.step, overdue=self.overdue, checks=self.checks)

    def enter(self, step: Step, details: str) -> None:
        self.step = step
        workflow.set_current_details(details)
        workflow.upsert_search_attributes([STEP.value_set(step)])


@workflow.defn(name=CREDENTIALS_WORKFLOW)
class AppCredentialsWorkflow:
    """A developer who lost a confidential client's secret asked for new credentials with the
    client_id and the contact address: the contact address gets a single-use link (pressing it
    replaces the secret), and while this process waits out its quiet period, a repeated request
    finds it running and starts nothing, so nobody can flood the contact's mailbox."""

    @workflow.run
    async def run(self, start: AppCredentialsStart) -> AppCredentialsOutcome:
        info = workflow.info()
        workflow.upsert_search_attributes([PORTAL.value_set(start.portal)])
        workflow.set_current_details("Mailing a new credentials link to the app's contact")
        mailed = await workflow.execute_activity_method(
            AppRegistrationActivities.send_app_mail,
            AppMail(
                application_id=start.application_id,
                workflow_id=start.application_workflow_id,
                kind=Mail.NEW_CREDENTIALS,
                send_key=f"{info.workflow_id}/{info.run_id}/{Mail.NEW_CREDENTIALS}",
                lifetime_hours=start.credentials_link_hours,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=MAIL_RETRY,
            summary=f"e-mail {Mail.NEW_CREDENTIALS}",
        )
        workflow.set_current_details(
            f"Link mailed; further requests ignored for {start.quiet_minutes} min"
        )
        await workflow.sleep(
            timedelta(minutes=start.quiet_minutes), summary="quiet period for repeated requests"
        )
        return AppCredentialsOutcome(mailed=bool(mailed.token_id))
