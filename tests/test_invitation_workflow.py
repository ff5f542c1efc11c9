"""The employee invitation on the time-skipping server, activities mocked: acceptance (a
signal owed by the web tier's transaction), expiry after the policy's days, an acceptance racing
the deadline, revocation, and an acceptance after revocation changing nothing."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from temporalio import activity
from temporalio.service import RPCError
from temporalio.worker import Worker

from processes.invitation.activities import (
    InvitationEnded,
    InvitationMail,
    InvitationMailed,
    InvitationState,
)
from processes.invitation.vocabulary import InvitationAcceptance, InvitationStart, RevokeRequest
from processes.invitation.workflows import InvitationWorkflow
from tests.fixtures.waiting import wait_until_async


@dataclass
class FakeSideEffects:
    mails: list[InvitationMail] = field(default_factory=list)
    ended: list[InvitationEnded] = field(default_factory=list)
    accepted_in_the_database: int | None = None

    def activities(self):
        @activity.defn(name="send_invitation")
        async def send_invitation(request: InvitationMail) -> InvitationMailed:
            self.mails.append(request)
            return InvitationMailed(token_id=41)

        @activity.defn(name="end_invitation")
        async def end_invitation(request: InvitationEnded) -> InvitationState:
            self.ended.append(request)
            if self.accepted_in_the_database is not None:
                return InvitationState(status="accepted", user_id=self.accepted_in_the_database)
            return InvitationState(status=request.status)

        return [send_invitation, end_invitation]


async def pending(handle) -> None:
    async def is_pending() -> bool:
        return (await handle.query(InvitationWorkflow.get_status)).step == "pending"

    await wait_until_async(is_pending, what="the invitation to be pending")


@pytest.fixture
async def invitation(time_skipping_env):
    effects = FakeSideEffects()
    queue = f"invitation-{uuid.uuid4().hex[:8]}"
    async with Worker(
        time_skipping_env.client,
        task_queue=queue,
        workflows=[InvitationWorkflow],
        activities=effects.activities(),
    ):
        handle = await time_skipping_env.client.start_workflow(
            InvitationWorkflow.run,
            InvitationStart(
                portal="provider", invitation_id=5, invitation_days=7, invited_by="user:1"
            ),
            id=f"invitation/provider/{uuid.uuid4().hex[:16]}",
            task_queue=queue,
        )
        yield handle, effects, time_skipping_env


async def test_accepting_activates_the_employee(invitation):
    handle, effects, _ = invitation
    await pending(handle)
    await handle.signal(InvitationWorkflow.accept, InvitationAcceptance(token_id=41, user_id=9))
    outcome = await handle.result()
    assert (outcome.status, outcome.user_id) == ("accepted", 9)
    assert effects.mails[0].lifetime_hours == 7 * 24
    assert effects.ended == []


async def test_unaccepted_invitation_expires_after_the_policy_days(invitation):
    handle, effects, env = invitation
    outcome = await handle.result()
    assert outcome.status == "expired"
    assert [(e.status, e.actor) for e in effects.ended] == [("expired", "system")]


async def test_link_followed_after_expiry_is_refused(invitation):
    handle, effects, env = invitation
    await pending(handle)
    await env.sleep(timedelta(days=6, hours=23))
    assert (await handle.query(InvitationWorkflow.get_status)).step == "pending"
    await env.sleep(timedelta(hours=2))
    assert (await handle.result()).status == "expired"


async def test_an_acceptance_that_raced_the_deadline_is_honoured(invitation):
    handle, effects, _ = invitation
    effects.accepted_in_the_database = 9
    outcome = await handle.result()
    assert (outcome.status, outcome.user_id) == ("accepted", 9)


async def test_revoked_invitation_ends_and_refuses_its_link(invitation):
    handle, effects, _ = invitation
    await pending(handle)
    await handle.signal(InvitationWorkflow.revoke, RevokeRequest(revoked_by="user:1"))
    outcome = await handle.result()
    assert outcome.status == "revoked"
    assert [(e.status, e.actor) for e in effects.ended] == [("revoked", "user:1")]


async def test_an_acceptance_after_revocation_changes_nothing(time_skipping_env):
    effects = FakeSideEffects()
    queue = f"invitation-{uuid.uuid4().hex[:8]}"
    async with Worker(
        time_skipping_env.client,
        task_queue=queue,
        workflows=[InvitationWorkflow],
        activities=effects.activities(),
    ):
        handle = await time_skipping_env.client.start_workflow(
            InvitationWorkflow.run,
            InvitationStart(
                portal="provider", invitation_id=6, invitation_days=7, invited_by="user:1"
            ),
            id=f"invitation/provider/{uuid.uuid4().hex[:16]}",
            task_queue=queue,
        )
        await pending(handle)
        await handle.signal(InvitationWorkflow.revoke, RevokeRequest(revoked_by="user:1"))
        # Ignored by the workflow, or refused by the server if it has already closed.
        with contextlib.suppress(RPCError):
            await handle.signal(
                InvitationWorkflow.accept, InvitationAcceptance(token_id=41, user_id=9)
            )
        outcome = await handle.result()
        assert (outcome.status, outcome.user_id) == ("revoked", None)
