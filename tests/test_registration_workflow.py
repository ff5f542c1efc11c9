"""The registration engine on the time-skipping server, with its activities mocked: link expiry,
resend, and an abandoned registration freeing its username."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError
from temporalio.worker import Worker

from activities.accounts import AccountState, EmailConfirmed, RegistrationEnded, StepReached
from activities.mail import LinkEmail, LinkSent, MailSent, NoticeEmail
from portal.config import Policy
from tests.fixtures.waiting import wait_until_async
from workflows.registration import (
    EmailConfirmation,
    RegistrationStart,
    RegistrationWorkflow,
    ResendRequest,
)


@dataclass
class FakeSideEffects:
    """Stands in for the database and SMTP: records what the workflow asked for."""

    links: list[LinkEmail] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    ended: list[RegistrationEnded] = field(default_factory=list)
    confirmed: list[EmailConfirmed] = field(default_factory=list)

    def activities(self):
        @activity.defn(name="send_link")
        async def send_link(request: LinkEmail) -> LinkSent:
            self.links.append(request)
            return LinkSent(token_id=len(self.links))

        @activity.defn(name="send_notice")
        async def send_notice(request: NoticeEmail) -> MailSent:
            self.notices.append(request.template)
            return MailSent(sent=True)

        @activity.defn(name="record_step")
        async def record_step(step: StepReached) -> None:
            return None

        @activity.defn(name="confirm_email")
        async def confirm_email(request: EmailConfirmed) -> AccountState:
            self.confirmed.append(request)
            return AccountState(user_id=request.user_id, status=request.next_status)

        @activity.defn(name="end_registration")
        async def end_registration(request: RegistrationEnded) -> None:
            self.ended.append(request)

        return [send_link, send_notice, record_step, confirm_email, end_registration]


PATIENT_POLICY = Policy(email_link_hours=48, registration_abandon_hours=168)


@pytest.fixture
async def patient_registration(time_skipping_env):
    effects = FakeSideEffects()
    queue = f"registration-{uuid.uuid4().hex[:8]}"
    async with Worker(
        time_skipping_env.client,
        task_queue=queue,
        workflows=[RegistrationWorkflow],
        activities=effects.activities(),
    ):
        handle = await time_skipping_env.client.start_workflow(
            RegistrationWorkflow.run,
            RegistrationStart(
                portal="patient",
                reference="REF123",
                steps=["confirm_email"],
                policy=PATIENT_POLICY,
                user_id=7,
            ),
            id=f"registration/patient/{uuid.uuid4().hex[:10]}",
            task_queue=queue,
        )
        yield handle, effects, time_skipping_env


async def test_following_the_link_activates_and_sends_user_confirmed(patient_registration):
    handle, effects, _ = patient_registration
    result = await handle.execute_update(
        RegistrationWorkflow.confirm_email_link, EmailConfirmation(token_id=1)
    )
    assert result.status == "active"
    outcome = await handle.result()
    assert outcome.status == "active"
    assert effects.notices == ["user_confirmed"]
    assert effects.links[0].lifetime_hours == 48


async def test_two_clicks_at_once_confirm_once(patient_registration):
    import asyncio

    handle, effects, _ = patient_registration
    clicks = [
        handle.execute_update(RegistrationWorkflow.confirm_email_link, EmailConfirmation(1))
        for _ in range(2)
    ]
    answers = await asyncio.gather(*clicks, return_exceptions=True)
    assert sum(not isinstance(a, Exception) for a in answers) == 1
    refused = next(a for a in answers if isinstance(a, Exception))
    assert refused.cause.type == "AlreadyConfirmed"
    assert len(effects.confirmed) == 1


async def test_link_followed_after_48_hours_is_refused(patient_registration):
    handle, _, env = patient_registration
    await handle.query(RegistrationWorkflow.get_status)
    await env.sleep(timedelta(hours=49))
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            RegistrationWorkflow.confirm_email_link, EmailConfirmation(token_id=1)
        )
    assert refused.value.cause.type == "LinkExpired"


async def test_resent_link_replaces_the_old_one_and_restarts_its_clock(patient_registration):
    handle, effects, env = patient_registration
    await env.sleep(timedelta(hours=47))
    await handle.signal(RegistrationWorkflow.resend_confirmation, ResendRequest())
    await wait_until_async(lambda: len(effects.links) == 2, what="a second link")
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(
            RegistrationWorkflow.confirm_email_link, EmailConfirmation(token_id=1)
        )
    await env.sleep(timedelta(hours=47))
    result = await handle.execute_update(
        RegistrationWorkflow.confirm_email_link, EmailConfirmation(token_id=2)
    )
    assert result.status == "active"
    assert effects.links[1].send_key.endswith("/confirm/2")


async def test_abandoned_registration_expires_and_frees_its_username(patient_registration):
    handle, effects, _ = patient_registration
    outcome = await handle.result()
    assert outcome.status == "expired"
    assert effects.ended[0].release_account is True
    assert effects.ended[0].user_id == 7
