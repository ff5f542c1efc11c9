"""`acceso import`: whole files are validated first, then written in one transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from cli import main
from portal.models import AuditEvent, ClinicalRecord, MemberRecord

pytestmark = pytest.mark.dialects


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def records(session_factory, model):
    with session_factory() as session:
        return {
            r.record_number if model is ClinicalRecord else r.client_id: r
            for r in session.scalars(select(model))
        }


def audit_count(session_factory, action: str) -> int:
    with session_factory() as session:
        return session.scalar(select(func.count()).where(AuditEvent.action == action))


def test_good_patient_file_is_imported_with_one_audit_event(
    tmp_path, database_url, session_factory, monkeypatch, capsys
):
    monkeypatch.setenv("ACCESO_DATABASE_URL", database_url)
    csv = write(
        tmp_path / "patients.csv",
        "full_name,email,record_number\n"
        "Ana Pérez,ana@example.com,HC-1\n"
        '"Gómez, Luis",Luis@Example.COM,HC-2\n',
    )

    assert main(["import", "patients", str(csv), "--portal", "patient"]) == 0

    rows = records(session_factory, ClinicalRecord)
    assert set(rows) == {"HC-1", "HC-2"}
    assert rows["HC-2"].full_name == "Gómez, Luis"
    assert rows["HC-2"].email == "Luis@example.com"
    assert all(r.portal == "patient" for r in rows.values())
    assert "2 added" in capsys.readouterr().out
    with session_factory() as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "import.patients"))
    assert (event.actor, event.portal, event.detail["created"]) == ("cli", "patient", 2)


def test_bad_rows_are_reported_by_line_and_nothing_is_imported(
    tmp_path, database_url, session_factory, monkeypatch, capsys
):
    monkeypatch.setenv("ACCESO_DATABASE_URL", database_url)
    csv = write(
        tmp_path / "members.csv",
        "client_id,first_name,last_name,suffix,date_of_birth,email\n"
        "100,Ana,Ruiz,,1980-01-02,ana@example.com\n"
        "101,,Soto,,1990-02-03,\n"
        "102,Eva,Luna,,03/04/1990,eva@example.com\n"
        "103,Raúl,Díaz,,1975-05-06,not-an-address\n"
        "100,Otra,Ana,,1981-01-02,\n"
        "104,Too,Many,,1970-01-01,,extra\n",
    )

    assert main(["import", "members", str(csv), "--portal", "member"]) == 1

    err = capsys.readouterr().err
    assert "line 3: first_name: required" in err
    assert "line 4: date_of_birth: not a date in YYYY-MM-DD form" in err
    assert "line 5: email: not a valid address" in err
    assert "line 6: client_id: duplicate of line 2" in err
    assert "line 7: expected 6 fields, found 7" in err
    assert "line 2:" not in err
    assert "nothing imported" in err
    assert records(session_factory, MemberRecord) == {}
    assert audit_count(session_factory, "import.members") == 0


def test_missing_columns_are_reported_on_the_header_line(
    tmp_path, database_url, monkeypatch, capsys
):
    monkeypatch.setenv("ACCESO_DATABASE_URL", database_url)
    csv = write(tmp_path / "patients.csv", "full_name,email\nAna,ana@example.com\n")

    assert main(["import", "patients", str(csv)]) == 1

    assert "line 1: missing column(s): record_number" in capsys.readouterr().err


def test_reimporting_a_client_id_updates_the_member_instead_of_duplicating_it(
    tmp_path, database_url, session_factory, monkeypatch, capsys
):
    monkeypatch.setenv("ACCESO_DATABASE_URL", database_url)
    header = "client_id,first_name,last_name,suffix,date_of_birth,email\n"
    first = write(tmp_path / "a.csv", header + "200,Ana,Ruiz,,1980-01-02,ana@example.com\n")
    second = write(
        tmp_path / "b.csv",
        header
        + "200,Ana María,Ruiz,Jr.,1980-01-02,ana.maria@example.com\n201,Leo,Paz,,1999-12-31,\n",
    )

    assert main(["import", "members", str(first)]) == 0
    assert main(["import", "members", str(second)]) == 0

    rows = records(session_factory, MemberRecord)
    assert set(rows) == {"200", "201"}
    assert (rows["200"].first_name, rows["200"].suffix, rows["200"].email) == (
        "Ana María",
        "Jr.",
        "ana.maria@example.com",
    )
    assert "1 added, 1 updated" in capsys.readouterr().out
    assert audit_count(session_factory, "import.members") == 2


def test_records_go_only_to_a_portal_whose_flow_reads_them(
    tmp_path, database_url, session_factory, monkeypatch, capsys
):
    monkeypatch.setenv("ACCESO_DATABASE_URL", database_url)
    csv = write(tmp_path / "p.csv", "full_name,email,record_number\nAna,ana@example.com,HC-1\n")

    assert main(["import", "patients", str(csv), "--portal", "member"]) == 1
    assert main(["import", "patients", str(csv), "--portal", "nowhere"]) == 1

    err = capsys.readouterr().err
    assert "runs the member flow" in err
    assert "unknown portal 'nowhere'" in err
    assert records(session_factory, ClinicalRecord) == {}


def test_a_patient_file_may_carry_dates_of_birth_and_one_without_keeps_them(
    tmp_path, database_url, session_factory, monkeypatch
):
    monkeypatch.setenv("ACCESO_DATABASE_URL", database_url)
    with_dates = write(
        tmp_path / "patients.csv",
        "full_name,email,record_number,date_of_birth\n"
        "Ana Pérez,ana@example.com,HC-1,1980-01-02\n"
        "Luis Gómez,luis@example.com,HC-2,\n",
    )
    assert main(["import", "patients", str(with_dates), "--portal", "patient"]) == 0
    rows = records(session_factory, ClinicalRecord)
    assert (rows["HC-1"].date_of_birth, rows["HC-2"].date_of_birth) == ("1980-01-02", "")

    without = write(
        tmp_path / "again.csv", "full_name,email,record_number\nAna Pérez,ana@example.org,HC-1\n"
    )
    assert main(["import", "patients", str(without), "--portal", "patient"]) == 0
    rows = records(session_factory, ClinicalRecord)
    assert (rows["HC-1"].email, rows["HC-1"].date_of_birth) == ("ana@example.org", "1980-01-02")

    bad = write(
        tmp_path / "bad.csv",
        "full_name,email,record_number,date_of_birth\nAna Pérez,ana@example.com,HC-1,02/01/1980\n",
    )
    assert main(["import", "patients", str(bad), "--portal", "patient"]) == 1


def test_fhir_patient_id_defaults_to_the_record_key_and_may_be_given(
    tmp_path, database_url, session_factory, monkeypatch, capsys
):
    monkeypatch.setenv("ACCESO_DATABASE_URL", database_url)
    patients = write(
        tmp_path / "patients.csv",
        "full_name,email,record_number,fhir_patient_id\n"
        "Ana Pérez,ana@example.com,HC-1,pat-ana\n"
        "Luis Gómez,luis@example.com,HC-2,\n",
    )
    members = write(
        tmp_path / "members.csv",
        "client_id,first_name,last_name,suffix,date_of_birth,email\n"
        "100200300,Ana,Rodríguez,,1985-04-12,\n",
    )

    assert main(["import", "patients", str(patients), "--portal", "patient"]) == 0
    assert main(["import", "members", str(members), "--portal", "member"]) == 0

    clinical = records(session_factory, ClinicalRecord)
    assert (clinical["HC-1"].fhir_patient_id, clinical["HC-2"].fhir_patient_id) == (
        "pat-ana",
        "HC-2",
    )
    assert records(session_factory, MemberRecord)["100200300"].fhir_patient_id == "100200300"


def test_a_fhir_patient_id_that_is_not_a_fhir_id_is_reported_by_line(
    tmp_path, database_url, session_factory, monkeypatch, capsys
):
    monkeypatch.setenv("ACCESO_DATABASE_URL", database_url)
    csv = write(
        tmp_path / "patients.csv",
        "full_name,email,record_number,fhir_patient_id\nAna Pérez,ana@example.com,HC-1,pat ana\n",
    )

    assert main(["import", "patients", str(csv), "--portal", "patient"]) == 1

    assert "line 2: fhir_patient_id: not a FHIR id" in capsys.readouterr().err
    assert records(session_factory, ClinicalRecord) == {}
