"""The e-mail change's races, settled by the database on SQLite and PostgreSQL alike: two
presses of one confirmation link confirm once and owe the process one signal; concurrent wrong
passwords each count toward the lockout."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal import lockout
from portal.config import load_portals
from portal.models import EmailChange, EmailToken, LoginThrottle, OutboxMessage, User, utcnow
from portal.tokens import token_hash
from processes.email_change import service
from processes.email_change.vocabulary import LinkPurpose, Step
from processes.links import LinkState

pytestmark = pytest.mark.dialects

RAW = "a-confirmation-link"


@pytest.fixture
def waiting_change(session_factory, settings):
    portal = load_portals(settings.portals_file)["patient"]
    with session_factory() as session:
        user = User(
            portal="patient",
            username="ana.perez",
            email="ana@example.org",
            password_hash="x",
            status="active",
            role="patient",
        )
        session.add(user)
        session.flush()
        change = EmailChange(
            reference="R1",
            portal="patient",
            workflow_id="email-change/patient/R1",
            user_id=user.id,
            old_email="ana@example.org",
            new_email="ana.nueva@example.net",
            status=Step.PENDING,
            requested_by=f"user:{user.id}",
        )
        session.add(change)
        session.add(
            EmailToken(
                token_hash=token_hash(RAW),
                purpose=LinkPurpose.CONFIRM,
                portal="patient",
                workflow_id=change.workflow_id,
                user_id=user.id,
                expires_at=utcnow() + timedelta(hours=1),
            )
        )
        session.commit()
    return portal


def test_two_presses_of_one_link_confirm_once_and_owe_one_signal(session_factory, waiting_change):
    start = threading.Barrier(2)

    def press():
        with session_factory() as session:
            start.wait()
            return service.confirm(session, waiting_change, RAW).state

    with ThreadPoolExecutor(2) as pool:
        states = sorted(pool.map(lambda _: press(), range(2)))
    assert states == sorted([LinkState.DONE_NOW, LinkState.USED])
    with session_factory() as session:
        signals = session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.signal == "confirm")
        )
        assert signals == 1
        assert session.scalar(select(EmailChange.status)) == Step.CONFIRMED


def test_concurrent_wrong_passwords_each_count(session_factory):
    def guess(_):
        with session_factory() as session:
            return lockout.claim(session, "patient", lockout.username_key("Ana.Perez"), 5).number

    with ThreadPoolExecutor(4) as pool:
        numbers = list(pool.map(guess, range(12)))
    assert sorted(numbers) == list(range(1, 13)), "each attempt takes its own number"
    with session_factory() as session:
        assert session.scalar(select(LoginThrottle.failures)) == 12
