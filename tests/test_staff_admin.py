"""Admins run the staff console from the console: invite people by e-mail, change their roles
and portals, disable and enable, reset a lost second factor, unlock; each step audited, and
refused outside the admin's role or portals, or when it would leave no active admin."""

from __future__ import annotations

import re

import pyotp
import pytest
from sqlalchemy import event, select

from portal.models import (
    AuditEvent,
    EmailToken,
    LoginThrottle,
    SecondFactor,
    StaffInvitation,
    StaffUser,
    UserSession,
)
from tests.fixtures.smtp import link_in
from tests.fixtures.stack import submit
from tests.fixtures.staff import add_staff, sign_in_staff
from web import create_app

pytestmark = pytest.mark.dialects

PASSWORD = "consola-segura-123"


@pytest.fixture
def console(settings, session_factory):
    app = create_app({"SETTINGS": settings, "TESTING": True})
    add_staff(session_factory, "ada", PASSWORD, roles="admin")
    client = app.test_client()
    assert sign_in_staff(client, session_factory, "ada", PASSWORD).status_code == 302
    return app, client, session_factory


def staff_named(session_factory, username) -> StaffUser | None:
    with session_factory() as session:
        return session.scalar(select(StaffUser).where(StaffUser.username == username))


def actions(session_factory) -> list[tuple[str, str]]:
    with session_factory() as session:
        return [(e.actor, e.action) for e in session.scalars(select(AuditEvent))]


def test_the_list_shows_roles_portals_second_factor_and_last_sign_in_in_one_query(console):
    app, client, session_factory = console
    add_staff(session_factory, "rita", PASSWORD, roles="reviewer", portals="provider")
    add_staff(session_factory, "nuevo", PASSWORD, roles="support", enrolled=False)
    page = client.get("/staff/admin/").get_data(as_text=True)
    assert "rita" in page and "provider" in page and "Revisión de proveedores" in page
    assert "Sin activar" in page and "Aplicación" in page
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", page)  # ada's last sign-in

    def count(path):
        statements = []

        def listen(_c, _cur, statement, *_a):
            statements.append(statement)

        engine = app.extensions["acceso.engine"]
        event.listen(engine, "before_cursor_execute", listen)
        try:
            assert client.get(path).status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", listen)
        return len(statements)

    few = count("/staff/admin/")
    for n in range(10):
        add_staff(session_factory, f"extra{n}", PASSWORD, roles="support")
    assert count("/staff/admin/") == few


def test_an_invited_person_sets_a_password_enrols_and_signs_in(stack):
    add_staff(stack.session_factory, "ada", PASSWORD, roles="admin")
    admin = stack.new_client()
    sign_in_staff(admin, stack.session_factory, "ada", PASSWORD)

    bad = submit(
        admin,
        "/staff/admin/invite",
        {"username": "ana", "full_name": "Ana Soporte", "email": "no-es-correo"},
    )
    page = bad.get_data(as_text=True)
    assert "correo electrónico válida" in page and "Elija al menos una función" in page
    assert 'value="Ana Soporte"' in page
    assert staff_named(stack.session_factory, "ana") is None

    answer = submit(
        admin,
        "/staff/admin/invite",
        {
            "username": "ana",
            "full_name": "Ana Soporte",
            "email": "ana@acceso.example",
            "roles": ["support"],
            "portals": ["member"],
        },
    )
    assert answer.status_code == 302
    invited = staff_named(stack.session_factory, "ana")
    assert (invited.active, invited.password_hash, invited.portals) == (False, "", "member")

    message = stack.mailbox.wait_for("ana@acceso.example", "Invitación")
    link = link_in(message, "/staff/invitation/")
    path = link.split("acceso.test", 1)[1]
    visitor = stack.new_client()
    assert "Elija la contraseña" in visitor.get(path).get_data(as_text=True)
    assert visitor.get(path).status_code == 200  # looking twice consumes nothing

    short = submit(visitor, path, {"password": "corta", "password_confirm": "corta"})
    assert "Al menos 12 caracteres" in short.get_data(as_text=True)
    done = submit(
        visitor, path, {"password": "una-clave-larga-1", "password_confirm": "una-clave-larga-1"}
    )
    assert done.headers["Location"].endswith("/staff/login/enrol")
    assert visitor.get("/staff/").status_code == 302  # a password alone opens nothing

    enrol_page = visitor.get("/staff/login/enrol").get_data(as_text=True)
    key = re.search(r"data-secret-key>([A-Z2-7 ]+)<", enrol_page).group(1).replace(" ", "")
    enrolled = submit(visitor, "/staff/login/enrol", {"code": pyotp.TOTP(key).now()})
    assert enrolled.status_code == 200 and "Códigos de recuperación" in enrolled.get_data(True)
    assert visitor.get("/staff/cases").status_code == 200

    again = stack.new_client()
    assert again.get(path).status_code == 404  # single use
    with stack.session_factory() as session:
        token = session.scalar(select(EmailToken).where(EmailToken.purpose == "staff_invitation"))
        assert token.used_at is not None
        assert session.scalar(select(StaffInvitation.status)) == "accepted"
    assert ("staff:ada", "staff.invited") in actions(stack.session_factory)
    assert ("staff:ana", "staff.invitation_accepted") in actions(stack.session_factory)


def test_disabling_ends_the_sessions_at_once_and_enabling_lets_them_back(console):
    app, client, session_factory = console
    add_staff(session_factory, "rita", PASSWORD, roles="reviewer")
    rita = app.test_client()
    sign_in_staff(rita, session_factory, "rita", PASSWORD)
    assert rita.get("/staff/reviews").status_code == 200
    rita_id = staff_named(session_factory, "rita").id

    submit(client, f"/staff/admin/{rita_id}/disable", {}, form_page=f"/staff/admin/{rita_id}")
    assert rita.get("/staff/reviews").status_code == 302
    with session_factory() as session:
        assert not session.scalars(select(UserSession).where(UserSession.staff_id == rita_id)).all()
    assert staff_named(session_factory, "rita").active is False

    submit(client, f"/staff/admin/{rita_id}/enable", {}, form_page=f"/staff/admin/{rita_id}")
    assert staff_named(session_factory, "rita").active is True
    assert ("staff:ada", "staff.disabled") in actions(session_factory)
    assert ("staff:ada", "staff.enabled") in actions(session_factory)


def test_roles_and_portals_change_and_are_audited(console):
    app, client, session_factory = console
    add_staff(session_factory, "rita", PASSWORD, roles="reviewer")
    rita_id = staff_named(session_factory, "rita").id
    path = f"/staff/admin/{rita_id}"
    answer = submit(client, path, {"roles": ["reviewer", "support"], "portals": ["provider"]})
    assert answer.status_code == 302
    rita = staff_named(session_factory, "rita")
    assert (rita.role_set, rita.portal_set) == ({"reviewer", "support"}, {"provider"})
    assert ("staff:ada", "staff.access_changed") in actions(session_factory)

    none = submit(client, path, {"portals": ["provider"]})
    assert "Elija al menos una función" in none.get_data(as_text=True)
    assert staff_named(session_factory, "rita").role_set == {"reviewer", "support"}


def test_the_last_active_admin_cannot_be_disabled_or_demoted(console):
    app, client, session_factory = console
    ada_id = staff_named(session_factory, "ada").id
    page = f"/staff/admin/{ada_id}"
    refused = submit(client, f"{page}/disable", {}, form_page=page)
    assert refused.status_code == 302
    assert staff_named(session_factory, "ada").active is True
    assert "última cuenta de administración" in client.get(page).get_data(as_text=True)

    demoted = submit(client, page, {"roles": ["support"]})
    assert "última cuenta de administración" in demoted.get_data(as_text=True)
    assert staff_named(session_factory, "ada").role_set == {"admin"}


def test_non_admins_and_admins_of_other_portals_are_refused(console):
    app, client, session_factory = console
    add_staff(session_factory, "rita", PASSWORD, roles="reviewer", portals="provider")
    add_staff(session_factory, "mia", PASSWORD, roles="admin", portals="member")
    add_staff(session_factory, "marta", PASSWORD, roles="support", portals="member")
    rita_id = staff_named(session_factory, "rita").id
    marta_id = staff_named(session_factory, "marta").id

    reviewer = app.test_client()
    sign_in_staff(reviewer, session_factory, "rita", PASSWORD)
    assert reviewer.get("/staff/admin/").status_code == 403
    token_page = reviewer.get("/staff/reviews").get_data(as_text=True)
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', token_page)
    csrf = token.group(1) if token else ""
    assert (
        reviewer.post(f"/staff/admin/{rita_id}/disable", data={"csrf_token": csrf}).status_code
        == 403
    )

    member_admin = app.test_client()
    sign_in_staff(member_admin, session_factory, "mia", PASSWORD)
    listed = member_admin.get("/staff/admin/").get_data(as_text=True)
    assert "marta" in listed and 'data-username="rita"' not in listed
    assert member_admin.get(f"/staff/admin/{rita_id}").status_code == 403
    answer = submit(
        member_admin, f"/staff/admin/{rita_id}/disable", {}, form_page=f"/staff/admin/{marta_id}"
    )
    assert answer.status_code == 403
    assert staff_named(session_factory, "rita").active is True
    widened = submit(
        member_admin, f"/staff/admin/{marta_id}", {"roles": ["support"], "portals": ["provider"]}
    )
    assert widened.status_code == 200
    assert staff_named(session_factory, "marta").portal_set == {"member"}


def test_a_lost_device_is_reset_and_a_locked_account_unlocked(console):
    app, client, session_factory = console
    add_staff(session_factory, "rita", PASSWORD, roles="reviewer")
    rita_id = staff_named(session_factory, "rita").id
    locked_out = app.test_client()
    for _ in range(5):
        submit(locked_out, "/staff/login", {"username": "rita", "password": "wrong-password-1"})
    assert "Usuario o contraseña incorrectos" in submit(
        locked_out, "/staff/login", {"username": "rita", "password": PASSWORD}
    ).get_data(as_text=True)
    assert "Bloqueada" in client.get(f"/staff/admin/{rita_id}").get_data(as_text=True)

    page = f"/staff/admin/{rita_id}"
    submit(client, f"{page}/unlock", {}, form_page=page)
    submit(client, f"{page}/reset-factor", {}, form_page=page)
    with session_factory() as session:
        assert session.get(LoginThrottle, ("staff", "rita")) is None
        assert session.scalar(select(SecondFactor).where(SecondFactor.staff_id == rita_id)) is None
    answer = submit(locked_out, "/staff/login", {"username": "rita", "password": PASSWORD})
    assert answer.headers["Location"].endswith("/staff/login/enrol")
    assert ("staff:ada", "staff.unlocked") in actions(session_factory)
    assert ("staff:ada", "staff.second_factor.reset") in actions(session_factory)


def test_a_lapsed_invitation_removes_the_unused_account_but_an_accepted_one_stands(
    settings, session_factory
):
    from mail.mailer import Mailer
    from processes.staff_invitation import service
    from processes.staff_invitation.activities import StaffInvitationActivities
    from processes.staff_invitation.vocabulary import EndInvitation

    with session_factory() as session:
        lapsing = service.invite(
            session,
            actor="staff:ada",
            username="tarde",
            full_name="Tarde",
            email="tarde@acceso.example",
            roles=["support"],
            portals=[],
        )
        taken = service.invite(
            session,
            actor="staff:ada",
            username="pronto",
            full_name="Pronto",
            email="pronto@acceso.example",
            roles=["support"],
            portals=[],
        )
        session.commit()
        lapsing_ids = (lapsing.id, lapsing.workflow_id)
        taken.status = "accepted"
        session.commit()
        taken_ids = (taken.id, taken.workflow_id)

    activities = StaffInvitationActivities(session_factory, Mailer(settings))
    ended = activities.end_staff_invitation(
        EndInvitation(invitation_id=lapsing_ids[0], workflow_id=lapsing_ids[1], status="expired")
    )
    stood = activities.end_staff_invitation(
        EndInvitation(invitation_id=taken_ids[0], workflow_id=taken_ids[1], status="expired")
    )
    assert (ended.status, stood.status) == ("expired", "accepted")
    assert staff_named(session_factory, "tarde") is None
    assert staff_named(session_factory, "pronto") is not None
    assert ("system", "staff.invitation_expired") in actions(session_factory)


def test_a_double_clicked_invitation_invites_once(console):
    app, client, session_factory = console
    page = client.get("/staff/admin/invite").get_data(as_text=True)
    fields = {
        name: re.search(rf'name="{name}" type="hidden" value="([^"]+)"', page).group(1)
        for name in ("csrf_token", "form_key")
    }
    data = {
        **fields,
        "username": "doble",
        "full_name": "Doble Clic",
        "email": "doble@acceso.example",
        "roles": ["support"],
    }
    first = client.post("/staff/admin/invite", data=data)
    second = client.post("/staff/admin/invite", data=data)
    assert first.status_code == second.status_code == 302
    assert second.headers["Location"] == first.headers["Location"]
    with session_factory() as session:
        assert len(session.scalars(select(StaffInvitation)).all()) == 1


def test_an_admin_cancels_a_pending_invitation_and_its_link_and_process_end(stack):
    add_staff(stack.session_factory, "ada", PASSWORD, roles="admin")
    admin = stack.new_client()
    sign_in_staff(admin, stack.session_factory, "ada", PASSWORD)
    submit(
        admin,
        "/staff/admin/invite",
        {
            "username": "ana",
            "full_name": "Ana Soporte",
            "email": "ana@acceso.example",
            "roles": ["support"],
        },
    )
    link = link_in(stack.mailbox.wait_for("ana@acceso.example", "Invitación"), "/staff/invitation/")
    path = link.split("acceso.test", 1)[1]
    assert stack.new_client().get(path).status_code == 200
    invited = staff_named(stack.session_factory, "ana")
    with stack.session_factory() as session:
        workflow_id = session.scalar(select(StaffInvitation.workflow_id))

    page = f"/staff/admin/{invited.id}"
    assert "Cancelar la invitación" in admin.get(page).get_data(as_text=True)
    answer = submit(admin, f"{page}/cancel-invitation", {}, form_page=page)
    assert answer.headers["Location"].endswith("/staff/admin/")
    assert "Cancelamos la invitación" in admin.get("/staff/admin/").get_data(as_text=True)

    assert stack.new_client().get(path).status_code == 404
    assert staff_named(stack.session_factory, "ana") is None
    with stack.session_factory() as session:
        assert session.scalar(select(StaffInvitation.status)) == "revoked"
        assert session.scalar(select(EmailToken.revoked_at)) is not None
    assert ("staff:ada", "staff.invitation_revoked") in actions(stack.session_factory)
    temporal = stack.app.extensions["acceso.temporal"]
    outcome = temporal.call(lambda c: c.get_workflow_handle(workflow_id).result(), timeout=30)
    assert outcome["status"] == "revoked"


def test_an_invitation_accepted_first_cannot_be_cancelled(console):
    from processes.staff_invitation import service

    app, client, session_factory = console
    with session_factory() as session:
        invitation = service.invite(
            session,
            actor="staff:ada",
            username="pronto",
            full_name="Pronto",
            email="pronto@acceso.example",
            roles=["support"],
            portals=[],
        )
        session.commit()
        invitation.status = "accepted"
        session.commit()
        staff_id = invitation.staff_id
    page = f"/staff/admin/{staff_id}"
    assert "Cancelar la invitación" not in client.get(page).get_data(as_text=True)
    answer = submit(client, f"{page}/cancel-invitation", {}, form_page=page)
    assert answer.headers["Location"].endswith(page)
    assert staff_named(session_factory, "pronto") is not None
