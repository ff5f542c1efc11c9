"""A forgotten password on the time-skipping server, activities mocked: the link expires, is
single use, and an unknown account gets no e-mail at all."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio import activity
from temporalio.service import RPCError
from temporalio.worker import Worker

from mail.activities import LinkEmail, LinkSent
from portal.config import Policy
from processes.recovery.activities import ResetApplied, ResetConfirmed
from processes.recovery.vocabulary import PasswordResetStart, ResetConfirmation, ResetRequested
from processes.recovery.workflows import PasswordResetWorkflow
from tests.fixtures.waiting import wait_until_async


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
            policy=Policy(
                reset_link_hours=2,
                temporary_password_hours=24,
                reset_link_resend_minutes=5,
                max_reset_links=3,
            ),
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


async def test_repeated_requests_get_a_fresh_link_only_after_the_spacing_and_up_to_the_cap(
    reset_worker,
):
    env, fakes, queue = reset_worker
    handle = await start_reset(env, fakes, 7, queue)
    await wait_until_async(lambda: links_sent_is(handle, 1), what="the first link")

    await env.sleep(timedelta(seconds=30))
    await handle.signal(PasswordResetWorkflow.request_again, ResetRequested())
    status = await wait_until_async(lambda: status_after(handle, requests=0), what="the request")
    assert status.links_sent == 1

    for expected in (2, 3, 3):
        await env.sleep(timedelta(minutes=5))
        await handle.signal(PasswordResetWorkflow.request_again, ResetRequested())
        await wait_until_async(
            lambda expected=expected: links_sent_is(handle, expected), what=f"{expected} links"
        )
    assert len(fakes.links) == 3
    assert len({link.send_key for link in fakes.links}) == 3


async def links_sent_is(handle, expected: int) -> bool:
    return (await handle.query(PasswordResetWorkflow.get_status)).links_sent == expected


async def status_after(handle, requests: int):
    status = await handle.query(PasswordResetWorkflow.get_status)
    return status if status.requests > requests else None
