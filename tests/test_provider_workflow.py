"""The provider review step on the time-skipping server, activities mocked: approval, denial,
the 24-hour SLA with escalation to the reviewers, the final deadline, a second decision."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from temporalio import activity
from temporalio.worker import Worker

from activities.audit import AuditEntry
from mail.activities import LinkEmail, LinkSent, MailSent, NoticeEmail
from portal.config import Policy
from processes.registration.activities import (
    AccountState,
    ConfirmationClosed,
    ConfirmationClosing,
    RegistrationEnded,
    ReviewApplied,
    StepReached,
)
from processes.registration.vocabulary import EmailConfirmed, RegistrationStart, ReviewDecision
from processes.registration.workflows import RegistrationWorkflow
from temporal.search_attributes import OVERDUE
from tests.fixtures.waiting import wait_until_async

PROVIDER_POLICY = Policy(
    approval_sla_hours=24, approval_final_hours=120, password_reset_mode="link"
)

CLICKED = EmailConfirmed(workflow_id="registration/x", token_id=1, user_id=9, next_status="active")


@dataclass
class FakeSideEffects:
    notices: list[tuple[str, str, dict]] = field(default_factory=list)
    reviews: list[ReviewApplied] = field(default_factory=list)
    ended: list[RegistrationEnded] = field(default_factory=list)
    steps: list[StepReached] = field(default_factory=list)
    audits: list[AuditEntry] = field(default_factory=list)

    def activities(self):
        @activity.defn(name="send_link")
        async def send_link(request: LinkEmail) -> LinkSent:
            return LinkSent(token_id=1)

        @activity.defn(name="send_notice")
        async def send_notice(request: NoticeEmail) -> MailSent:
            self.notices.append((request.template, request.audience, dict(request.context)))
            return MailSent(sent=True)

        @activity.defn(name="record_step")
        async def record_step(step: StepReached) -> None:
            self.steps.append(step)

        @activity.defn(name="close_confirmation")
        async def close_confirmation(request: ConfirmationClosing) -> ConfirmationClosed:
            return ConfirmationClosed(confirmed=False)

        @activity.defn(name="apply_review")
        async def apply_review(request: ReviewApplied) -> AccountState:
            self.reviews.append(request)
            return AccountState(
                user_id=request.user_id, status="active" if request.approved else "denied"
            )

        @activity.defn(name="end_registration")
        async def end_registration(request: RegistrationEnded) -> None:
            self.ended.append(request)

        @activity.defn(name="record_event")
        async def record_event(entry: AuditEntry) -> None:
            self.audits.append(entry)

        return [
            send_link,
            send_notice,
            record_step,
            close_confirmation,
            apply_review,
            end_registration,
            record_event,
        ]

    def templates(self) -> list[str]:
        return [template for template, _, _ in self.notices]

    def actions(self) -> list[str]:
        return [entry.action for entry in self.audits]


async def under_review(handle) -> None:
    async def check():
        status = await handle.query(RegistrationWorkflow.get_status)
        return status.step == "review"

    await wait_until_async(check)


@pytest.fixture
async def provider_registration(time_skipping_env):
    effects = FakeSideEffects()
    queue = f"provider-{uuid.uuid4().hex[:8]}"
    async with Worker(
        time_skipping_env.client,
        task_queue=queue,
        workflows=[RegistrationWorkflow],
        activities=effects.activities(),
    ):

        async def start(steps=("review",)):
            return await time_skipping_env.client.start_workflow(
                RegistrationWorkflow.run,
                RegistrationStart(
                    portal="provider",
                    reference="REFPROV01",
                    steps=list(steps),
                    policy=PROVIDER_POLICY,
                    user_id=11,
                ),
                id=f"registration/provider/{uuid.uuid4().hex[:10]}",
                task_queue=queue,
            )

        yield start, effects, time_skipping_env


async def test_confirmed_email_then_approval_activates_and_mails_the_applicant(
    provider_registration,
):
    start, effects, _ = provider_registration
    handle = await start(steps=("confirm_email", "review"))
    await handle.signal(RegistrationWorkflow.email_confirmed, CLICKED)
    await under_review(handle)
    await handle.signal(
        RegistrationWorkflow.review_decision, ReviewDecision(approved=True, reviewer="staff:rita")
    )
    outcome = await handle.result()
    assert outcome.status == "active"
    assert [(r.approved, r.reviewer) for r in effects.reviews] == [(True, "staff:rita")]
    assert effects.templates() == ["registration_approved"]
    assert "registration.review_started" in effects.actions()
    assert "registration.overdue" not in effects.actions()


async def test_denial_mails_the_reason_and_ends_denied(provider_registration):
    start, effects, _ = provider_registration
    handle = await start()
    await under_review(handle)
    await handle.signal(
        RegistrationWorkflow.review_decision,
        ReviewDecision(approved=False, reviewer="staff:rita", reason="NPI no corresponde"),
    )
    outcome = await handle.result()
    assert outcome.status == "denied"
    assert effects.reviews[0].reason == "NPI no corresponde"
    template, audience, context = effects.notices[-1]
    assert (template, audience) == ("registration_denied", "applicant")
    assert context["reason"] == "NPI no corresponde"


async def test_sla_lapse_marks_overdue_escalates_and_keeps_waiting(provider_registration):
    start, effects, env = provider_registration
    handle = await start()
    await under_review(handle)
    await env.sleep(timedelta(hours=25))

    async def overdue():
        return (await handle.query(RegistrationWorkflow.get_status)).overdue

    await wait_until_async(overdue)
    assert ("review_overdue", "reviewers") in [(t, a) for t, a, _ in effects.notices]
    assert any(step.overdue for step in effects.steps)
    assert "registration.overdue" in effects.actions()
    description = await handle.describe()
    assert description.typed_search_attributes.get(OVERDUE) is True

    await handle.signal(
        RegistrationWorkflow.review_decision, ReviewDecision(approved=True, reviewer="staff:late")
    )
    outcome = await handle.result()
    assert outcome.status == "active"
    assert effects.templates() == ["review_overdue", "registration_approved"]


async def test_final_deadline_closes_the_application_and_tells_the_applicant(
    provider_registration,
):
    start, effects, _ = provider_registration
    handle = await start()
    outcome = await handle.result()
    assert outcome.status == "lapsed"
    assert effects.templates() == ["review_overdue", "registration_lapsed"]
    assert [e.status for e in effects.ended] == ["lapsed"]
    assert effects.reviews == []


async def test_a_second_decision_is_ignored_and_audited(provider_registration):
    start, effects, _ = provider_registration
    handle = await start()
    await under_review(handle)
    await handle.signal(
        RegistrationWorkflow.review_decision,
        ReviewDecision(approved=False, reviewer="staff:first", reason="Tax ID inválido"),
    )
    await handle.signal(
        RegistrationWorkflow.review_decision, ReviewDecision(approved=True, reviewer="staff:second")
    )
    outcome = await handle.result()
    assert outcome.status == "denied"
    assert [(r.approved, r.reviewer) for r in effects.reviews] == [(False, "staff:first")]
    ignored = [e for e in effects.audits if e.action == "registration.decision_ignored"]
    assert [e.actor for e in ignored] == ["staff:second"]
    assert ignored[0].detail["reason"] == "already decided"
