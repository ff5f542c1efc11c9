"""The back-channel logout workflow on the time-skipping server, the POST mocked: a client that
is down is retried with backoff, and one down past the deadline is given up on, not retried
for ever."""

from __future__ import annotations

import uuid

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from processes.logout_delivery.vocabulary import (
    DeliveryOutcome,
    LogoutAnswered,
    LogoutAttempt,
    LogoutNotice,
)
from processes.logout_delivery.workflows import LogoutDeliveryWorkflow


async def run(env, post, deadline_seconds: int):
    queue = f"logout-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client, task_queue=queue, workflows=[LogoutDeliveryWorkflow], activities=[post]
    ):
        return await env.client.execute_workflow(
            LogoutDeliveryWorkflow.run,
            LogoutNotice(
                portal="patient", client_pk=1, user_id=7, deadline_seconds=deadline_seconds
            ),
            id=f"logout-delivery/patient/{uuid.uuid4().hex[:12]}",
            task_queue=queue,
        )


async def test_a_client_down_for_a_while_gets_its_logout_when_it_comes_back(time_skipping_env):
    tries: list[LogoutAttempt] = []

    @activity.defn(name="post_logout_token")
    async def post_logout_token(attempt: LogoutAttempt) -> LogoutAnswered:
        tries.append(attempt)
        if len(tries) < 6:
            raise ApplicationError("historia: HTTP 503")
        return LogoutAnswered(outcome=DeliveryOutcome.DELIVERED, status=200)

    result = await run(time_skipping_env, post_logout_token, deadline_seconds=3600)

    assert result.outcome == DeliveryOutcome.DELIVERED
    assert len(tries) == 6
    assert {(t.portal, t.client_pk, t.user_id) for t in tries} == {("patient", 1, 7)}


async def test_a_client_down_past_the_deadline_is_given_up_on(time_skipping_env):
    tries = []

    @activity.defn(name="post_logout_token")
    async def post_logout_token(attempt: LogoutAttempt) -> LogoutAnswered:
        tries.append(attempt)
        raise ApplicationError("historia: ConnectionError")

    result = await run(time_skipping_env, post_logout_token, deadline_seconds=600)

    assert result.outcome == DeliveryOutcome.GAVE_UP
    assert 3 < len(tries) < 20
