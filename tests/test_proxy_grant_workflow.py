"""The proxy grant process on the time-skipping server, activities mocked: an invitation is
accepted or expires; a request waits for the adult's own approval or for staff (overdue, then
expired); once in force, the grant's timers fire at the child's adolescent birthday (limited),
at majority (ended, the new adult invited to register), at the end date, and at the adult's
renewal (reminders 30 and 7 days before, then lapsed unless renewed); a revoke ends it. The
birthdays run once more with the real activities, database and SMTP."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta

import pytest
from sqlalchemy import select
from temporalio import activity
from temporalio.worker import Worker

from mail.mailer import Mailer
from portal.config import load_portals
from portal.models import AuditEvent, ClinicalRecord, ProxyGrant, User
from processes.proxy_grant import service
from processes.proxy_grant.activities import (
    GrantMail,
    GrantMailed,
    GrantSettling,
    GrantState,
    ProxyGrantActivities,
)
from processes.proxy_grant.steps import add_years
from processes.proxy_grant.vocabulary import (
    Decision,
    GrantAccepted,
    GrantRenewed,
    GrantRevoked,
    Origin,
    ProxyGrantStart,
    ReviewDecision,
    Step,
    SubjectDecision,
)
from processes.proxy_grant.workflows import ProxyGrantWorkflow
from tests.fixtures.waiting import wait_until_async


@dataclass
class FakeSideEffects:
    mails: list[GrantMail] = field(default_factory=list)
    settled: list[GrantSettling] = field(default_factory=list)
    status: Step = Step.INVITED

    def activities(self):
        @activity.defn(name="send_grant_mail")
        async def send_grant_mail(request: GrantMail) -> GrantMailed:
            self.mails.append(request)
            return GrantMailed(sent=True)

        @activity.defn(name="settle_grant")
        async def settle_grant(request: GrantSettling) -> GrantState:
            self.settled.append(request)
            if self.status in request.sources:
                self.status = request.status
            return GrantState(status=self.status)

        return [send_grant_mail, settle_grant]

    def sent(self) -> list[tuple[str, str]]:
        return [(m.kind, m.audience) for m in self.mails]


async def reaches(handle, step: Step) -> None:
    async def there() -> bool:
        return (await handle.query(ProxyGrantWorkflow.get_status)).step == step

    await wait_until_async(there, what=f"the grant to reach {step}")


async def mailed(effects: FakeSideEffects, kind_and_audience: tuple[str, str]) -> None:
    """Waits for an e-mail the workflow sends after entering its step."""

    async def sent() -> bool:
        return kind_and_audience in effects.sent()

    await wait_until_async(sent, what=f"the {kind_and_audience} e-mail")


@pytest.fixture
async def grants(time_skipping_env):
    effects = FakeSideEffects()
    queue = f"proxy-grant-{uuid.uuid4().hex[:8]}"
    async with Worker(
        time_skipping_env.client,
        task_queue=queue,
        workflows=[ProxyGrantWorkflow],
        activities=effects.activities(),
    ):

        async def start(**fields):
            payload = ProxyGrantStart(portal="patient", grant_id=7, **fields)
            return await time_skipping_env.client.start_workflow(
                ProxyGrantWorkflow.run,
                payload,
                id=f"proxy/patient/{uuid.uuid4().hex[:10].upper()}",
                task_queue=queue,
            )

        yield start, effects, time_skipping_env


async def today(env) -> date:
    return (await env.get_current_time()).date()


async def test_an_accepted_invitation_is_in_force_until_the_subject_revokes_it(grants):
    start, effects, _ = grants
    handle = await start(origin=Origin.INVITATION)
    await reaches(handle, Step.INVITED)
    await mailed(effects, ("invitation", "proxy"))
    assert effects.sent() == [("invitation", "proxy")]
    assert effects.mails[0].lifetime_hours == 72
    effects.status = Step.ACTIVE
    await handle.signal(ProxyGrantWorkflow.accept, GrantAccepted(proxy_user_id=4))
    await reaches(handle, Step.ACTIVE)
    effects.status = Step.REVOKED
    await handle.signal(ProxyGrantWorkflow.revoke, GrantRevoked(by="user:3"))
    assert (await handle.result()).status == Step.REVOKED
    assert effects.sent()[1:] == [
        ("active", "proxy"),
        ("active", "subject"),
        ("ended", "proxy"),
        ("ended", "subject"),
    ]


async def test_an_unanswered_invitation_expires_after_the_link_lifetime(grants):
    start, effects, env = grants
    handle = await start(origin=Origin.INVITATION)
    await reaches(handle, Step.INVITED)
    await env.sleep(timedelta(hours=71))
    assert (await handle.query(ProxyGrantWorkflow.get_status)).step == Step.INVITED
    assert (await handle.result()).status == Step.EXPIRED
    assert effects.settled[-1].status == Step.EXPIRED


async def test_an_adult_who_declines_ends_the_request_and_the_proxy_is_told(grants):
    start, effects, _ = grants
    effects.status = Step.AWAITING_SUBJECT
    handle = await start(origin=Origin.REQUEST)
    await reaches(handle, Step.AWAITING_SUBJECT)
    effects.status = Step.DECLINED
    await handle.signal(
        ProxyGrantWorkflow.decide_as_subject, SubjectDecision(decision=Decision.DECLINE)
    )
    assert (await handle.result()).status == Step.DECLINED
    assert effects.sent() == [("consent", "subject"), ("declined", "proxy")]


async def test_staff_review_turns_overdue_at_the_sla_and_expires_at_the_final_deadline(grants):
    start, effects, env = grants
    effects.status = Step.IN_REVIEW
    handle = await start(origin=Origin.REQUEST, review=True, adult_subject=False)
    await reaches(handle, Step.IN_REVIEW)
    await env.sleep(timedelta(hours=25))
    status = await handle.query(ProxyGrantWorkflow.get_status)
    assert status.overdue and status.step == Step.IN_REVIEW
    await mailed(effects, ("review_overdue", "reviewers"))
    assert (await handle.result()).status == Step.EXPIRED


async def test_staff_denial_tells_the_proxy(grants):
    start, effects, _ = grants
    effects.status = Step.IN_REVIEW
    handle = await start(origin=Origin.REQUEST, review=True)
    await reaches(handle, Step.IN_REVIEW)
    effects.status = Step.DENIED
    await handle.signal(
        ProxyGrantWorkflow.review_decision,
        ReviewDecision(decision=Decision.DECLINE, reviewer="staff:rosa", reason="sin documento"),
    )
    assert (await handle.result()).status == Step.DENIED
    assert effects.sent() == [("denied", "proxy")]


async def test_a_child_s_grant_is_limited_at_the_adolescent_birthday_and_ends_at_majority(grants):
    start, effects, env = grants
    now = await today(env)
    born = add_years(now + timedelta(days=30), -12)
    effects.status = Step.IN_REVIEW
    handle = await start(
        origin=Origin.REQUEST,
        review=True,
        adult_subject=False,
        age_bound=True,
        birth_date=born.isoformat(),
    )
    await reaches(handle, Step.IN_REVIEW)
    effects.status = Step.ACTIVE
    await handle.signal(
        ProxyGrantWorkflow.review_decision,
        ReviewDecision(decision=Decision.APPROVE, reviewer="staff:rosa"),
    )
    await reaches(handle, Step.ACTIVE)
    await env.sleep(timedelta(days=29))
    assert (await handle.query(ProxyGrantWorkflow.get_status)).step == Step.ACTIVE
    await env.sleep(timedelta(days=2))
    await reaches(handle, Step.LIMITED)
    await mailed(effects, ("limited", "subject"))
    assert effects.sent()[-2:] == [("limited", "proxy"), ("limited", "subject")]
    assert (await handle.result()).status == Step.MAJORITY
    assert effects.sent()[-2:] == [("majority", "proxy"), ("register_invite", "subject")]
    majority = add_years(born, 18)
    assert (await env.get_current_time()).date() >= majority


async def test_a_grant_for_an_older_child_is_limited_at_once(grants):
    start, effects, _ = grants
    born = add_years(date.today(), -14)
    effects.status = Step.ACTIVE
    handle = await start(
        origin=Origin.INVITATION,
        adult_subject=False,
        age_bound=True,
        birth_date=born.isoformat(),
    )
    await handle.signal(ProxyGrantWorkflow.accept, GrantAccepted(proxy_user_id=4))
    await reaches(handle, Step.LIMITED)


async def test_a_birthday_passed_while_the_request_waited_for_staff_limits_it_at_approval(grants):
    start, effects, env = grants
    born = add_years((await today(env)) + timedelta(days=3), -12)
    effects.status = Step.IN_REVIEW
    handle = await start(
        origin=Origin.REQUEST,
        review=True,
        adult_subject=False,
        age_bound=True,
        birth_date=born.isoformat(),
        review_sla_hours=24 * 5,
        review_final_hours=24 * 10,
    )
    await reaches(handle, Step.IN_REVIEW)
    await env.sleep(timedelta(days=4))
    assert (await handle.query(ProxyGrantWorkflow.get_status)).step == Step.IN_REVIEW
    effects.status = Step.ACTIVE
    await handle.signal(
        ProxyGrantWorkflow.review_decision,
        ReviewDecision(decision=Decision.APPROVE, reviewer="staff:rosa"),
    )
    await reaches(handle, Step.LIMITED)
    await mailed(effects, ("limited", "subject"))
    assert effects.sent() == [
        ("active", "proxy"),
        ("active", "subject"),
        ("limited", "proxy"),
        ("limited", "subject"),
    ]


async def test_an_adult_s_grant_sends_renewal_reminders_and_lapses_unless_renewed(grants):
    start, effects, env = grants
    effects.status = Step.AWAITING_SUBJECT
    handle = await start(origin=Origin.REQUEST, renewal_months=12)
    await reaches(handle, Step.AWAITING_SUBJECT)
    effects.status = Step.ACTIVE
    await handle.signal(
        ProxyGrantWorkflow.decide_as_subject, SubjectDecision(decision=Decision.APPROVE)
    )
    await reaches(handle, Step.ACTIVE)
    await env.sleep(timedelta(days=340))
    reminders = [m for m in effects.mails if m.kind == "renewal_reminder"]
    assert len(reminders) == 1
    await handle.signal(ProxyGrantWorkflow.renew, GrantRenewed(by="user:3"))
    await env.sleep(timedelta(days=60))
    assert (await handle.query(ProxyGrantWorkflow.get_status)).step == Step.ACTIVE
    renew_dates = [s.renew_by for s in effects.settled if s.renew_by]
    assert len(renew_dates) == 2 and renew_dates[0] < renew_dates[1]
    assert (await handle.result()).status == Step.LAPSED
    reminders = [m for m in effects.mails if m.kind == "renewal_reminder"]
    assert len(reminders) == 3
    assert effects.sent()[-2:] == [("ended", "proxy"), ("ended", "subject")]


async def test_a_grant_ends_on_its_end_date(grants):
    start, effects, env = grants
    ends = (await today(env)) + timedelta(days=10)
    effects.status = Step.ACTIVE
    handle = await start(origin=Origin.INVITATION, ends_on=ends.isoformat())
    await handle.signal(ProxyGrantWorkflow.accept, GrantAccepted(proxy_user_id=4))
    assert (await handle.result()).status == Step.ENDED
    assert (await env.get_current_time()).date() >= ends
    assert effects.settled[-1].status == Step.ENDED


async def test_a_revoke_that_won_the_race_with_the_birthday_is_what_the_grant_says(grants):
    start, effects, env = grants
    born = add_years((await today(env)) + timedelta(days=5), -12)
    effects.status = Step.ACTIVE
    handle = await start(
        origin=Origin.INVITATION, adult_subject=False, age_bound=True, birth_date=born.isoformat()
    )
    await handle.signal(ProxyGrantWorkflow.accept, GrantAccepted(proxy_user_id=4))
    await reaches(handle, Step.ACTIVE)
    effects.status = Step.REVOKED
    assert (await handle.result()).status == Step.REVOKED
    assert ("limited", "proxy") not in effects.sent()


async def test_the_real_activities_limit_a_child_s_grant_at_the_birthday_and_end_it_at_majority(
    time_skipping_env, settings, session_factory, mailbox, task_queue
):
    """The same timers with the real activities, database and SMTP: each birthday changes the
    row once, with its audit line, and tells the parent and the child's record address."""
    env = time_skipping_env
    born = add_years((await today(env)) + timedelta(days=10), -12)
    with session_factory() as session:
        record = ClinicalRecord(
            portal="patient",
            record_number="HC-7",
            full_name="Sofía Pérez",
            email="familia@example.org",
            date_of_birth=born.isoformat(),
        )
        parent = User(
            portal="patient",
            username="ana.perez",
            email="ana@example.org",
            full_name="Ana Pérez",
            password_hash="x",
            status="active",
            role="patient",
        )
        session.add_all([record, parent])
        session.flush()
        grant = ProxyGrant(
            reference="XTIME0001",
            portal="patient",
            workflow_id="proxy/patient/XTIME0001",
            origin="request",
            status="in_review",
            subject_record_id=record.id,
            proxy_user_id=parent.id,
            relationship="parent",
            access="manage",
        )
        session.add(grant)
        session.commit()
        grant_id = grant.id
    real = ProxyGrantActivities(
        session_factory, Mailer(settings), load_portals(settings.portals_file)
    )

    def status() -> str:
        with session_factory() as session:
            return session.get(ProxyGrant, grant_id).status

    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[ProxyGrantWorkflow],
        activities=[real.settle_grant, real.send_grant_mail],
        activity_executor=ThreadPoolExecutor(2),
    ):
        handle = await env.client.start_workflow(
            ProxyGrantWorkflow.run,
            ProxyGrantStart(
                portal="patient",
                grant_id=grant_id,
                origin=Origin.REQUEST,
                review=True,
                adult_subject=False,
                age_bound=True,
                birth_date=born.isoformat(),
            ),
            id="proxy/patient/XTIME0001",
            task_queue=task_queue,
        )
        await reaches(handle, Step.IN_REVIEW)
        with session_factory() as session:
            assert service.review(
                session,
                session.get(ProxyGrant, grant_id),
                reviewer="staff:rosa",
                decision=Decision.APPROVE,
                reason="",
            )
        await handle.signal(
            ProxyGrantWorkflow.review_decision,
            ReviewDecision(decision=Decision.APPROVE, reviewer="staff:rosa"),
        )
        await reaches(handle, Step.ACTIVE)
        await env.sleep(timedelta(days=11))
        await reaches(handle, Step.LIMITED)
        assert status() == "limited"
        mailbox.wait_for("ana@example.org", "ahora es limitado")
        mailbox.wait_for("familia@example.org", "ahora es limitado")
        assert (await handle.result()).status == Step.MAJORITY
    assert status() == "majority"
    mailbox.wait_for("ana@example.org", "terminó")
    mailbox.wait_for("familia@example.org", "Cree su propio usuario")
    with session_factory() as session:
        actions = session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.workflow_id == "proxy/patient/XTIME0001")
            .where(AuditEvent.action.like("proxy.%"))
        ).all()
    assert actions == ["proxy.review_approved", "proxy.limited", "proxy.majority"]


async def test_a_grant_revoked_in_the_database_before_majority_sends_no_majority_mail(grants):
    start, effects, env = grants
    born = add_years((await today(env)) + timedelta(days=2), -18)
    effects.status = Step.ACTIVE
    handle = await start(origin=Origin.INVITATION, adult_subject=False, birth_date=born.isoformat())
    await handle.signal(ProxyGrantWorkflow.accept, GrantAccepted(proxy_user_id=4))
    await reaches(handle, Step.ACTIVE)
    effects.status = Step.REVOKED
    assert (await handle.result()).status == Step.REVOKED
    assert ("majority", "proxy") not in effects.sent()
    assert ("register_invite", "subject") not in effects.sent()
