"""The staff invitation on the time-skipping server, activities mocked: the link is mailed,
an acceptance or a revocation ends the wait, and an unanswered invitation lapses after its
lifetime."""

from __future__ import annotations

import uuid

from temporalio import activity
from temporalio.worker import Worker

from processes.staff_invitation.vocabulary import (
    AcceptInvitation,
    EndInvitation,
    InvitationEnded,
    InvitationLinkSent,
    RevokeInvitation,
    SendInvitationLink,
    StaffInvitationStart,
)
from processes.staff_invitation.workflows import StaffInvitationWorkflow


def fake_activities(mails: list, ended: list):
    @activity.defn(name="send_staff_invitation")
    async def send_staff_invitation(request: SendInvitationLink) -> InvitationLinkSent:
        mails.append(request)
        return InvitationLinkSent(token_id=7)

    @activity.defn(name="end_staff_invitation")
    async def end_staff_invitation(request: EndInvitation) -> InvitationEnded:
        ended.append(request)
        return InvitationEnded(status=request.status)

    return [send_staff_invitation, end_staff_invitation]


async def run_invitation(env, accept: bool, revoke: bool = False):
    mails, ended = [], []
    queue = f"staff-invitation-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[StaffInvitationWorkflow],
        activities=fake_activities(mails, ended),
    ):
        handle = await env.client.start_workflow(
            StaffInvitationWorkflow.run,
            StaffInvitationStart(invitation_id=3, lifetime_hours=72, invited_by="staff:ada"),
            id=f"staff-invitation/{uuid.uuid4().hex[:20]}",
            task_queue=queue,
        )
        if accept:
            await handle.signal(StaffInvitationWorkflow.accept, AcceptInvitation(staff_id=9))
        if revoke:
            await handle.signal(
                StaffInvitationWorkflow.revoke, RevokeInvitation(revoked_by="staff:ada")
            )
        outcome = await handle.result()
    return outcome, mails, ended


async def test_an_accepted_invitation_ends_without_touching_the_account(time_skipping_env):
    outcome, mails, ended = await run_invitation(time_skipping_env, accept=True)
    assert outcome.status == "accepted"
    assert len(mails) == 1 and mails[0].lifetime_hours == 72
    assert ended == []


async def test_an_unanswered_invitation_lapses_after_its_lifetime(time_skipping_env):
    outcome, mails, ended = await run_invitation(time_skipping_env, accept=False)
    assert outcome.status == "expired"
    assert [e.status for e in ended] == ["expired"]


async def test_a_revoked_invitation_ends_at_once_without_ending_it_again(time_skipping_env):
    outcome, _mails, ended = await run_invitation(time_skipping_env, accept=False, revoke=True)
    assert outcome.status == "revoked"
    assert ended == [], "the console already voided the link and the account"
