"""Expired rows go away on a timetable: an hourly Temporal Schedule starts a sweep that deletes,
table by table and in short batches, every row that has been over for the grace period, and
nothing that is live or only just over."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from temporalio import activity
from temporalio.client import ScheduleIntervalSpec
from temporalio.worker import Worker

from portal.models import (
    EmailToken,
    FormSubmission,
    OidcAccessToken,
    OidcAuthorizationCode,
    OidcClient,
    OidcGrant,
    OidcRefreshToken,
    OutboxMessage,
    RateLimitCounter,
    SentMail,
    User,
    UserSession,
    utcnow,
)
from processes.cleanup.activities import ENDS, CleanupActivities
from processes.cleanup.service import ensure_cleanup_schedule
from processes.cleanup.vocabulary import (
    SCHEDULE_ID,
    BatchSwept,
    CleanupRequest,
    SweepBatch,
    SweptTable,
)
from processes.cleanup.workflows import CleanupWorkflow
from tests.fixtures.waiting import wait_until

LONG_AGO = timedelta(days=30)
LATELY = timedelta(days=1)
AHEAD = timedelta(hours=1)


def seed(session_factory, per_table: int = 3, pending_start: bool = False) -> None:
    """In every swept table: `per_table` rows over for a month, one over since yesterday, one
    live; and, if asked, an outbox row never relayed (no worker may run then: it would start it)."""
    now = utcnow()
    with session_factory() as session:
        user = User(portal="patient", username="ana", email="ana@example.org", role="patient")
        user.password_hash = "x"
        client = OidcClient(name="historia", portal="patient", client_id="historia")
        session.add_all([user, client])
        session.flush()
        grant = OidcGrant(
            id=uuid.uuid4().hex, client_pk=client.id, user_id=user.id, portal="patient",
            scope="openid", auth_time=now,
        )  # fmt: skip
        session.add(grant)
        session.flush()
        ends = [now - LONG_AGO] * per_table + [now - LATELY, now + AHEAD]
        for end in ends:
            key = uuid.uuid4().hex
            session.add_all(
                [
                    OidcAuthorizationCode(
                        code_hash=key,
                        client_pk=client.id,
                        user_id=user.id,
                        portal="patient",
                        redirect_uri="https://historia.example/cb",
                        scope="openid",
                        auth_time=now,
                        expires_at=end,
                    ),  # fmt: skip
                    OidcAccessToken(jti=key, grant_id=grant.id, expires_at=end),
                    OidcRefreshToken(token_hash=key, grant_id=grant.id, expires_at=end),
                    UserSession(id=key, user_id=user.id, expires_at=end),
                    EmailToken(
                        token_hash=key,
                        purpose="confirm",
                        portal="patient",
                        workflow_id="registration/patient/X",
                        expires_at=end,
                    ),  # fmt: skip
                    FormSubmission(key_hash=key, portal="patient", outcome_url="/", created_at=end),
                    OutboxMessage(workflow="W", workflow_id=key, relayed_at=end),
                    RateLimitCounter(key=f"sign_in/{key}", count=3, expires_at=end.timestamp()),
                    SentMail(key=f"registration/patient/X:{key}", sent_at=end),
                ]
            )
        session.add_all(ended_and_live_grants(client.id, user.id, per_table))
        if pending_start:
            session.add(OutboxMessage(workflow="W", workflow_id="never-relayed", relayed_at=None))
        session.commit()


def ended_and_live_grants(client_pk: int, user_id: int, ended: int) -> list:
    """`ended` grants over for a month (revoked, lapsed offline, a sign-in with no token left,
    in turn), and three that are not over: revoked yesterday, offline until next week, and a
    month-old sign-in that still holds a refresh token."""
    now = utcnow()

    def grant(**fields) -> OidcGrant:
        return OidcGrant(
            id=uuid.uuid4().hex, client_pk=client_pk, user_id=user_id, portal="patient",
            scope="openid", auth_time=now, **fields,
        )  # fmt: skip

    kinds = [
        {"revoked_at": now - LONG_AGO, "created_at": now - LONG_AGO},
        {"offline": True, "expires_at": now - LONG_AGO, "created_at": now - 2 * LONG_AGO},
        {"created_at": now - LONG_AGO},
    ]
    rows = [grant(**kinds[n % len(kinds)]) for n in range(ended)]
    holding = grant(created_at=now - LONG_AGO)
    rows += [
        grant(revoked_at=now - LATELY, created_at=now - LONG_AGO),
        grant(offline=True, expires_at=now + timedelta(days=7), created_at=now - LONG_AGO),
        holding,
        OidcRefreshToken(token_hash=uuid.uuid4().hex, grant_id=holding.id, expires_at=now + AHEAD),
    ]
    return rows


def count(session_factory, table: SweptTable) -> int:
    key, _ = ENDS[table]
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(key.class_))


@pytest.mark.dialects
def test_a_batch_deletes_only_rows_over_for_longer_than_the_grace_period(session_factory):
    seed(session_factory, per_table=3, pending_start=True)
    sweeper = CleanupActivities(session_factory)
    for table in SweptTable:
        before = count(session_factory, table)
        first = sweeper.delete_expired_batch(SweepBatch(table=table, batch=2, grace_days=7))
        second = sweeper.delete_expired_batch(SweepBatch(table=table, batch=2, grace_days=7))
        third = sweeper.delete_expired_batch(SweepBatch(table=table, batch=2, grace_days=7))
        assert (first.deleted, second.deleted, third.deleted) == (2, 1, 0), table
        assert count(session_factory, table) == before - 3, table
    with session_factory() as session:
        kept = session.scalars(select(OutboxMessage.workflow_id)).all()
    assert "never-relayed" in kept


async def test_a_sweep_goes_on_while_batches_come_back_full_and_reports_each_table(
    time_skipping_env,
):
    asked: list[SweepBatch] = []

    @activity.defn(name="delete_expired_batch")
    async def delete_expired_batch(sweep: SweepBatch) -> BatchSwept:
        asked.append(sweep)
        full = (
            sweep.table == SweptTable.SESSIONS
            and len([a for a in asked if a.table == sweep.table]) <= 2
        )
        return BatchSwept(deleted=sweep.batch if full else 1)

    queue = f"cleanup-{uuid.uuid4().hex[:8]}"
    async with Worker(
        time_skipping_env.client,
        task_queue=queue,
        workflows=[CleanupWorkflow],
        activities=[delete_expired_batch],
    ):
        report = await time_skipping_env.client.execute_workflow(
            CleanupWorkflow.run,
            CleanupRequest(batch=10),
            id=f"cleanup/expired-rows/run-{uuid.uuid4().hex[:8]}",
            task_queue=queue,
        )
    assert report.deleted[SweptTable.SESSIONS] == 21
    assert all(report.deleted[table] == 1 for table in SweptTable if table != SweptTable.SESSIONS)
    assert len(asked) == len(SweptTable) + 2


def test_the_hourly_schedule_is_made_once_and_its_sweep_empties_what_is_over(
    settings, session_factory, dev_server, background_loop, run_worker
):
    seed(session_factory, per_table=3)
    settings = replace(
        settings, temporal_address=dev_server.client.service_client.config.target_host
    )
    run_worker(settings, session_factory)
    client = dev_server.client
    assert background_loop.run(ensure_cleanup_schedule(client, settings.task_queue)) is True
    handle = client.get_schedule_handle(SCHEDULE_ID)
    try:
        assert background_loop.run(ensure_cleanup_schedule(client, settings.task_queue)) is False
        described = background_loop.run(handle.describe())
        assert described.schedule.spec.intervals == [ScheduleIntervalSpec(every=timedelta(hours=1))]
        background_loop.run(handle.trigger())
        wait_until(
            lambda: count(session_factory, SweptTable.SESSIONS) == 2,
            what="the triggered sweep to delete the expired sessions",
        )
        wait_until(lambda: count(session_factory, SweptTable.RELAYED_OUTBOX) == 2, what="outbox")
        wait_until(
            lambda: count(session_factory, SweptTable.RATE_LIMITS) == 2,
            what="the expired rate-limit windows",
        )
    finally:
        background_loop.run(handle.delete())
