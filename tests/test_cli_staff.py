"""`acceso staff add`: the first staff accounts, with argon2id hashes and an audit trail."""

from __future__ import annotations

from sqlalchemy import select

from cli import main
from portal.models import AuditEvent, StaffUser
from portal.passwords import verify_password

PASSWORD = "correct horse battery"


def staff(session_factory, username):
    with session_factory() as session:
        return session.scalar(select(StaffUser).where(StaffUser.username == username))


def test_staff_user_is_created_with_an_argon2_hash_of_the_env_password(
    database_url, session_factory, monkeypatch
):
    monkeypatch.setenv("ACCESO_DATABASE_URL", database_url)
    monkeypatch.setenv("ACCESO_STAFF_PASSWORD", PASSWORD)

    code = main(
        [
            "staff",
            "add",
            "rosa",
            "--role",
            "reviewer",
            "--role",
            "support,operator",
            "--portal",
            "provider",
        ]
    )

    assert code == 0
    user = staff(session_factory, "rosa")
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    assert verify_password(user.password_hash, PASSWORD)
    assert user.role_set == {"reviewer", "support", "operator"}
    assert user.portal_set == {"provider"}
    with session_factory() as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "staff.created"))
    assert (event.actor, event.detail["username"]) == ("cli", "rosa")


def test_unknown_role_short_password_and_duplicate_username_are_refused(
    database_url, session_factory, monkeypatch, capsys
):
    monkeypatch.setenv("ACCESO_DATABASE_URL", database_url)
    monkeypatch.setenv("ACCESO_STAFF_PASSWORD", PASSWORD)
    assert main(["staff", "add", "admin1", "--role", "admin"]) == 0

    assert main(["staff", "add", "Admin1", "--role", "admin"]) == 1
    assert main(["staff", "add", "bob", "--role", "superuser"]) == 1
    monkeypatch.setenv("ACCESO_STAFF_PASSWORD", "short")
    assert main(["staff", "add", "carla", "--role", "admin"]) == 1

    err = capsys.readouterr().err
    assert "'Admin1' already exists" in err
    assert "unknown role(s): superuser" in err
    assert "at least 12 characters" in err
    assert staff(session_factory, "bob") is None
    assert staff(session_factory, "carla") is None


def test_reset_factor_lets_an_admin_who_lost_the_device_enrol_again(
    database_url, session_factory, monkeypatch
):
    from portal.models import LoginThrottle, SecondFactor

    monkeypatch.setenv("ACCESO_DATABASE_URL", database_url)
    monkeypatch.setenv("ACCESO_STAFF_PASSWORD", PASSWORD)
    assert main(["staff", "add", "root", "--role", "admin"]) == 0
    with session_factory() as session:
        admin = staff(session_factory, "root")
        session.add(SecondFactor(staff_id=admin.id, secret="JBSWY3DPEHPK3PXP", last_step=0))
        session.add(LoginThrottle(portal="staff", username_key="root", failures=5))
        session.commit()

    assert main(["staff", "reset-factor", "root"]) == 0
    assert main(["staff", "reset-factor", "nobody"]) == 1
    with session_factory() as session:
        assert session.scalars(select(SecondFactor)).all() == []
        assert session.get(LoginThrottle, ("staff", "root")) is None
        assert (
            session.scalar(
                select(AuditEvent.actor).where(AuditEvent.action == "staff.second_factor.reset")
            )
            == "cli"
        )
