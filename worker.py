"""The Temporal worker: every workflow and activity of Acceso on one task queue."""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import CancelledError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    Worker,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.audit import AuditActivities
from mail.activities import MailActivities
from mail.mailer import Mailer
from portal.config import load_portals
from portal.db import make_engine, make_session_factory
from portal.logs import configure_logging
from portal.metrics import ACTIVITY_OUTCOMES, WorkerMetricsServer, worker_runtime
from portal.safety import refuse_unsafe_start
from portal.settings import Settings, load_settings
from processes.account_notice.workflows import AccountNoticeWorkflow, SignInNoticeWorkflow
from processes.app_registration.activities import AppRegistrationActivities
from processes.app_registration.workflows import AppCredentialsWorkflow, AppRegistrationWorkflow
from processes.cleanup.activities import CleanupActivities
from processes.cleanup.service import ensure_cleanup_schedule
from processes.cleanup.workflows import CleanupWorkflow
from processes.email_change.activities import EmailChangeActivities
from processes.email_change.workflows import EmailChangeWorkflow
from processes.invitation.activities import InvitationActivities
from processes.invitation.workflows import InvitationWorkflow
from processes.logout_delivery.activities import LogoutDeliveryActivities
from processes.logout_delivery.workflows import LogoutDeliveryWorkflow
from processes.proxy_grant.activities import ProxyGrantActivities
from processes.proxy_grant.workflows import ProxyGrantWorkflow
from processes.recovery.activities import RecoveryActivities
from processes.recovery.workflows import PasswordResetWorkflow, UsernameReminderWorkflow
from processes.registration.activities import RecordActivities, RegistrationActivities
from processes.registration.workflows import RegistrationWorkflow
from processes.staff_invitation.activities import StaffInvitationActivities
from processes.staff_invitation.workflows import StaffInvitationWorkflow
from temporal.client import connect
from temporal.outbox.prompt import LoopBridge, relay_after_commit
from temporal.outbox.relay import OutboxRelay, settle_seconds

WORKFLOWS = [
    RegistrationWorkflow,
    PasswordResetWorkflow,
    UsernameReminderWorkflow,
    InvitationWorkflow,
    AccountNoticeWorkflow,
    SignInNoticeWorkflow,
    StaffInvitationWorkflow,
    LogoutDeliveryWorkflow,
    EmailChangeWorkflow,
    CleanupWorkflow,
    ProxyGrantWorkflow,
    AppRegistrationWorkflow,
    AppCredentialsWorkflow,
]
# How long a stopping worker lets running activities finish before cancelling them; anything
# still unfinished is retried by another worker once its start-to-close timeout lapses.
SHUTDOWN_GRACE = timedelta(seconds=10)


def activities_for(settings: Settings, session_factory) -> list:
    """The activity methods, bound to their session factory and mailer."""
    mailer = Mailer(settings)
    portals = load_portals(settings.portals_file)
    registrations = RegistrationActivities(session_factory)
    recovery = RecoveryActivities(session_factory, mailer)
    mail = MailActivities(session_factory, mailer, portals)
    records = RecordActivities(session_factory, mailer, portals)
    audit = AuditActivities(session_factory)
    invitations = InvitationActivities(session_factory, mailer)
    staff_invitations = StaffInvitationActivities(session_factory, mailer)
    logout_delivery = LogoutDeliveryActivities(session_factory, settings)
    email_change = EmailChangeActivities(session_factory, mailer, portals)
    cleanup = CleanupActivities(session_factory)
    proxy_grants = ProxyGrantActivities(session_factory, mailer, portals)
    app_registrations = AppRegistrationActivities(session_factory, mailer, portals)
    return [
        registrations.record_step,
        registrations.close_confirmation,
        registrations.end_registration,
        registrations.apply_review,
        recovery.apply_reset,
        mail.send_link,
        mail.send_notice,
        mail.send_username_reminder,
        records.match_member,
        records.open_support_case,
        records.resolve_support_case,
        audit.record_event,
        invitations.send_invitation,
        invitations.end_invitation,
        staff_invitations.send_staff_invitation,
        staff_invitations.end_staff_invitation,
        logout_delivery.post_logout_token,
        email_change.send_change_mail,
        email_change.apply_change,
        email_change.end_change,
        cleanup.delete_expired_batch,
        proxy_grants.settle_grant,
        proxy_grants.send_grant_mail,
        app_registrations.run_check,
        app_registrations.settle_application,
        app_registrations.create_client,
        app_registrations.send_app_mail,
    ]


WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_all_modules()
)
"""The sandbox still refuses non-deterministic calls, but no longer re-imports the workflow
modules for every new run: that re-import was a quarter of the worker's CPU under load, and
these modules hold nothing but constants, dataclasses and workflow classes."""


def build_worker(
    client: Client, settings: Settings, session_factory, task_queue: str | None = None
) -> Worker:
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=WORKFLOWS,
        workflow_runner=WORKFLOW_RUNNER,
        activities=activities_for(settings, session_factory),
        activity_executor=ThreadPoolExecutor(settings.worker_max_concurrent_activities),
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
        max_cached_workflows=settings.worker_max_cached_workflows,
        graceful_shutdown_timeout=SHUTDOWN_GRACE,
        interceptors=[ActivityOutcomeMetrics()],
    )


class ActivityOutcomeMetrics(Interceptor):
    """Counts every activity attempt by activity and outcome for the worker's metrics."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _CountOutcomes(next)


class _CountOutcomes(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput):
        name = activity.info().activity_type
        try:
            result = await self.next.execute_activity(input)
        except (asyncio.CancelledError, CancelledError):
            ACTIVITY_OUTCOMES.labels(activity=name, outcome="cancelled").inc()
            raise
        except BaseException:
            ACTIVITY_OUTCOMES.labels(activity=name, outcome="failed").inc()
            raise
        ACTIVITY_OUTCOMES.labels(activity=name, outcome="ok").inc()
        return result


async def run_worker(settings: Settings) -> None:
    session_factory = make_session_factory(make_engine(settings.database_url))
    log = logging.getLogger("acceso.worker")
    runtime, metrics = None, None
    if settings.worker_metrics_address:
        runtime, sdk_metrics_url = worker_runtime()
        metrics = WorkerMetricsServer(settings.worker_metrics_address, sdk_metrics_url).start()
        log.info("worker metrics on http://%s/metrics", settings.worker_metrics_address)
    client = await connect(settings, runtime)
    worker = build_worker(client, settings, session_factory)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "worker polling task queue %s at %s (activities %d, workflow tasks %d, cached %d)",
        settings.task_queue,
        settings.temporal_address,
        settings.worker_max_concurrent_activities,
        settings.worker_max_concurrent_workflow_tasks,
        settings.worker_max_cached_workflows,
    )
    relay_after_commit(session_factory, LoopBridge(client, loop, settings))
    relay = OutboxRelay(
        client, session_factory, settings.task_queue, settle_seconds=settle_seconds(session_factory)
    )
    try:
        if await ensure_cleanup_schedule(client, settings.task_queue):
            log.info("made the hourly schedule that deletes expired rows")
    except Exception:
        log.warning(
            "could not make the cleanup schedule; the next worker start tries again",
            exc_info=True,
        )
    async with worker:
        relaying = asyncio.create_task(relay.run(stop))
        await stop.wait()
        await relaying
        log.info("stopping: finishing running activities (grace %s)", SHUTDOWN_GRACE)
    if metrics is not None:
        metrics.stop()
    log.info("worker stopped")


def main() -> None:
    settings = load_settings()
    refuse_unsafe_start(settings, "acceso worker")
    configure_logging()
    asyncio.run(run_worker(settings))


if __name__ == "__main__":
    main()
