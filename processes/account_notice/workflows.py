"""One notice, one e-mail: a workflow so that an SMTP outage delays it and never drops it."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from processes.account_notice.vocabulary import AccountNotice, NoticeDelivered

with workflow.unsafe.imports_passed_through():
    from mail.activities import MailActivities, NoticeEmail
    from temporal.retry_policies import MAIL_RETRY


@workflow.defn
class AccountNoticeWorkflow:
    """Started by the outbox relay when the web tier records a security change."""

    @workflow.run
    async def run(self, notice: AccountNotice) -> NoticeDelivered:
        result = await workflow.execute_activity_method(
            MailActivities.send_notice,
            NoticeEmail(
                template=notice.kind,
                portal=notice.portal,
                workflow_id=workflow.info().workflow_id,
                send_key=f"{workflow.info().workflow_id}/{workflow.info().run_id}",
                user_id=notice.user_id,
                audience="address" if notice.email else "applicant",
                address=notice.email,
                locale=notice.locale,
                context={"occurred_at": notice.occurred_at, **notice.context},
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=MAIL_RETRY,
            summary=f"e-mail {notice.kind}",
        )
        return NoticeDelivered(sent=result.sent)
