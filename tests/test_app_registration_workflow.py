"""The app registration process on the time-skipping server with its real activities, database
and SMTP: the developer is told the application arrived, the checks run, and staff approve
(the client is made and a credentials link e-mailed, no secret in history), deny (the reason is
e-mailed) or let it lapse (reviewers reminded at the SLA, the developer told at the final
deadline); a privacy page that never answers reaches staff as a failed check. One pure unit
test, activities mocked, covers a decision that beat the deadline by a hair."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import timedelta

import pytest
from sqlalchemy import select
from temporalio import activity
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.worker import Worker

from mail.mailer import Mailer
from portal.config import load_portals
from portal.models import AppRegistration, AuditEvent, EmailToken, OidcClient
from processes.app_registration import service
from processes.app_registration.activities import (
    AppCheckRequest,
    AppClientMade,
    AppClientRequest,
    AppMail,
    AppMailed,
    AppRegistrationActivities,
    AppSettling,
    AppState,
    private_address_problem,
)
from processes.app_registration.vocabulary import (
    AppCredentialsStart,
    AppRegistrationStart,
    Check,
    CheckResult,
    ClientType,
    Decided,
    Decision,
    ReviewDecision,
    Step,
)
from processes.app_registration.workflows import AppCredentialsWorkflow, AppRegistrationWorkflow
from tests.fixtures.smtp import body_text, link_in
from tests.fixtures.waiting import wait_until_async

DEVELOPER = "dev@apps.example"


def application(privacy_url: str, **fields) -> service.Application:
    return service.Application(
        app_name=fields.pop("app_name", "Mi Salud App"),
        redirect_uris=fields.pop("redirect_uris", ["https://app.example/callback"]),
        scopes=fields.pop("scopes", ["openid", "fhirUser", "launch/patient", "patient/*.rs"]),
        client_type=fields.pop("client_type", ClientType.CONFIDENTIAL),
        privacy_url=privacy_url,
        contact_name="Dana Dev",
        contact_email=DEVELOPER,
        **fields,
    )


@dataclass
class Run:
    env: object
    session_factory: object
    portal: object
    task_queue: str

    def submit(self, privacy_url: str, **fields) -> AppRegistration:
        with self.session_factory() as session:
            reference = service.submit(session, self.portal, application(privacy_url, **fields))
            return service.application_by_reference(session, reference)

    async def start(self, row: AppRegistration):
        policy = self.portal.policy
        return await self.env.client.start_workflow(
            AppRegistrationWorkflow.run,
            AppRegistrationStart(
                portal=row.portal,
                application_id=row.id,
                review_sla_hours=policy.app_review_sla_hours,
                review_final_hours=policy.app_review_final_hours,
                credentials_link_hours=policy.app_credentials_link_hours,
            ),
            id=row.workflow_id,
            task_queue=self.task_queue,
        )

    def row(self, reference: str) -> AppRegistration:
        with self.session_factory() as session:
            return service.application_by_reference(session, reference)

    async def decide(self, handle, reference: str, decision: Decision, reason: str = "") -> None:
        """What the console does: the service claims the row and owes the signal; here the
        signal goes straight to the process (the time-skipping server has no relay)."""
        with self.session_factory() as session:
            row = service.application_by_reference(session, reference)
            assert service.decide(session, row, "staff:rosa", decision, reason) == Decided.DONE
        await handle.signal(
            AppRegistrationWorkflow.review_decision,
            ReviewDecision(decision=decision, reviewer="staff:rosa"),
        )


@pytest.fixture
def private_urls_allowed() -> bool:
    return True


@pytest.fixture
async def apps(time_skipping_env, settings, session_factory, task_queue, private_urls_allowed):
    portals = load_portals(settings.portals_file)
    settings = replace(settings, app_check_private_urls=private_urls_allowed)
    real = AppRegistrationActivities(session_factory, Mailer(settings), portals)
    async with Worker(
        time_skipping_env.client,
        task_queue=task_queue,
        workflows=[AppRegistrationWorkflow, AppCredentialsWorkflow],
        activities=[
            real.run_check,
            real.settle_application,
            real.create_client,
            real.send_app_mail,
        ],
        activity_executor=ThreadPoolExecutor(2),
    ):
        yield Run(time_skipping_env, session_factory, portals["patient"], task_queue)


async def reaches(handle, step: Step) -> None:
    async def there() -> bool:
        return (await handle.query(AppRegistrationWorkflow.get_status)).step == step

    await wait_until_async(there, what=f"the application to reach {step}")


def actions(session_factory, workflow_id: str) -> list[str]:
    with session_factory() as session:
        return list(
            session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.workflow_id == workflow_id)
                .where(AuditEvent.action.like("app_registration.%"))
                .order_by(AuditEvent.id)
            )
        )


async def test_an_approved_app_gets_its_client_and_a_credentials_link_and_no_secret_in_history(
    apps, mailbox, privacy_page
):
    row = apps.submit(privacy_page)
    handle = await apps.start(row)
    await reaches(handle, Step.IN_REVIEW)
    assert "Mi Salud App" in str(mailbox.wait_for(DEVELOPER, "Recibimos")["Subject"])
    checks = apps.row(row.reference).checks
    assert [(c["check"], c["passed"]) for c in checks] == [
        (Check.REDIRECT_URIS, True),
        (Check.PRIVACY_POLICY, True),
    ]
    await apps.decide(handle, row.reference, Decision.APPROVE)
    outcome = await handle.result()
    assert outcome.status == Step.REGISTERED
    with apps.session_factory() as session:
        client = session.get(OidcClient, outcome.client_pk)
        assert client.portal == "patient"
        assert not client.public and client.secret_hash is None, "no secret before its page"
        assert client.redirect_uris == ["https://app.example/callback"]
        assert client.approved_scopes == ["openid", "fhirUser", "launch/patient", "patient/*.rs"]
        stored = session.scalar(select(EmailToken).where(EmailToken.workflow_id == row.workflow_id))
        assert stored.purpose == "app_credentials" and stored.used_at is None
    assert apps.row(row.reference).status == Step.REGISTERED
    link = link_in(mailbox.wait_for(DEVELOPER, "fue aprobada"), "/developers/apps/credentials/")
    raw = link.rsplit("/", 1)[-1]
    history = (await handle.fetch_history()).to_json()
    assert raw not in history and "secret" not in history.lower()
    assert actions(apps.session_factory, row.workflow_id) == [
        "app_registration.submitted",
        "app_registration.in_review",
        "app_registration.approved",
        "app_registration.client_created",
        "app_registration.registered",
    ]


async def test_a_denial_e_mails_the_reason_and_makes_no_client(apps, mailbox, privacy_page):
    row = apps.submit(privacy_page)
    handle = await apps.start(row)
    await reaches(handle, Step.IN_REVIEW)
    await apps.decide(
        handle,
        row.reference,
        Decision.DENY,
        "La política de privacidad no habla de datos de salud.",
    )
    assert (await handle.result()).status == Step.DENIED
    denial = mailbox.wait_for(DEVELOPER, "no fue aprobada")
    assert "no habla de datos de salud" in body_text(denial)
    with apps.session_factory() as session:
        assert session.scalar(select(OidcClient.id)) is None
    assert apps.row(row.reference).status == Step.DENIED


async def test_an_unreviewed_app_reminds_reviewers_at_the_sla_and_lapses_at_the_final_deadline(
    apps, mailbox, privacy_page
):
    row = apps.submit(privacy_page)
    handle = await apps.start(row)
    await reaches(handle, Step.IN_REVIEW)
    assert (await handle.result()).status == Step.LAPSED
    reminder = mailbox.wait_for("ayuda@clinica.example", "espera revisión")
    assert f"/staff/apps/{row.reference}" in body_text(reminder)
    lapsed = mailbox.wait_for(DEVELOPER, "venció")
    assert "/developers/apps/new" in body_text(lapsed)
    assert mailbox.messages.index(reminder) < mailbox.messages.index(lapsed)
    stored = apps.row(row.reference)
    assert stored.status == Step.LAPSED and stored.overdue and stored.ended_at is not None
    with apps.session_factory() as session:
        assert service.decide(session, stored, "staff:rosa", Decision.APPROVE, "") == (
            Decided.NOT_WAITING
        )
    assert actions(apps.session_factory, row.workflow_id)[-2:] == [
        "app_registration.review_overdue",
        "app_registration.lapsed",
    ]


async def test_a_privacy_page_that_never_answers_reaches_staff_as_a_failed_check(
    apps, mailbox, unreachable_page
):
    row = apps.submit(unreachable_page, redirect_uris=["http://127.0.0.1/callback"])
    handle = await apps.start(row)
    await apps.env.sleep(timedelta(minutes=1))
    await reaches(handle, Step.IN_REVIEW)
    checks = {c["check"]: c for c in apps.row(row.reference).checks}
    assert checks[Check.REDIRECT_URIS]["passed"]
    assert not checks[Check.PRIVACY_POLICY]["passed"]
    assert "unreachable" in checks[Check.PRIVACY_POLICY]["detail"]
    status = await handle.query(AppRegistrationWorkflow.get_status)
    assert [c.passed for c in status.checks] == [True, False]
    await apps.decide(handle, row.reference, Decision.APPROVE)
    assert (await handle.result()).status == Step.REGISTERED


@pytest.mark.parametrize("private_urls_allowed", [False])
async def test_a_privacy_url_on_a_private_address_fails_its_check_without_being_fetched(
    apps, watched_privacy_page
):
    row = apps.submit(watched_privacy_page.url)
    handle = await apps.start(row)
    await reaches(handle, Step.IN_REVIEW)
    privacy = next(c for c in apps.row(row.reference).checks if c["check"] == Check.PRIVACY_POLICY)
    assert not privacy["passed"]
    assert privacy["detail"] == "resolves to a non-public address (127.0.0.1)"
    assert watched_privacy_page.visits == []


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("http://127.0.0.1:8080/p", True),
        ("http://localhost/p", True),
        ("https://10.1.2.3/p", True),
        ("https://192.168.0.9/p", True),
        ("https://169.254.169.254/latest/meta-data", True),
        ("https://[::1]/p", True),
        ("https://[::ffff:10.0.0.1]/p", True),
        ("https://0.0.0.0/p", True),
        ("https://8.8.8.8/privacy", False),
        ("https://[2001:4860:4860::8888]/privacy", False),
    ],
)
def test_only_public_addresses_may_be_fetched_by_the_privacy_check(url, refused):
    assert (private_address_problem(url) is not None) is refused


async def test_an_insecure_redirect_uri_fails_its_check_and_cannot_be_approved(apps, privacy_page):
    row = apps.submit(privacy_page, redirect_uris=["http://app.example/callback"])
    handle = await apps.start(row)
    await reaches(handle, Step.IN_REVIEW)
    stored = apps.row(row.reference)
    redirect = next(c for c in stored.checks if c["check"] == Check.REDIRECT_URIS)
    assert not redirect["passed"] and "not https" in redirect["detail"]
    with apps.session_factory() as session:
        assert (
            service.decide(session, stored, "staff:rosa", Decision.APPROVE, "")
            == Decided.INSECURE_REDIRECT
        )
    assert apps.row(row.reference).status == Step.IN_REVIEW
    await apps.decide(handle, row.reference, Decision.DENY, "Use https.")
    assert (await handle.result()).status == Step.DENIED


@dataclass
class FakeSideEffects:
    """Activities for the pure unit test: the database's answer is `status`."""

    status: Step = Step.CHECKING
    mails: list[str] = field(default_factory=list)
    made: list[int] = field(default_factory=list)

    def activities(self):
        @activity.defn(name="run_check")
        async def run_check(request: AppCheckRequest) -> CheckResult:
            return CheckResult(check=request.check, passed=True)

        @activity.defn(name="settle_application")
        async def settle_application(request: AppSettling) -> AppState:
            if self.status in request.sources:
                self.status = request.status
            return AppState(status=self.status)

        @activity.defn(name="create_client")
        async def create_client(request: AppClientRequest) -> AppClientMade:
            self.made.append(request.application_id)
            return AppClientMade(client_pk=7)

        @activity.defn(name="send_app_mail")
        async def send_app_mail(request: AppMail) -> AppMailed:
            self.mails.append(request.kind)
            return AppMailed()

        return [run_check, settle_application, create_client, send_app_mail]


async def test_a_decision_claimed_just_before_the_deadline_wins_over_the_lapse(
    time_skipping_env, task_queue
):
    env, effects = time_skipping_env, FakeSideEffects()
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[AppRegistrationWorkflow, AppCredentialsWorkflow],
        activities=effects.activities(),
    ):
        handle = await env.client.start_workflow(
            AppRegistrationWorkflow.run,
            AppRegistrationStart(
                portal="patient",
                application_id=3,
                review_sla_hours=1,
                review_final_hours=2,
                credentials_link_hours=72,
            ),
            id="app-registration/RACE00001",
            task_queue=task_queue,
        )
        await reaches(handle, Step.IN_REVIEW)
        effects.status = Step.APPROVED
        await env.sleep(timedelta(hours=3))
        assert "lapsed" not in effects.mails
        await handle.signal(
            AppRegistrationWorkflow.review_decision,
            ReviewDecision(decision=Decision.APPROVE, reviewer="staff:rosa"),
        )
        outcome = await handle.result()
    assert outcome.status == Step.REGISTERED and outcome.client_pk == 7
    assert effects.mails == ["received", "review_overdue", "credentials"]
    assert effects.made == [3]


async def test_a_new_credentials_link_is_mailed_once_and_repeats_start_nothing_until_the_quiet_ends(
    apps, mailbox, privacy_page
):
    row = apps.submit(privacy_page)
    handle = await apps.start(row)
    await reaches(handle, Step.IN_REVIEW)
    await apps.decide(handle, row.reference, Decision.APPROVE)
    await handle.result()
    first_link = link_in(
        mailbox.wait_for(DEVELOPER, "fue aprobada"), "/developers/apps/credentials/"
    )
    start = AppCredentialsStart(
        portal="patient",
        application_id=row.id,
        application_workflow_id=row.workflow_id,
        credentials_link_hours=72,
        quiet_minutes=15,
    )
    workflow_id = f"app-credentials/{row.reference}"
    asking = await apps.env.client.start_workflow(
        AppCredentialsWorkflow.run, start, id=workflow_id, task_queue=apps.task_queue
    )

    async def mailed() -> list:
        return [m for m in mailbox.to(DEVELOPER) if "secreto nuevo" in m["Subject"]]

    await wait_until_async(mailed, what="the new credentials e-mail")
    new_link = link_in((await mailed())[0], "/developers/apps/credentials/")
    assert new_link != first_link
    with apps.session_factory() as session:
        tokens = session.scalars(
            select(EmailToken).where(EmailToken.workflow_id == row.workflow_id)
        ).all()
        assert len(tokens) == 2 and all(t.purpose == "app_credentials" for t in tokens)
        assert tokens[0].revoked_at is not None, "the newer link replaces the unused older one"
    with pytest.raises(WorkflowAlreadyStartedError):
        await apps.env.client.start_workflow(
            AppCredentialsWorkflow.run, start, id=workflow_id, task_queue=apps.task_queue
        )
    assert (await asking.result()).mailed
    history = (await asking.fetch_history()).to_json()
    assert new_link.rsplit("/", 1)[-1] not in history and DEVELOPER not in history
    assert len([m for m in mailbox.to(DEVELOPER) if "secreto nuevo" in m["Subject"]]) == 1
