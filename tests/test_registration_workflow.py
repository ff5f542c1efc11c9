"""The registration engine on the time-skipping server, with its activities mocked: the click
delivered as a signal, resend, a click racing the deadline, and an abandoned registration
freeing its username."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from temporalio import activity
from temporalio.worker import Worker

from mail.activities import LinkEmail, LinkSent, MailSent, NoticeEmail
from portal.config import Policy
from processes.registration.activities import (
    ConfirmationClosed,
    ConfirmationClosing,
    RegistrationEnded,
    StepReached,
)
from processes.registration.vocabulary import EmailConfirmed, RegistrationStart, ResendRequest
from processes.registration.workflows import RegistrationWorkflow
from tests.fixtures.waiting import wait_until_async


@dataclass
class FakeSideEffects:
    """Stands in for the database and SMTP: records what the workflow asked for."""

    links: list[LinkEmail] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    ended: list[RegistrationEnded] = field(default_factory=list)
    closings: list[str] = field(default_factory=list)
    redeemed_before_deadline: bool = False

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

        @activity.defn(name="close_confirmation")
        async def close_confirmation(request: ConfirmationClosing) -> ConfirmationClosed:
            self.closings.append(request.workflow_id)
            return ConfirmationClosed(confirmed=self.redeemed_before_deadline)

        @activity.defn(name="end_registration")
        async def end_registration(request: RegistrationEnded) -> None:
            self.ended.append(request)

        return [send_link, send_notice, record_step, close_confirmation, end_registration]


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


def clicked(token_id: int = 1) -> EmailConfirmed:
    return EmailConfirmed(
        workflow_id="registration/patient/x", token_id=token_id, user_id=7, next_status="active"
    )


async def test_following_the_link_activates_and_sends_user_confirmed(patient_registration):
    handle, effects, _ = patient_registration
    await handle.signal(RegistrationWorkflow.email_confirmed, clicked())
    outcome = await handle.result()
    assert outcome.status == "active"
    assert effects.notices == ["user_confirmed"]
    assert effects.links[0].lifetime_hours == 48


async def test_a_click_delivered_twice_confirms_once(patient_registration):
    handle, effects, _ = patient_registration
    await handle.signal(RegistrationWorkflow.email_confirmed, clicked())
    await handle.signal(RegistrationWorkflow.email_confirmed, clicked())
    outcome = await handle.result()
    assert outcome.status == "active"
    assert effects.notices == ["user_confirmed"]


async def test_a_click_that_raced_the_deadline_is_honoured(patient_registration):
    handle, effects, _ = patient_registration
    effects.redeemed_before_deadline = True
    outcome = await handle.result()
    assert outcome.status == "active"
    assert effects.closings == [handle.id]
    assert effects.notices == ["user_confirmed"]
    assert effects.ended == []


async def test_resent_link_is_a_new_logical_e_mail(patient_registration):
    handle, effects, env = patient_registration
    await env.sleep(timedelta(hours=47))
    await handle.signal(RegistrationWorkflow.resend_confirmation, ResendRequest())
    await wait_until_async(lambda: len(effects.links) == 2, what="a second link")
    await handle.signal(RegistrationWorkflow.email_confirmed, clicked(token_id=2))
    assert (await handle.result()).status == "active"
    assert effects.links[0].send_key.endswith("/confirm/1")
    assert effects.links[1].send_key.endswith("/confirm/2")


async def test_abandoned_registration_expires_and_frees_its_username(patient_registration):
    handle, effects, _ = patient_registration
    outcome = await handle.result()
    assert outcome.status == "expired"
    assert effects.closings == [handle.id]
    assert effects.ended[0].release_account is True
    assert effects.ended[0].user_id == 7
