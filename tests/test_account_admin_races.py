"""The help desk's and administrators' buttons pressed many times at once, on SQLite and
PostgreSQL alike: an account is unlocked or loses its factor once, with one audit line and one
e-mail to its owner; and two administrators disabling each other leave one of them active."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from portal.models import (
    AccountStatus,
    AuditEvent,
    LoginThrottle,
    OutboxMessage,
    RecoveryCode,
    SecondFactor,
    StaffUser,
    User,
    utcnow,
)
from processes.account_admin import service
from processes.account_admin.service import Changed
from tests.fixtures.staff import add_staff

pytestmark = pytest.mark.dialects

PRESSES = 8
STAFF_PASSWORD = "Administra-segura-2026"


def at_once(session_factory, times: int, press: Callable) -> list:
    """`times` presses released together, each in its own session, as concurrent requests are."""
    start = threading.Barrier(times)

    def one(n: int):
        with session_factory() as session:
            start.wait()
            return press(session, n)

    with ThreadPoolExecutor(times) as pool:
        return list(pool.map(one, range(times)))


def count(session_factory, model, *where) -> int:
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.fixture
def locked_applicant_with_a_factor(session_factory) -> int:
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
        session.add_all(
            [
                LoginThrottle(
                    portal="patient", username_key="ana.perez", failures=5, locked_at=utcnow()
                ),
                SecondFactor(user_id=user.id, secret="sealed", last_step=0),
                RecoveryCode(user_id=user.id, code_hash="h"),
            ]
        )
        session.commit()
        return user.id


def test_eight_agents_unlocking_one_account_unlock_it_once_and_tell_its_owner_once(
    session_factory, locked_applicant_with_a_factor
):
    def press(session, n):
        user = session.get(User, locked_applicant_with_a_factor)
        return service.unlock_account(session, user, f"staff:agente{n}", "llamó y se verificó")

    assert sorted(at_once(session_factory, PRESSES, press)) == [False] * 7 + [True]
    assert count(session_factory, LoginThrottle) == 0
    assert count(session_factory, AuditEvent, AuditEvent.action.like("%unlocked%")) == 1
    assert count(session_factory, OutboxMessage) == 1


def test_eight_resets_of_one_lost_factor_remove_it_once_and_tell_its_owner_once(
    session_factory, locked_applicant_with_a_factor
):
    def press(session, n):
        user = session.get(User, locked_applicant_with_a_factor)
        return service.reset_second_factor(session, user, f"staff:agente{n}", "perdió el móvil")

    assert sorted(at_once(session_factory, PRESSES, press)) == [False] * 7 + [True]
    assert count(session_factory, SecondFactor) == 0 and count(session_factory, RecoveryCode) == 0
    assert count(session_factory, AuditEvent, AuditEvent.action.like("second_factor%")) == 1
    notices = count(
        session_factory, OutboxMessage, OutboxMessage.workflow == "AccountNoticeWorkflow"
    )
    assert notices == 1


def test_two_administrators_disabling_each_other_at_once_leave_one_active(session_factory):
    add_staff(session_factory, "rita", STAFF_PASSWORD)
    add_staff(session_factory, "luis", STAFF_PASSWORD)
    with session_factory() as session:
        ids = dict(session.execute(select(StaffUser.username, StaffUser.id)).all())

    def press(session, n):
        target = session.get(StaffUser, ids["luis" if n == 0 else "rita"])
        return service.disable_staff(session, target, "staff:rita" if n == 0 else "staff:luis")

    outcomes = at_once(session_factory, 2, press)
    assert sorted(outcomes) == sorted([Changed.DONE, Changed.LAST_ADMIN])
    assert count(session_factory, StaffUser, StaffUser.active.is_(True)) == 1
    assert count(session_factory, AuditEvent, AuditEvent.action == "staff.disabled") == 1


def test_taking_the_role_from_two_administrators_at_once_leaves_one_administrator(
    session_factory,
):
    add_staff(session_factory, "rita", STAFF_PASSWORD)
    add_staff(session_factory, "luis", STAFF_PASSWORD)
    with session_factory() as session:
        ids = dict(session.execute(select(StaffUser.username, StaffUser.id)).all())

    def press(session, n):
        target = session.get(StaffUser, ids["luis" if n == 0 else "rita"])
        return service.change_access(session, target, "staff:x", ["reviewer"], [])

    outcomes = at_once(session_factory, 2, press)
    assert sorted(outcomes) == sorted([Changed.DONE, Changed.LAST_ADMIN])
    with session_factory() as session:
        roles = session.scalars(select(StaffUser.roles)).all()
    assert sorted(roles) == ["admin", "reviewer"]


def test_eight_presses_of_enable_and_of_unlock_on_a_staff_member_each_act_once(session_factory):
    add_staff(session_factory, "rita", STAFF_PASSWORD)
    add_staff(session_factory, "luis", STAFF_PASSWORD, roles="reviewer", active=False)
    with session_factory() as session:
        session.add(LoginThrottle(portal="staff", username_key="luis", failures=5))
        session.commit()
        luis = session.scalar(select(StaffUser.id).where(StaffUser.username == "luis"))

    def enable(session, n):
        return service.enable_staff(session, session.get(StaffUser, luis), "staff:rita")

    def unlock(session, n):
        return service.unlock_staff(session, session.get(StaffUser, luis), "staff:rita")

    enabled = at_once(session_factory, PRESSES, enable)
    assert enabled.count(Changed.DONE) == 1 and enabled.count(Changed.ALREADY) == 7
    assert sorted(at_once(session_factory, PRESSES, unlock)) == [False] * 7 + [True]
    assert count(session_factory, AuditEvent, AuditEvent.action == "staff.enabled") == 1
    assert count(session_factory, AuditEvent, AuditEvent.action == "staff.unlocked") == 1


def test_eight_presses_of_disable_disable_once_and_none_of_them_enables_again(
    session_factory, locked_applicant_with_a_factor
):
    def press(session, n):
        user = session.get(User, locked_applicant_with_a_factor)
        return service.set_account_status(
            session, user, AccountStatus.DISABLED, f"staff:agente{n}", "lo pidió"
        )

    assert sorted(at_once(session_factory, PRESSES, press)) == [False] * 7 + [True]
    with session_factory() as session:
        assert session.get(User, locked_applicant_with_a_factor).status == AccountStatus.DISABLED
    assert count(session_factory, AuditEvent, AuditEvent.action.like("account.%")) == 1
