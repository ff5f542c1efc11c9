"""One workflow per client per ended session: retry the client until it answers or time runs out."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from processes.logout_delivery.vocabulary import (
    DeliveryOutcome,
    LogoutAttempt,
    LogoutDelivered,
    LogoutNotice,
)

with workflow.unsafe.imports_passed_through():
    from processes.logout_delivery.activities import LogoutDeliveryActivities

DELIVERY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
)


@workflow.defn
class LogoutDeliveryWorkflow:
    """Started by the outbox relay when an account's sessions end; its history holds IDs only."""

    @workflow.run
    async def run(self, notice: LogoutNotice) -> LogoutDelivered:
        try:
            answered = await workflow.execute_activity_method(
                LogoutDeliveryActivities.post_logout_token,
                LogoutAttempt(
                    portal=notice.portal,
                    client_pk=notice.client_pk,
                    user_id=notice.user_id,
                    sid=notice.sid,
                ),
                start_to_close_timeout=timedelta(seconds=30),
                schedule_to_close_timeout=timedelta(seconds=notice.deadline_seconds),
                retry_policy=DELIVERY_RETRY,
                summary="POST logout token",
            )
        except ActivityError:
            workflow.logger.warning("back-channel logout not delivered before its deadline")
            return LogoutDelivered(outcome=DeliveryOutcome.GAVE_UP)
        return LogoutDelivered(outcome=answered.outcome)
