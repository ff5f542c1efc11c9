"""A patient's registration lifecycle stays cheap: few history events, its starts and signals
relayed the moment they commit, and an e-mail's failed first try still retried in the open."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace

import pytest
from sqlalchemy import select
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.worker import Worker

from mail.activities import LinkEmail, LinkSent, MailSent, NoticeEmail
from portal.config import Policy
from portal.models import ClinicalRecord, OutboxMessage, Registration
from processes.registration.activities import StepReached
from processes.registration.vocabulary import EmailConfirmed, RegistrationStart
from processes.registration.workflows import RegistrationWorkflow
from temporal.outbox.relay import OutboxRelay
from tests.fixtures.patients import confirm_by_email, register
from tests.fixtures.stack import Stack
from tests.fixtures.waiting import wait_until
from web import create_app
from worker import build_worker

HISTORY_EVENTS_GOAL = 14
PATCH_EVENTS = 2
"""What `workflow.patched` itself writes (its marker, and the SDK's upsert of the
TemporalChangeVersion search attribute): gone once the patch is retired."""


def _workflow_id(session_factory) -> str:
    with session_factory() as session:
        return session.scalar(select(Registration.workflow_id))


def _history(dev_server, background_loop, workflow_id: str):
    handle = dev_server.client.get_workflow_handle(workflow_id)
    background_loop.run(handle.result())
    return background_loop.run(handle.fetch_history())


def test_a_patient_lifecycle_fits_in_fourteen_history_events(clinic, dev_server, background_loop):
    """Submit, link e-mail, click, "user confirmed" e-mail: each e-mail one marker (a local
    activity), one timer for the deadline, and the click's signal recorded once although the
    web process and the worker's relay both deliver it. The patch guarding these changes adds
    two events of its own until it is retired."""
    register(clinic.client)
    confirm_by_email(clinic)
    clinic.mailbox.wait_for("ana@example.org", "Usuario confirmado")

    events = _history(dev_server, background_loop, _workflow_id(clinic.session_factory)).events

    kinds = [event.event_type for event in events]
    named = [EventType.Name(k) for k in kinds]
    assert len(events) - PATCH_EVENTS < HISTORY_EVENTS_GOAL, named
    assert kinds.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED) == 1
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in kinds
    assert kinds[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
    confirmed = [m for m in clinic.mailbox.messages if "Usuario confirmado" in str(m["Subject"])]
    assert len(confirmed) == 1


class CountedRelay(OutboxRelay):
    """The worker's polling relay, counting its passes so the test knows it is asleep."""

    passes = 0

    async def relay_once(self, workflow_ids=None) -> int:
        relayed = await super().relay_once(workflow_ids)
        self.passes += 1
        return relayed


@pytest.fixture
def sleepy_stack(settings, session_factory, mailbox, dev_server, background_loop):
    """The product with its worker's relay polling once an hour: only the web process's own
    relay, right after its commit, can deliver a start or a signal in time."""
    settings = replace(
        settings, temporal_address=dev_server.client.service_client.config.target_host
    )
    client = dev_server.client

    async def build():
        return build_worker(client, settings, session_factory), asyncio.Event()

    worker, stop = background_loop.run(build())
    relay = CountedRelay(client, session_factory, settings.task_queue, poll_seconds=3600)
    running = asyncio.run_coroutine_threadsafe(worker.run(), background_loop.loop)
    relaying = asyncio.run_coroutine_threadsafe(relay.run(stop), background_loop.loop)
    wait_until(lambda: relay.passes >= 1, what="the polling relay's first (empty) pass")
    with session_factory() as session:
        session.add(
            ClinicalRecord(
                portal="patient",
                record_number="HC-1",
                full_name="Ana Pérez",
                email="ana@example.org",
            )
        )
        session.commit()
    app = create_app({"SETTINGS": settings, "TESTING": True})
    yield Stack(app, app.test_client(), settings, session_factory, mailbox)
    app.extensions["acceso.temporal"].close()
    background_loop.loop.call_soon_threadsafe(stop.set)
    relaying.result(10)
    background_loop.run(worker.shutdown())
    running.result(10)


def test_a_start_and_a_click_reach_temporal_without_waiting_for_a_poll(sleepy_stack):
    register(sleepy_stack.client)
    sleepy_stack.mailbox.wait_for("ana@example.org", "Confirme", timeout=10)
    confirm_by_email(sleepy_stack)
    sleepy_stack.mailbox.wait_for("ana@example.org", "Usuario confirmado", timeout=10)

    def pending() -> int:
        with sleepy_stack.session_factory() as session:
            rows = session.scalars(select(OutboxMessage)).all()
            return sum(row.relayed_at is None for row in rows)

    wait_until(lambda: pending() == 0, timeout=10, what="both rows marked relayed")


class FirstTryFails:
    """Mail activities whose first "user confirmed" try fails, as when SMTP is down."""

    def __init__(self) -> None:
        self.tries: list[str] = []
        self.sent: list[str] = []

    def activities(self):
        @activity.defn(name="send_link")
        async def send_link(request: LinkEmail) -> LinkSent:
            self.sent.append(request.template)
            return LinkSent(token_id=1)

        @activity.defn(name="send_notice")
        async def send_notice(request: NoticeEmail) -> MailSent:
            self.tries.append(request.template)
            if len(self.tries) == 1:
                raise RuntimeError("SMTP server unreachable")
            self.sent.append(request.template)
            return MailSent(sent=True)

        @activity.defn(name="record_step")
        async def record_step(step: StepReached) -> None:
            return None

        return [send_link, send_notice, record_step]


async def test_an_e_mail_whose_first_try_fails_is_retried_as_a_visible_activity(
    time_skipping_env,
):
    effects = FirstTryFails()
    queue = f"registration-{uuid.uuid4().hex[:8]}"
    async with Worker(
        time_skipping_env.client,
        task_queue=queue,
        workflows=[RegistrationWorkflow],
        activities=effects.activities(),
    ):
        handle = await time_skipping_env.client.start_workflow(
            RegistrationWorkflow.run,
            RegistrationStart(
                portal="patient",
                reference="REF123",
                steps=["confirm_email"],
                policy=Policy(email_link_hours=48, registration_abandon_hours=168),
                user_id=7,
                recorded_step="confirm_email",
            ),
            id=f"registration/patient/{uuid.uuid4().hex[:10]}",
            task_queue=queue,
        )
        await handle.signal(
            RegistrationWorkflow.email_confirmed,
            EmailConfirmed(workflow_id=handle.id, token_id=1, user_id=7, next_status="active"),
        )
        assert (await handle.result()).status == "active"
        history = await handle.fetch_history()

    assert effects.tries == ["user_confirmed", "user_confirmed"]
    assert effects.sent == ["confirm_email", "user_confirmed"]
    scheduled = [
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert scheduled == ["send_notice"]


def test_the_prompt_relay_leaves_a_signal_with_start_to_the_polling_relays(
    session_factory, dev_server, background_loop, task_queue
):
    """Temporal cannot tell a repeated signal-with-start from a new request, so only the
    polling relays send one; a start of an ID that starts once, ever, goes out at once."""
    from temporal.outbox import enqueue_start

    with session_factory() as session:
        joined = enqueue_start(
            session, workflow="Nothing", workflow_id="prompt/joined", payload={}, signal="again"
        )
        once = enqueue_start(session, workflow="Nothing", workflow_id="prompt/once", payload={})
        session.commit()
        joined_id, once_id = joined.id, once.id

    relay = OutboxRelay(dev_server.client, session_factory, task_queue)
    started = background_loop.run(relay.relay_once(workflow_ids={"prompt/joined", "prompt/once"}))

    assert started == 1
    with session_factory() as session:
        assert session.get(OutboxMessage, joined_id).relayed_at is None
        assert session.get(OutboxMessage, once_id).relayed_at is not None


def test_one_prompt_relay_at_a_time_takes_what_later_commits_owe(session_factory):
    """While a relay is out (Temporal slow or away), further commits only add to what it owes:
    a web process never holds more than one database connection waiting on Temporal."""
    from concurrent.futures import Future

    from temporal.outbox import enqueue_signal
    from temporal.outbox.prompt import PromptRelay

    class HeldBridge:
        """A bridge whose background work has not finished yet."""

        settings = None

        def __init__(self) -> None:
            self.submitted: list[Future] = []

        def submit(self, action) -> Future:
            self.submitted.append(Future())
            return self.submitted[-1]

    bridge = HeldBridge()
    prompt = PromptRelay(session_factory, bridge)
    for n in range(3):
        with session_factory() as session:
            enqueue_signal(session, workflow_id=f"prompt/{n}", signal="s", payload={})
            session.commit()
            prompt.committed(session)

    assert len(bridge.submitted) == 1
    assert prompt.owed == {"prompt/0", "prompt/1", "prompt/2"}
    bridge.submitted[0].set_exception(ConnectionError("Temporal away"))
    assert prompt.owed == set() and not prompt.running
