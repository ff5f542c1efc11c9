"""The same schema and the same registration story on PostgreSQL 15, as production runs them."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from portal.db import make_engine
from portal.models import ClinicalRecord, Registration, User
from portal.passwords import hash_password
from tests.fixtures.smtp import link_in
from tests.fixtures.stack import press_link_button, submit

pytestmark = pytest.mark.postgres

PASSWORD = "Clave123segura"


@pytest.fixture
def database_url(postgres_url) -> str:
    """Every fixture built on the database (settings, session_factory, stack) uses PostgreSQL."""
    return postgres_url


def test_migrations_reach_head_on_postgresql(database_url):
    engine = make_engine(database_url)
    try:
        assert engine.dialect.name == "postgresql"
        tables = set(inspect(engine).get_table_names())
        assert {"users", "registrations", "email_tokens", "staff_users"} <= tables
        with engine.connect() as connection:
            assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()


def _user(username: str, portal: str = "patient") -> User:
    return User(
        portal=portal,
        username=username,
        email=f"{username.lower()}@example.org",
        password_hash=hash_password(PASSWORD),
        role="patient",
    )


def test_usernames_are_unique_per_portal_whatever_their_case(session_factory):
    with session_factory() as session:
        session.add(_user("Ana.Perez"))
        session.commit()
        session.add(_user("ana.perez"))
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()
        session.add(_user("ana.perez", portal="member"))
        session.commit()


def test_patient_registration_lifecycle_on_postgresql(stack):
    assert stack.settings.database_url.startswith("postgresql+psycopg://")
    with stack.session_factory() as session:
        session.add(
            ClinicalRecord(
                portal="patient",
                record_number="HC-1",
                full_name="Ana Pérez",
                email="ana@example.org",
            )
        )
        session.commit()
    response = submit(
        stack.client,
        "/patient/register",
        {
            "email": "ana@example.org",
            "username": "ana.perez",
            "password": PASSWORD,
            "password_confirm": PASSWORD,
            "full_name": "Ana Pérez",
        },
    )
    assert response.status_code == 302
    link = link_in(stack.mailbox.wait_for("ana@example.org", "Confirme"), "/patient/confirm/")
    press_link_button(stack.client, link)
    stack.mailbox.wait_for("ana@example.org", "confirmado")

    with stack.session_factory() as session:
        user = session.scalar(select(User).where(User.username == "ana.perez"))
        registration = session.scalar(select(Registration).where(Registration.user_id == user.id))
        workflow_id = registration.workflow_id
    outcome = stack.app.extensions["acceso.temporal"].call(
        lambda c: c.get_workflow_handle(workflow_id).result(), timeout=30
    )
    assert outcome["status"] == "active"
    with stack.session_factory() as session:
        assert session.get(User, user.id).status == "active"
