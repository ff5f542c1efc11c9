"""The member registration (seed 001) on the time-skipping server with its activities mocked:
three strikes, the help desk resolving the case both ways, strikes that outlive a registration,
and an abandoned registration expiring."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError
from temporalio.worker import Worker

from mail.activities import LinkEmail, LinkSent, MailSent, NoticeEmail
from portal.config import Policy
from processes.registration.activities import (
    CaseResolutionApplied,
    CaseResolutionRequest,
    ConfirmationClosed,
    ConfirmationClosing,
    IdentityAttempt,
    IdentityStrike,
    RegistrationEnded,
    StepReached,
    SupportCaseOpened,
    SupportCaseRequest,
)
from processes.registration.vocabulary import (
    AccountSubmission,
    CaseResolution,
    EmailConfirmed,
    IdentityCheck,
    RegistrationStart,
)
from processes.registration.workflows import RegistrationWorkflow

MEMBER_POLICY = Policy(identity_strike_limit=3, registration_abandon_hours=72)
GOOD = IdentityCheck(
    first_name="Carlos",
    last_name="Santos",
    suffix="Jr.",
    date_of_birth="1979-11-03",
    client_id="100200301",
)
BAD = IdentityCheck(
    first_name="Carlos",
    last_name="Santos",
    suffix="",
    date_of_birth="1979-11-03",
    client_id="100200301",
)

CLICKED = EmailConfirmed(workflow_id="registration/x", token_id=1, user_id=9, next_status="active")


@dataclass
class FakeRecords:
    """The database and SMTP as the workflow sees them; strikes kept per client ID like the
    real activity, so a second registration sees the first one's."""

    strikes: dict[str, int] = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)
    notices: list[NoticeEmail] = field(default_factory=list)
    cases: list[SupportCaseRequest] = field(default_factory=list)
    resolutions: list[CaseResolutionRequest] = field(default_factory=list)
    links: list[LinkEmail] = field(default_factory=list)
    ended: list[RegistrationEnded] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def wait_for(self, predicate, timeout: float = 10) -> None:
        """Waits until an activity call makes `predicate` true (no polling)."""
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(predicate), timeout)

    async def _changed(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    def activities(self):
        @activity.defn(name="record_step")
        async def record_step(step: StepReached) -> None:
            self.steps.append(step.status)
            await self._changed()

        @activity.defn(name="match_member")
        async def match_member(attempt: IdentityAttempt) -> IdentityStrike:
            count = self.strikes.get(attempt.client_id, 0)
            blocked = count >= attempt.strike_limit
            matched = not blocked and attempt.suffix == "Jr."
            if not blocked:
                count = 0 if matched else count + 1
            self.strikes[attempt.client_id] = count
            return IdentityStrike(
                portal=attempt.portal,
                workflow_id=attempt.workflow_id,
                matched=matched,
                strikes=count,
                blocked=blocked,
            )

        @activity.defn(name="open_support_case")
        async def open_support_case(request: SupportCaseRequest) -> SupportCaseOpened:
            self.cases.append(request)
            await self._changed()
            return SupportCaseOpened(case_id=len(self.cases))

        @activity.defn(name="resolve_support_case")
        async def resolve_support_case(request: CaseResolutionRequest) -> CaseResolutionApplied:
            self.resolutions.append(request)
            if request.outcome == "allow_retry":
                self.strikes["100200301"] = 0
            await self._changed()
            return CaseResolutionApplied(case_id=request.round, contact_notified=True)

        @activity.defn(name="send_notice")
        async def send_notice(request: NoticeEmail) -> MailSent:
            self.notices.append(request)
            await self._changed()
            return MailSent(sent=True)

        @activity.defn(name="send_link")
        async def send_link(request: LinkEmail) -> LinkSent:
            self.links.append(request)
            await self._changed()
            return LinkSent(token_id=len(self.links))

        @activity.defn(name="close_confirmation")
        async def close_confirmation(request: ConfirmationClosing) -> ConfirmationClosed:
            return ConfirmationClosed(confirmed=False)

        @activity.defn(name="end_registration")
        async def end_registration(request: RegistrationEnded) -> None:
            self.ended.append(request)

        return [
            record_step,
            match_member,
            open_support_case,
            resolve_support_case,
            send_notice,
            send_link,
            close_confirmation,
            end_registration,
        ]


@pytest.fixture
async def member(time_skipping_env):
    fake = FakeRecords()
    queue = f"member-{uuid.uuid4().hex[:8]}"

    async def start():
        return await time_skipping_env.client.start_workflow(
            RegistrationWorkflow.run,
            RegistrationStart(
                portal="member",
                reference=uuid.uuid4().hex[:10].upper(),
                steps=["identity", "account", "confirm_email"],
                policy=MEMBER_POLICY,
            ),
            id=f"registration/member/{uuid.uuid4().hex[:10]}",
            task_queue=queue,
        )

    async with Worker(
        time_skipping_env.client,
        task_queue=queue,
        workflows=[RegistrationWorkflow],
        activities=fake.activities(),
    ):
        yield start, fake, time_skipping_env


async def try_identity(handle, attempt=BAD):
    return await handle.execute_update(RegistrationWorkflow.check_identity, attempt)


async def strike_out(handle):
    results = [await try_identity(handle) for _ in range(3)]
    return results


async def test_three_failed_tries_open_a_case_mail_the_help_desk_and_refuse_more(member):
    start, fake, _ = member
    handle = await start()
    first, second, third = await strike_out(handle)
    assert (first.matched, first.tries_left, first.escalated) == (False, 2, False)
    assert (second.tries_left, second.escalated) == (1, False)
    assert (third.tries_left, third.escalated) == (0, True)
    assert [c.round for c in fake.cases] == [1]

    await fake.wait_for(lambda: any(n.template == "identity_escalated" for n in fake.notices))
    notice = next(n for n in fake.notices if n.template == "identity_escalated")
    assert notice.audience == "helpdesk"
    assert notice.context["case_id"] == "1"

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await try_identity(handle, GOOD)
    assert refused.value.cause.type == "Escalated"
    status = await handle.query(RegistrationWorkflow.get_status)
    assert status.escalated and status.tries_left == 0


async def test_a_new_registration_does_not_reset_the_client_ids_strikes(member):
    start, fake, _ = member
    earlier = await start()
    await try_identity(earlier)
    await try_identity(earlier)

    later = await start()
    result = await try_identity(later)
    assert result.escalated and result.tries_left == 0
    assert [c.workflow_id for c in fake.cases] == [later.id]

    # At the limit, even the right answer goes straight to the help desk.
    third = await start()
    blocked = await try_identity(third, GOOD)
    assert not blocked.matched and blocked.escalated


async def test_help_desk_allows_a_retry_and_the_applicant_finishes(member):
    start, fake, env = member
    handle = await start()
    await strike_out(handle)
    await env.sleep(timedelta(hours=70))
    await handle.signal(
        RegistrationWorkflow.resolve_case,
        CaseResolution(outcome="allow_retry", agent="staff:mesa", note="verificado por teléfono"),
    )
    await fake.wait_for(lambda: fake.steps.count("identity") == 2)
    resolution = fake.resolutions[0]
    assert (resolution.outcome, resolution.agent, resolution.round) == (
        "allow_retry",
        "staff:mesa",
        1,
    )
    assert resolution.link_hours == MEMBER_POLICY.email_link_hours

    # A fresh set of tries with a fresh deadline (the first one would have lapsed by now).
    await env.sleep(timedelta(hours=10))
    retry = await try_identity(handle)
    assert retry.tries_left == 2 and not retry.escalated
    assert (await try_identity(handle, GOOD)).matched

    await fake.wait_for(lambda: "account" in fake.steps)
    await handle.signal(RegistrationWorkflow.submit_account, AccountSubmission(user_id=9))
    await fake.wait_for(lambda: len(fake.links) == 1)
    await handle.signal(RegistrationWorkflow.email_confirmed, CLICKED)
    outcome = await handle.result()
    assert (outcome.status, outcome.user_id) == ("active", 9)
    assert [n.template for n in fake.notices] == ["identity_escalated", "user_confirmed"]


async def test_help_desk_closes_the_case_and_the_registration_ends(member):
    start, fake, _ = member
    handle = await start()
    await strike_out(handle)
    await handle.signal(
        RegistrationWorkflow.resolve_case, CaseResolution(outcome="close", agent="ops")
    )
    outcome = await handle.result()
    assert outcome.status == "closed"
    assert [r.outcome for r in fake.resolutions] == ["close"]
    assert fake.ended[0].status == "closed" and fake.ended[0].user_id is None


async def test_unknown_outcome_or_a_resolution_before_escalation_is_ignored(member):
    start, fake, _ = member
    handle = await start()
    await handle.signal(RegistrationWorkflow.resolve_case, CaseResolution(outcome="close"))
    await strike_out(handle)
    await handle.signal(RegistrationWorkflow.resolve_case, CaseResolution(outcome="maybe"))
    status = await handle.query(RegistrationWorkflow.get_status)
    assert status.step == "escalated" and fake.resolutions == []
    await handle.signal(RegistrationWorkflow.resolve_case, CaseResolution(outcome="close"))
    assert (await handle.result()).status == "closed"


async def test_an_open_case_waits_for_the_help_desk_past_the_applicants_deadline(member):
    start, fake, env = member
    handle = await start()
    await strike_out(handle)
    await env.sleep(timedelta(hours=MEMBER_POLICY.registration_abandon_hours + 24))
    status = await handle.query(RegistrationWorkflow.get_status)
    assert status.step == "escalated"
    assert fake.ended == []


async def test_registration_abandoned_at_the_identity_step_expires(member):
    start, fake, _ = member
    handle = await start()
    await try_identity(handle)
    outcome = await handle.result()
    assert outcome.status == "expired"
    assert fake.ended[0].status == "expired" and fake.ended[0].release_account


async def test_registration_abandoned_after_identity_expires_and_frees_its_account(member):
    start, fake, env = member
    handle = await start()
    assert (await try_identity(handle, GOOD)).matched
    await fake.wait_for(lambda: "account" in fake.steps)
    await handle.signal(RegistrationWorkflow.submit_account, AccountSubmission(user_id=5))
    outcome = await handle.result()
    assert outcome.status == "expired"
    assert fake.ended[0].user_id == 5 and fake.ended[0].release_account
    # Expiry followed the policy: 72 hours, not the engine's default of a week.
    assert fake.links and fake.links[0].user_id == 5
