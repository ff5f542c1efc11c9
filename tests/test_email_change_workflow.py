"""The e-mail change process on the time-skipping server, activities mocked: a confirmed change
applies and its undo window closes after the policy's days; an unconfirmed one expires after
the link's lifetime; a newer request replaces it; an undo inside the window ends it; a click or
an undo that raced a deadline is honoured, because the database says so."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from temporalio import activity
from temporalio.worker import Worker

from processes.email_change.activities import (
    ChangeApplying,
    ChangeEnding,
    ChangeMail,
    ChangeMailed,
    ChangeState,
)
from processes.email_change.vocabulary import (
    ChangeConfirmed,
    ChangeReplaced,
    ChangeUndone,
    EmailChangeStart,
    Step,
)
from processes.email_change.workflows import EmailChangeWorkflow
from tests.fixtures.waiting import wait_until_async


@dataclass
class FakeSideEffects:
    mails: list[ChangeMail] = field(default_factory=list)
    applied: list[ChangeApplying] = field(default_factory=list)
    ended: list[ChangeEnding] = field(default_factory=list)
    database_says: Step | None = None

    def activities(self):
        @activity.defn(name="send_change_mail")
        async def send_change_mail(request: ChangeMail) -> ChangeMailed:
            self.mails.append(request)
            return ChangeMailed(token_id=len(self.mails))

        @activity.defn(name="apply_change")
        async def apply_change(request: ChangeApplying) -> ChangeState:
            self.applied.append(request)
            return ChangeState(status=Step.APPLIED)

        @activity.defn(name="end_change")
        async def end_change(request: ChangeEnding) -> ChangeState:
            self.ended.append(request)
            return ChangeState(status=self.database_says or request.status)

        return [send_change_mail, apply_change, end_change]


async def reaches(handle, step: Step) -> None:
    async def there() -> bool:
        return (await handle.query(EmailChangeWorkflow.get_status)).step == step

    await wait_until_async(there, what=f"the change to reach {step}")


@pytest.fixture
async def change(time_skipping_env):
    effects = FakeSideEffects()
    queue = f"email-change-{uuid.uuid4().hex[:8]}"
    async with Worker(
        time_skipping_env.client,
        task_queue=queue,
        workflows=[EmailChangeWorkflow],
        activities=effects.activities(),
    ):
        handle = await time_skipping_env.client.start_workflow(
            EmailChangeWorkflow.run,
            EmailChangeStart(portal="patient", change_id=3, link_hours=24, undo_days=7),
            id=f"email-change/patient/{uuid.uuid4().hex[:10].upper()}",
            task_queue=queue,
        )
        yield handle, effects, time_skipping_env


async def test_a_confirmed_change_applies_and_its_undo_window_closes_after_the_policy_days(change):
    handle, effects, env = change
    await reaches(handle, Step.PENDING)
    await handle.signal(EmailChangeWorkflow.confirm, ChangeConfirmed(token_id=1))
    await reaches(handle, Step.APPLIED)
    assert [m.template for m in effects.mails] == [
        "email_change_confirm",
        "email_change_requested",
        "email_change_applied",
    ]
    assert effects.mails[0].lifetime_hours == 24 and effects.mails[2].lifetime_hours == 7 * 24
    await env.sleep(timedelta(days=6, hours=23))
    assert (await handle.query(EmailChangeWorkflow.get_status)).step == Step.APPLIED
    assert (await handle.result()).status == Step.KEPT
    assert [e.status for e in effects.ended] == [Step.KEPT]
    assert len(effects.applied) == 1


async def test_an_unconfirmed_change_expires_after_the_link_lifetime(change):
    handle, effects, env = change
    await reaches(handle, Step.PENDING)
    await env.sleep(timedelta(hours=23))
    assert (await handle.query(EmailChangeWorkflow.get_status)).step == Step.PENDING
    assert (await handle.result()).status == Step.EXPIRED
    assert [e.status for e in effects.ended] == [Step.EXPIRED]
    assert effects.applied == []


async def test_a_newer_request_replaces_the_waiting_change(change):
    handle, effects, _ = change
    await reaches(handle, Step.PENDING)
    await handle.signal(EmailChangeWorkflow.replace, ChangeReplaced(by_change_id=4))
    assert (await handle.result()).status == Step.REPLACED
    assert effects.applied == []


async def test_an_undo_inside_the_window_ends_the_change_undone(change):
    handle, effects, env = change
    await reaches(handle, Step.PENDING)
    await handle.signal(EmailChangeWorkflow.confirm, ChangeConfirmed(token_id=1))
    await reaches(handle, Step.APPLIED)
    await env.sleep(timedelta(days=3))
    await handle.signal(EmailChangeWorkflow.undo, ChangeUndone(token_id=3))
    assert (await handle.result()).status == Step.UNDONE
    assert effects.ended == []


async def test_a_click_that_raced_the_link_deadline_is_applied(change):
    handle, effects, env = change
    effects.database_says = Step.CONFIRMED
    await reaches(handle, Step.PENDING)
    await env.sleep(timedelta(hours=25))
    await reaches(handle, Step.APPLIED)
    assert [e.status for e in effects.ended] == [Step.EXPIRED]
    assert len(effects.applied) == 1


async def test_an_undo_that_raced_the_window_end_is_honoured(change):
    handle, effects, _ = change
    await reaches(handle, Step.PENDING)
    await handle.signal(EmailChangeWorkflow.confirm, ChangeConfirmed(token_id=1))
    await reaches(handle, Step.APPLIED)
    effects.database_says = Step.UNDONE
    assert (await handle.result()).status == Step.UNDONE
