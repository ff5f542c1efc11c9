"""One notice, one e-mail: a workflow so that an SMTP outage delays it and never drops it."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from processes.account_notice.vocabulary import (
    NOT_ME_PATH,
    NOT_ME_PURPOSE,
    SIGN_IN_NOTICE_WORKFLOW,
    STAFF_AUDIENCE,
    STAFF_NOTICE_TEMPLATE,
    AccountNotice,
    NewDeviceNotice,
    NoticeDelivered,
    NoticeKind,
)

with workflow.unsafe.imports_passed_through():
    from mail.activities import LinkEmail, MailActivities, NoticeEmail
    from temporal.retry_policies import MAIL_RETRY


@workflow.defn
class AccountNoticeWorkflow:
    """Started by the outbox relay when the web tier records a security change."""

    @workflow.run
    async def run(self, notice: AccountNotice) -> NoticeDelivered:
        context = {"occurred_at": notice.occurred_at, **notice.context}
        if notice.staff_id is not None:
            template, audience = STAFF_NOTICE_TEMPLATE, STAFF_AUDIENCE
            context["change"] = notice.kind
        else:
            template = notice.kind
            audience = "address" if notice.email else "applicant"
        result = await workflow.execute_activity_method(
            MailActivities.send_notice,
            NoticeEmail(
                template=template,
                portal=notice.portal,
                workflow_id=workflow.info().workflow_id,
                send_key=f"{workflow.info().workflow_id}/{workflow.info().run_id}",
                user_id=notice.user_id,
                staff_id=notice.staff_id,
                audience=audience,
                address=notice.email,
                locale=notice.locale,
                context=context,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=MAIL_RETRY,
            summary=f"e-mail {notice.kind}",
        )
        return NoticeDelivered(sent=result.sent)


@workflow.defn(name=SIGN_IN_NOTICE_WORKFLOW)
class SignInNoticeWorkflow:
    """A sign-in from a new browser: one e-mail whose "not me" link the activity mints."""

    @workflow.run
    async def run(self, notice: NewDeviceNotice) -> NoticeDelivered:
        info = workflow.info()
        await workflow.execute_activity_method(
            MailActivities.send_link,
            LinkEmail(
                template=NoticeKind.NEW_DEVICE_SIGN_IN,
                purpose=NOT_ME_PURPOSE,
                path=NOT_ME_PATH,
                portal=notice.portal,
                workflow_id=info.workflow_id,
                user_id=notice.user_id,
                lifetime_hours=notice.link_hours,
                send_key=f"{info.workflow_id}/{info.run_id}",
                context={
                    "occurred_at": notice.occurred_at,
                    "browser": notice.browser,
                    "system": notice.system,
                },
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=MAIL_RETRY,
            summary="e-mail new_device_sign_in",
        )
        return NoticeDelivered(sent=True)
