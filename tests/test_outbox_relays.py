"""Two outbox relays (one per worker) on one PostgreSQL must each take rows the other does not:
`SKIP LOCKED` holds a row only while the transaction that locked it is open."""

from __future__ import annotations

import asyncio

import pytest

from portal.models import OutboxMessage
from temporal.outbox.relay import OutboxRelay

pytestmark = pytest.mark.postgres


class RecordingRelay(OutboxRelay):
    """A relay whose sends are written down instead of reaching Temporal; `meanwhile` runs once,
    while this relay is sending its second row, as a second worker's relay pass would."""

    def __init__(self, name: str, session_factory, sent: list, meanwhile=None, at=2) -> None:
        super().__init__(client=None, session_factory=session_factory, task_queue="unused")
        self.name, self.sent, self.meanwhile, self.at = name, sent, meanwhile, at

    async def _start(self, row: OutboxMessage) -> None:
        self.sent.append((self.name, row.id))
        mine = [sent for sent in self.sent if sent[0] == self.name]
        if self.meanwhile is not None and len(mine) == self.at:
            await self.meanwhile()


def test_a_second_relay_never_sends_a_row_the_first_is_still_sending(postgres_session_factory):
    with postgres_session_factory() as session:
        session.add_all(
            OutboxMessage(kind="signal", workflow="", workflow_id=f"w{n}", signal="email_confirmed")
            for n in range(3)
        )
        session.commit()
    sent: list[tuple[str, int]] = []
    second = RecordingRelay("second", postgres_session_factory, sent)
    first = RecordingRelay("first", postgres_session_factory, sent, meanwhile=second.relay_once)

    asyncio.run(first.relay_once())

    rows = [row_id for _, row_id in sent]
    assert sorted(rows) == sorted(set(rows)), f"rows sent twice: {sent}"


def test_a_second_relay_does_not_signal_a_process_whose_start_the_first_is_still_sending(
    postgres_session_factory,
):
    with postgres_session_factory() as session:
        start = OutboxMessage(kind="start", workflow="RegistrationWorkflow", workflow_id="w")
        session.add(start)
        session.flush()
        signal = OutboxMessage(
            kind="signal", workflow="", workflow_id="w", signal="email_confirmed"
        )
        session.add(signal)
        session.commit()
        ids = [start.id, signal.id]
    sent: list[tuple[str, int]] = []
    second = RecordingRelay("second", postgres_session_factory, sent)
    first = RecordingRelay(
        "first", postgres_session_factory, sent, meanwhile=second.relay_once, at=1
    )

    asyncio.run(first.relay_once())

    assert sent == [("first", ids[0]), ("first", ids[1])]
