"""The app registration's races, settled by the database on SQLite and PostgreSQL alike: two
presses of one credentials link show one secret; two reviewers deciding at once make one
decision and owe the process one signal."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal.models import AppRegistration, EmailToken, OidcClient, OutboxMessage, utcnow
from portal.oidc import add_client, client_secret_matches
from portal.tokens import token_hash
from processes.app_registration import service
from processes.app_registration.vocabulary import (
    ClientType,
    Decided,
    Decision,
    LinkPurpose,
    Step,
)
from processes.links import LinkState

pytestmark = pytest.mark.dialects

RAW = "a-credentials-link"
KEY = b"k" * 32
"""The client-secret key the web tier would pass (portal.server_keys.client_secret_key)."""


def application(session, status: Step, reference: str = "APPRACE01") -> AppRegistration:
    row = AppRegistration(
        reference=reference,
        portal="patient",
        workflow_id=f"app-registration/{reference}",
        status=status,
        app_name="Mi Salud App",
        redirect_uris=["https://app.example/callback"],
        scopes=["openid", "launch/patient", "patient/*.rs"],
        client_type=ClientType.CONFIDENTIAL,
        privacy_url="https://app.example/privacy",
        contact_name="Dana Dev",
        contact_email="dev@apps.example",
        checks=[
            {"check": "redirect_uris", "passed": True, "detail": ""},
            {"check": "privacy_policy", "passed": True, "detail": "HTTP 200"},
        ],
    )
    session.add(row)
    session.flush()
    return row


def both(action):
    start = threading.Barrier(2)

    def once(_):
        start.wait()
        return action()

    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(once, range(2)))


def test_two_presses_of_one_credentials_link_show_one_secret(session_factory):
    with session_factory() as session:
        row = application(session, Step.REGISTERED)
        made = add_client(
            session,
            "Mi Salud App (APPRACE01)",
            portal="patient",
            redirect_uris=row.redirect_uris,
            approved_scopes=row.scopes,
        )
        row.client_pk = made.client.id
        session.add(
            EmailToken(
                token_hash=token_hash(RAW),
                purpose=LinkPurpose.CREDENTIALS,
                portal="patient",
                workflow_id=row.workflow_id,
                expires_at=utcnow() + timedelta(hours=1),
            )
        )
        session.commit()

    def press():
        with session_factory() as session:
            return service.reveal_credentials(session, RAW, KEY)

    links = both(press)
    assert sorted(link.state for link in links) == sorted([LinkState.DONE_NOW, LinkState.USED])
    secret = next(link.secret for link in links if link.state == LinkState.DONE_NOW)
    assert all(link.secret is None for link in links if link.state == LinkState.USED)
    with session_factory() as session:
        client = session.scalar(select(OidcClient))
        assert client_secret_matches(session, KEY, client, secret)


def test_two_reviewers_deciding_at_once_make_one_decision_and_owe_one_signal(session_factory):
    with session_factory() as session:
        application(session, Step.IN_REVIEW)
        session.commit()

    def decide(reviewer: str, decision: Decision):
        with session_factory() as session:
            row = service.application_by_reference(session, "APPRACE01")
            return service.decide(session, row, reviewer, decision, "porque sí")

    reviewers = iter([("staff:rosa", Decision.APPROVE), ("staff:luis", Decision.DENY)])
    lock = threading.Lock()

    def next_decision():
        with lock:
            reviewer, decision = next(reviewers)
        return decide(reviewer, decision)

    answers = both(next_decision)
    assert sorted(answers) == sorted([Decided.DONE, Decided.NOT_WAITING])
    with session_factory() as session:
        row = service.application_by_reference(session, "APPRACE01")
        assert row.status in (Step.APPROVED, Step.DENIED)
        signals = session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.signal == "review_decision")
        )
        assert signals == 1
