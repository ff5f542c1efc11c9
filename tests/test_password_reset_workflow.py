"""A forgotten password on the time-skipping server, activities mocked: the link expires, is
single use, and an unknown account gets no e-mail at all."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio import activity
from temporalio.service import RPCError
from temporalio.worker import Worker

from activities.accounts import ResetApplied, ResetConfirmed
from activities.mail import LinkEmail, LinkSent
from portal.config import Policy
from workflows.password_reset import (
    PasswordResetStart,
    PasswordResetWorkflow,
    ResetConfirmation,
)


class FakeResets:
    def __init__(self) -> None:
        self.links: list[LinkEmail] = []
        self.applied: list[ResetConfirmed] = []

    def activities(self):
        @activity.defn(name="send_link")
        async def send_link(request: LinkEmail) -> LinkSent:
            self.links.append(request)
            return LinkSent(token_id=len(self.links))

        @activity.defn(name="apply_reset")
        async def apply_reset(request: ResetConfirmed) -> ResetApplied:
            self.applied.append(request)
            return ResetApplied(user_id=request.user_id, applied=True)

        return [send_link, apply_reset]


async def start_reset(env, fakes: FakeResets, user_id: int | None, queue: str):
    return await env.client.start_workflow(
        PasswordResetWorkflow.run,
        PasswordResetStart(
            portal="patient",
            policy=Policy(reset_link_hours=2, temporary_password_hours=24),
            user_id=user_id,
        ),
        id=f"password-reset/patient/{uuid.uuid4().hex[:10]}",
        task_queue=queue,
    )


@pytest.fixture
async def reset_worker(time_skipping_env):
    fakes = FakeResets()
    queue = f"reset-{uuid.uuid4().hex[:8]}"
    async with Worker(
        time_skipping_env.client,
        task_queue=queue,
        workflows=[PasswordResetWorkflow],
        activities=fakes.activities(),
    ):
        yield time_skipping_env, fakes, queue


async def test_confirmed_reset_issues_a_temporary_password_once(reset_worker):
    env, fakes, queue = reset_worker
    handle = await start_reset(env, fakes, 7, queue)
    result = await handle.execute_update(
        PasswordResetWorkflow.confirm_reset, ResetConfirmation(token_id=1)
    )
    assert result.applied
    assert (await handle.result()).status == "completed"
    assert fakes.applied[0].mode == "temporary_password"
    assert fakes.applied[0].temporary_password_hours == 24
    with pytest.raises(RPCError, match="not found"):
        await handle.execute_update(
            PasswordResetWorkflow.confirm_reset, ResetConfirmation(token_id=1)
        )


async def test_reset_link_expires_after_its_lifetime(reset_worker):
    env, fakes, queue = reset_worker
    handle = await start_reset(env, fakes, 7, queue)
    assert (await handle.result()).status == "expired"
    assert fakes.links[0].lifetime_hours == 2
    assert fakes.applied == []


async def test_link_followed_after_two_hours_is_refused(reset_worker):
    env, fakes, queue = reset_worker
    handle = await start_reset(env, fakes, 7, queue)
    await handle.query(PasswordResetWorkflow.get_status)
    await env.sleep(timedelta(minutes=119))
    assert (await handle.query(PasswordResetWorkflow.get_status)).step == "awaiting_confirmation"
    await env.sleep(timedelta(minutes=2))
    assert (await handle.result()).status == "expired"
    with pytest.raises(RPCError, match="not found"):
        await handle.execute_update(
            PasswordResetWorkflow.confirm_reset, ResetConfirmation(token_id=1)
        )
    assert fakes.applied == []


async def test_request_for_an_unknown_account_sends_nothing(reset_worker):
    env, fakes, queue = reset_worker
    handle = await start_reset(env, fakes, None, queue)
    assert (await handle.result()).status == "no_account"
    assert fakes.links == []
