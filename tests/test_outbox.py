"""The transactional outbox: a start committed with its rows happens once, whatever dies when."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

from portal.models import OutboxMessage, User, utcnow
from processes.account_notice.service import notify_account_owner
from processes.account_notice.vocabulary import NoticeKind
from temporal.outbox import enqueue_start
from temporal.outbox.prompt import LoopBridge, relay_after_commit
from temporal.outbox.relay import SETTLE_SECONDS, OutboxRelay, settle_seconds
from tests.fixtures.patients import PASSWORD, confirm_by_email, login, register
from tests.fixtures.smtp import body_text
from tests.fixtures.stack import submit
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.dialects


def _ana(stack) -> User:
    register(stack.client)
    confirm_by_email(stack)
    stack.mailbox.wait_for("ana@example.org", "Usuario confirmado")
    with stack.session_factory() as session:
        return session.scalar(select(User).where(User.username == "ana.perez"))


def _pending(session_factory) -> int:
    with session_factory() as session:
        return session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.relayed_at.is_(None))
        )


def test_changing_the_password_e_mails_the_owner_what_changed_and_when(clinic):
    _ana(clinic)
    login(clinic.client)
    submit(
        clinic.client,
        "/patient/account/password",
        {
            "current_password": PASSWORD,
            "new_password": "OtraClave456",
            "new_password_confirm": "OtraClave456",
        },
    )
    text = body_text(clinic.mailbox.wait_for("ana@example.org", "Su contraseña cambió"))
    assert "ana.perez" in text and "UTC" in text
    assert "OtraClave456" not in text
    wait_until(lambda: _pending(clinic.session_factory) == 0, what="the outbox to drain")


def test_a_relay_killed_after_starting_does_not_start_or_mail_twice(
    clinic, dev_server, background_loop
):
    """The relay starts the workflow, then dies before marking the row: the next pass finds the
    row again, Temporal refuses the second start, and one e-mail goes out."""
    user = _ana(clinic)
    with clinic.session_factory() as session:
        notify_account_owner(session, session.get(User, user.id), NoticeKind.PASSWORD_CHANGED)
        session.commit()
        row = session.scalar(select(OutboxMessage).order_by(OutboxMessage.id.desc()))
    relay = OutboxRelay(dev_server.client, clinic.session_factory, clinic.settings.task_queue)
    # Whichever of the two relays starts it first, the other one's start is the repeat.
    with contextlib.suppress(WorkflowAlreadyStartedError):
        background_loop.run(relay._start(row))
    clinic.mailbox.wait_for("ana@example.org", "Su contraseña cambió")
    wait_until(lambda: _pending(clinic.session_factory) == 0, what="the row to be marked")
    handle = dev_server.client.get_workflow_handle(row.workflow_id)
    background_loop.run(handle.result())
    changed = [m for m in clinic.mailbox.messages if "contraseña cambió" in str(m["Subject"])]
    assert len(changed) == 1


def test_a_start_owed_while_temporal_is_unreachable_waits_in_the_outbox(
    clinic, dev_server, background_loop
):
    user = _ana(clinic)
    with clinic.session_factory() as session:
        notify_account_owner(session, session.get(User, user.id), NoticeKind.PASSWORD_CHANGED)
        session.commit()

    async def unreachable() -> Client:
        return await Client.connect("127.0.0.1:1", lazy=True)

    down = OutboxRelay(background_loop.run(unreachable()), clinic.session_factory, "nowhere")
    # The stack's own relay may win the race; either way nothing is lost or doubled.
    assert background_loop.run(down.relay_once()) in (-1, 0)
    clinic.mailbox.wait_for("ana@example.org", "Su contraseña cambió")
    wait_until(lambda: _pending(clinic.session_factory) == 0, what="the outbox to drain")


def test_a_start_temporal_refuses_waits_without_holding_up_the_others(clinic):
    """A row Temporal refuses outright keeps its error and is tried again later; the rows
    behind it are started meanwhile, so one bad row never stops every registration."""
    user = _ana(clinic)
    with clinic.session_factory() as session:
        refused = enqueue_start(
            session,
            workflow="AccountNoticeWorkflow",
            workflow_id="refused/by-temporal",
            payload={},
            search_attributes={"NoSuchAttribute": "x"},
        )
        session.commit()
        refused_id = refused.id
        notify_account_owner(session, session.get(User, user.id), NoticeKind.PASSWORD_CHANGED)
        session.commit()

    clinic.mailbox.wait_for("ana@example.org", "Su contraseña cambió")
    wait_until(lambda: _pending(clinic.session_factory) == 1, what="the rows behind to drain")
    with clinic.session_factory() as session:
        row = session.get(OutboxMessage, refused_id)
        wait_until(lambda: session.refresh(row) or row.attempts >= 2, what="it to be tried again")
        assert row.relayed_at is None
        assert "NoSuchAttribute" in row.last_error


class RecordingRelay(OutboxRelay):
    """A relay whose sends are written down (the processes' IDs) instead of reaching Temporal."""

    def __init__(self, session_factory, sent: list[str], **options) -> None:
        super().__init__(
            client=None, session_factory=session_factory, task_queue="unused", **options
        )
        self.sent = sent

    async def _start(self, row) -> None:
        self.sent.append(row.workflow_id)


def test_a_settling_poll_leaves_a_new_row_to_the_prompt_relay_of_the_process_that_wrote_it(
    session_factory,
):
    """Where rows cannot be locked, a poll racing the committing process's own relay sent the
    same start or signal twice; it now leaves rows younger than its settle time alone."""
    with session_factory() as session:
        old = utcnow() - timedelta(seconds=5)
        session.add(
            OutboxMessage(
                kind="signal", workflow="", workflow_id="settled", signal="s", created_at=old
            )
        )
        session.add(OutboxMessage(kind="signal", workflow="", workflow_id="new", signal="s"))
        joining = OutboxMessage(workflow="W", workflow_id="joining", signal="s", signal_payload={})
        session.add(joining)  # a signal-with-start: no prompt relay takes it, the poll does
        session.commit()
    sent: list[str] = []

    asyncio.run(RecordingRelay(session_factory, sent, settle_seconds=1.0).relay_once())
    assert sent == ["settled", "joining"]
    asyncio.run(RecordingRelay(session_factory, sent).relay_once())
    assert sent == ["settled", "joining", "new"]
    dialect = session_factory.kw["bind"].dialect.name
    assert settle_seconds(session_factory) == (SETTLE_SECONDS if dialect == "sqlite" else 0)


def test_a_worker_relays_the_starts_its_own_commits_owe_at_once(
    settings, session_factory, dev_server, background_loop
):
    """No polling relay runs here: the worker's prompt relay starts what an activity's commit
    owes (a logout's deliveries), as the web tier's does for its requests."""
    relay_after_commit(
        session_factory, LoopBridge(dev_server.client, background_loop.loop, settings)
    )
    workflow_id = f"prompt-in-worker/{settings.task_queue}"
    with session_factory() as session:
        enqueue_start(
            session, workflow="AccountNoticeWorkflow", workflow_id=workflow_id, payload={}
        )
        session.commit()

    wait_until(lambda: _pending(session_factory) == 0, what="the worker's own relay to start it")
    handle = dev_server.client.get_workflow_handle(workflow_id)
    background_loop.run(handle.terminate("test over"))
