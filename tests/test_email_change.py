"""Changing one's e-mail address over HTTP on the real stack (dev server, worker, SMTP, database):
the new address confirms, the change applies with its audit line and ends the other sessions,
the old address may undo it within its window; a newer request replaces an older one; expired,
used and replaced links, and every kind of bad input, change nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from mail.mailer import Mailer
from portal.config import load_portals
from portal.models import (
    AuditEvent,
    EmailChange,
    EmailToken,
    LoginThrottle,
    User,
    UserSession,
    utcnow,
)
from portal.passwords import hash_password
from processes.email_change.activities import ChangeEnding, EmailChangeActivities
from processes.email_change.vocabulary import Step
from tests.fixtures.patients import PASSWORD, confirm_by_email, login, register
from tests.fixtures.smtp import body_text, link_in
from tests.fixtures.stack import csrf_token, press_link_button, submit
from tests.fixtures.staff import add_staff, sign_in_staff
from tests.fixtures.waiting import wait_until

OLD = "ana@example.org"
NEW = "ana.nueva@example.net"
STAFF_PASSWORD = "una frase de paso larga"


@pytest.fixture
def patient(clinic):
    """Ana, registered, confirmed and signed in."""
    register(clinic.client)
    confirm_by_email(clinic)
    clinic.mailbox.wait_for(OLD, "Usuario confirmado")
    clinic.mailbox.messages.clear()
    login(clinic.client)
    return clinic


def ask(client, new=NEW, repeat=None, password=PASSWORD, portal="patient"):
    return submit(
        client,
        f"/{portal}/account/email",
        {
            "new_email": new,
            "new_email_confirm": new if repeat is None else repeat,
            "current_password": password,
        },
    )


def email_of(stack, username="ana.perez") -> str:
    with stack.session_factory() as session:
        return session.scalar(select(User.email).where(User.username == username))


def changes(stack) -> list[tuple[str, str]]:
    with stack.session_factory() as session:
        return [
            (c.new_email, c.status)
            for c in session.scalars(select(EmailChange).order_by(EmailChange.id))
        ]


def press_again(client, link: str):
    """A second press of a link's button, from the page opened before the first one."""
    token = csrf_token(client, "/patient/login")
    return client.post("/" + link.split("/", 3)[3], data={"csrf_token": token})


def signed_in(client) -> bool:
    return client.get("/patient/account/email").status_code == 200


def confirm_link(stack, to=NEW) -> str:
    return link_in(
        stack.mailbox.wait_for(to, "Confirme su nueva"), "/patient/account/email/confirm/"
    )


def applied(stack) -> str:
    """Confirms the newest link, waits for the process to apply it, returns the undo link."""
    press_link_button(stack.new_client(), confirm_link(stack))
    wait_until(lambda: email_of(stack) == NEW, what="the change to apply")
    notice = stack.mailbox.wait_for(OLD, "cambió")
    return link_in(notice, "/patient/account/email/undo/")


def test_a_confirmed_change_applies_ends_other_sessions_and_offers_the_old_address_an_undo(
    patient,
):
    other_browser = patient.new_client()
    login(other_browser)
    answer = ask(patient.client)
    assert answer.headers["Location"].endswith("/patient/account/email")
    page = patient.client.get("/patient/account/email").get_data(as_text=True)
    assert NEW in page and "Le enviamos un enlace" in page
    assert email_of(patient) == OLD
    requested = body_text(patient.mailbox.wait_for(OLD, "Se pidió cambiar"))
    assert NEW in requested

    link = confirm_link(patient)
    opened = patient.new_client().get("/" + link.split("/", 3)[3])
    assert opened.status_code == 200 and "Confirmar mi nueva dirección" in opened.get_data(
        as_text=True
    )
    assert email_of(patient) == OLD, "opening the link (as mail scanners do) changes nothing"
    press_link_button(patient.new_client(), link)
    wait_until(lambda: email_of(patient) == NEW, what="the change to apply")

    assert signed_in(patient.client)
    assert not signed_in(other_browser)
    undo = link_in(patient.mailbox.wait_for(OLD, "cambió"), "/patient/account/email/undo/")
    assert "/patient/account/email/undo/" in undo
    with patient.session_factory() as session:
        event = session.scalar(
            select(AuditEvent).where(AuditEvent.action == "email_change.applied")
        )
        change = session.scalar(select(EmailChange))
        tokens = session.scalars(select(EmailToken.token_hash)).all()
    assert event.actor.startswith("user:") and event.workflow_id == change.workflow_id
    assert change.workflow_id == f"email-change/patient/{change.reference}"
    assert NEW not in change.workflow_id and all(link.split("/")[-1] != t for t in tokens)

    again = press_again(patient.new_client(), link)
    assert again.status_code == 410 and "ya se usó" in again.get_data(as_text=True)


@pytest.mark.dialects
def test_undo_inside_the_window_restores_the_address_ends_every_session_and_sends_a_reset(
    patient,
):
    ask(patient.client)
    undo = applied(patient)
    page = press_link_button(patient.new_client(), undo)
    assert "Deshicimos el cambio" in page.get_data(as_text=True)
    assert email_of(patient) == OLD
    assert not signed_in(patient.client)
    with patient.session_factory() as session:
        assert session.scalar(select(UserSession.id)) is None
        assert session.scalar(select(EmailChange.status)) == "undone"
    patient.mailbox.wait_for(OLD, "Confirme el cambio")
    again = press_again(patient.new_client(), undo)
    assert again.status_code == 410 and email_of(patient) == OLD


def test_undo_after_the_window_is_refused_and_keeps_the_new_address(patient):
    ask(patient.client)
    undo = applied(patient)
    past = utcnow() - timedelta(minutes=1)
    with patient.session_factory() as session:
        session.execute(update(EmailChange).values(undo_until=past))
        session.execute(
            update(EmailToken)
            .where(EmailToken.purpose == "email_change_undo")
            .values(expires_at=past)
        )
        session.commit()
    late = press_again(patient.new_client(), undo)
    assert late.status_code == 410 and "plazo para deshacer" in late.get_data(as_text=True)
    assert email_of(patient) == NEW and signed_in(patient.client)


def test_an_expired_confirmation_link_changes_nothing(patient):
    ask(patient.client)
    link = confirm_link(patient)
    with patient.session_factory() as session:
        session.execute(update(EmailToken).values(expires_at=utcnow() - timedelta(minutes=1)))
        session.commit()
    late = press_again(patient.new_client(), link)
    assert late.status_code == 410 and "venció" in late.get_data(as_text=True)
    assert email_of(patient) == OLD and changes(patient) == [(NEW, "pending")]


@pytest.mark.dialects
def test_a_newer_request_replaces_the_pending_one_and_its_link_stops_working(patient):
    ask(patient.client)
    first = confirm_link(patient)
    ask(patient.client, new="ana.otra@example.net")
    second = confirm_link(patient, to="ana.otra@example.net")
    assert changes(patient) == [(NEW, "replaced"), ("ana.otra@example.net", "pending")]
    refused = press_again(patient.new_client(), first)
    assert refused.status_code == 410 and "reemplazado" in refused.get_data(as_text=True)
    press_link_button(patient.new_client(), second)
    wait_until(lambda: email_of(patient) == "ana.otra@example.net", what="the second change")


@pytest.mark.parametrize(
    ("fields", "message", "field"),
    [
        ({"password": "Mala1234"}, "La contraseña actual no es correcta", "current_password"),
        ({"new": OLD.upper()}, "Esa ya es su dirección", "new_email"),
        ({"new": "no-es-una-direccion"}, "dirección de correo electrónico válida", "new_email"),
        ({"new": "a" * 250 + "@example.org"}, "Como máximo", "new_email"),
        ({"repeat": "otra@example.net"}, "Las direcciones no coinciden", "new_email_confirm"),
        ({"new": "ana\r\nBcc: x@example.net"}, "una sola línea", "new_email"),
    ],
)
def test_bad_input_gets_a_message_beside_its_field_and_changes_nothing(
    patient, fields, message, field
):
    answer = ask(patient.client, **fields)
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200 and message in page
    assert f'id="{field}-error"' in page
    assert changes(patient) == [] and email_of(patient) == OLD
    assert 'type="password"' in page and PASSWORD not in page


@pytest.mark.dialects
def test_a_wrong_password_counts_toward_the_lockout(patient):
    for _ in range(4):
        ask(patient.client, password="Mala1234")
    with patient.session_factory() as session:
        assert session.scalar(select(LoginThrottle.failures)) == 4
    locked = ask(patient.client, password="Mala1234")
    assert locked.headers["Location"].endswith("/patient/login"), "the locked session ends"
    assert "bloqueado" in patient.client.get("/patient/login").get_data(as_text=True)
    patient.mailbox.wait_for(OLD, "bloqueado")
    again = patient.app.test_client()
    refused = submit(again, "/patient/login", {"username": "ana.perez", "password": PASSWORD})
    assert "Usuario o contraseña incorrectos" in refused.get_data(as_text=True)
    assert changes(patient) == []


def test_where_addresses_are_not_shared_one_in_use_is_answered_alike_and_its_owner_told(stack):
    with stack.session_factory() as session:
        for username, email in (("rosa.m", "rosa@example.org"), ("pablo.m", "pablo@example.org")):
            session.add(
                User(
                    portal="member",
                    username=username,
                    email=email,
                    first_name=username,
                    password_hash=hash_password(PASSWORD),
                    status="active",
                    role="member",
                )
            )
        session.commit()
    submit(stack.client, "/member/login", {"username": "rosa.m", "password": PASSWORD})
    taken = ask(stack.client, new="pablo@example.org", portal="member")
    free = ask(stack.client, new="rosa.nueva@example.org", portal="member")
    assert taken.status_code == free.status_code == 302
    assert taken.headers["Location"] == free.headers["Location"]
    told = body_text(stack.mailbox.wait_for("pablo@example.org", "Sobre su dirección"))
    assert "ya tiene un usuario" in told
    stack.mailbox.wait_for("rosa.nueva@example.org", "Confirme su nueva")
    assert [m for m in stack.mailbox.to("pablo@example.org") if "Confirme" in m["Subject"]] == []
    assert changes(stack) == [("rosa.nueva@example.org", "pending")]


def test_on_the_patient_portal_an_address_another_account_uses_is_accepted(patient):
    with patient.session_factory() as session:
        session.add(
            User(
                portal="patient",
                username="luis.g",
                email="luis@example.org",
                password_hash="x",
                status="active",
                role="patient",
            )
        )
        session.commit()
    ask(patient.client, new="luis@example.org")
    press_link_button(patient.new_client(), confirm_link(patient, to="luis@example.org"))
    wait_until(lambda: email_of(patient) == "luis@example.org", what="the shared address")


def help_desk(stack, username="mesa", roles="support", portals="patient"):
    add_staff(stack.session_factory, username, STAFF_PASSWORD, roles=roles, portals=portals)
    desk = stack.new_client()
    sign_in_staff(desk, stack.session_factory, username, STAFF_PASSWORD)
    return desk


def user_id(stack, username="ana.perez") -> int:
    with stack.session_factory() as session:
        return session.scalar(select(User.id).where(User.username == username))


def test_the_help_desk_changes_a_lost_mailbox_with_a_note_and_the_new_address_confirms(patient):
    desk = help_desk(patient)
    page = f"/staff/accounts/{user_id(patient)}/email"
    without_note = submit(desk, page, {"new_email": NEW, "new_email_confirm": NEW, "note": ""})
    assert without_note.status_code == 400
    assert "Este campo es obligatorio" in without_note.get_data(as_text=True)
    assert changes(patient) == []

    note = "Llamó; verifiqué DNI y fecha de nacimiento."
    sent = submit(desk, page, {"new_email": NEW, "new_email_confirm": NEW, "note": note})
    assert sent.status_code == 302
    assert email_of(patient) == OLD, "nothing changes before the new address confirms"
    patient.mailbox.wait_for(OLD, "Se pidió cambiar")
    press_link_button(patient.new_client(), confirm_link(patient))
    wait_until(lambda: email_of(patient) == NEW, what="the help desk's change to apply")
    assert not signed_in(patient.client), "a change by the help desk ends every session"
    with patient.session_factory() as session:
        events = {
            e.action: e
            for e in session.scalars(
                select(AuditEvent).where(AuditEvent.action.like("email_change.%"))
            )
        }
    assert events["email_change.requested"].actor == "staff:mesa"
    assert events["email_change.requested"].detail["note"] == note
    assert events["email_change.applied"].actor == "staff:mesa"


def test_the_help_desk_sees_only_accounts_of_its_portals(patient):
    elsewhere = help_desk(patient, username="mesa.miembros", portals="member")
    assert elsewhere.get(f"/staff/accounts/{user_id(patient)}/email").status_code == 404
    reviewer = help_desk(patient, username="revisora", roles="reviewer")
    assert reviewer.get(f"/staff/accounts/{user_id(patient)}/email").status_code == 403


def test_once_the_undo_window_closes_the_timer_revokes_the_undo_link(patient):
    """What the process does when its undo timer fires, run here against the real database:
    the change is kept and the old address's link stops working."""
    ask(patient.client)
    undo = applied(patient)
    with patient.session_factory() as session:
        change = session.scalar(select(EmailChange))
    activities = EmailChangeActivities(
        patient.session_factory,
        Mailer(patient.settings),
        load_portals(patient.settings.portals_file),
    )
    closed = activities.end_change(
        ChangeEnding(change_id=change.id, workflow_id=change.workflow_id, status=Step.KEPT)
    )
    assert closed.status == Step.KEPT
    late = press_again(patient.new_client(), undo)
    assert late.status_code == 410 and "plazo para deshacer" in late.get_data(as_text=True)
    assert email_of(patient) == NEW
