"""One patient account per clinical record, several per address: a family sharing one mailbox
registers each of its records, and the username reminder lists every username of the address."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.models import ClinicalRecord, User
from tests.fixtures.patients import register
from tests.fixtures.smtp import body_text, link_in
from tests.fixtures.stack import press_link_button, submit
from tests.fixtures.waiting import wait_until


@pytest.fixture
def family(clinic):
    """Carmen's record carries her daughter Ana's address, as elderly parents' records often do."""
    with clinic.session_factory() as session:
        session.add(
            ClinicalRecord(
                portal="patient",
                record_number="HC-3",
                full_name="Carmen Núñez",
                email="ana@example.org",
                date_of_birth="1941-03-09",
            )
        )
        session.commit()
    return clinic


def accounts(stack) -> dict[str, str]:
    """Each account's username and the record number it is linked to."""
    with stack.session_factory() as session:
        rows = session.execute(
            select(User.username, ClinicalRecord.record_number).join(
                ClinicalRecord, User.clinical_record_id == ClinicalRecord.id, isouter=True
            )
        )
        return dict(rows.all())


@pytest.mark.dialects
def test_two_records_sharing_an_address_each_get_their_own_account(family):
    first = register(family.client)
    second = register(family.new_client(), username="carmen.nunez", full_name="  CARMEN nunez ")
    assert first.headers["Location"] == second.headers["Location"]
    assert accounts(family) == {"ana.perez": "HC-1", "carmen.nunez": "HC-3"}
    confirmations = wait_until(
        lambda: (
            [m for m in family.mailbox.to("ana@example.org") if "Confirme" in m["Subject"]][1:]
            and [m for m in family.mailbox.to("ana@example.org") if "Confirme" in m["Subject"]]
        ),
        what="both confirmation e-mails",
    )
    links = {link_in(message, "/patient/confirm/") for message in confirmations}
    assert len(links) == 2
    for link in links:
        press_link_button(family.new_client(), link)
    answer = submit(
        family.client, "/patient/recover/username", {"email": "ana@example.org"}, follow=True
    )
    assert "Si hay usuarios asociados" in answer.get_data(as_text=True)
    text = body_text(family.mailbox.wait_for("ana@example.org", "Sus usuarios"))
    assert "ana.perez" in text and "carmen.nunez" in text


@pytest.mark.dialects
def test_a_second_registration_for_the_same_record_gets_the_already_registered_e_mail(family):
    register(family.client)
    family.mailbox.wait_for("ana@example.org", "Confirme")
    again = register(family.new_client(), username="ana.otra", full_name="ana perez")
    assert again.headers["Location"] == "/patient/register/check-mail"
    existing = body_text(family.mailbox.wait_for("ana@example.org", "Sobre su registro"))
    assert "ya tiene un usuario" in existing
    assert accounts(family) == {"ana.perez": "HC-1"}


def test_a_name_matching_none_of_an_address_records_makes_no_account(family):
    answer = register(family.client, username="otra.persona", full_name="Otra Persona")
    assert answer.headers["Location"] == "/patient/register/check-mail"
    family.mailbox.wait_for("ana@example.org", "Sobre su registro")
    assert accounts(family) == {}


def test_the_only_record_of_an_address_is_matched_whatever_name_is_typed(clinic):
    register(clinic.client, email="luis@example.org", username="luis.g", full_name="L. Gómez")
    clinic.mailbox.wait_for("luis@example.org", "Confirme")
    assert accounts(clinic) == {"luis.g": "HC-2"}


def test_a_record_taken_by_a_concurrent_registration_gets_the_already_registered_e_mail(
    family, monkeypatch
):
    """The second of two registrations racing for one record passes the check before the first
    commits; the database's one-account-per-record rule refuses it, and it is answered alike."""
    register(family.client)
    family.mailbox.wait_for("ana@example.org", "Confirme")
    monkeypatch.setattr("processes.registration.service.account_of_record", lambda db, record: None)
    again = register(family.new_client(), username="ana.otra")
    assert again.headers["Location"] == "/patient/register/check-mail"
    existing = body_text(family.mailbox.wait_for("ana@example.org", "Sobre su registro"))
    assert "ya tiene un usuario" in existing
    assert accounts(family) == {"ana.perez": "HC-1"}
