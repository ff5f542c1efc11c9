"""The staff console shows the work at a glance: counts per portal the person may see, statuses in
words, history and audit as dates and sentences with filters, duplicates as a warning beside the
decision, and which field of an identity try did not match the record. Also: texts from the
portal config in the reader's language, and the organisation and policy links on every page."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import event, update

from portal.config import Text, load_portals, load_site
from portal.models import AppRegistration, AuditEvent, MemberRecord, Office, Registration, User
from processes.registration.activities import IdentityAttempt, mismatched_fields
from tests.fixtures.showcase import STAFF_PASSWORD, seed_showcase
from tests.fixtures.stack import submit
from tests.fixtures.staff import add_staff, sign_in_staff
from web import create_app

pytestmark = pytest.mark.dialects


@pytest.fixture
def console(settings, session_factory):
    showcase = seed_showcase(session_factory)
    app = create_app({"SETTINGS": settings, "TESTING": True})
    client = app.test_client()
    sign_in_staff(client, session_factory, "marta.admin", STAFF_PASSWORD)
    yield app, client, session_factory, showcase
    app.extensions["acceso.temporal"].close()


def staff(app, session_factory, username, roles, portals=""):
    add_staff(session_factory, username, STAFF_PASSWORD, roles=roles, portals=portals)
    client = app.test_client()
    sign_in_staff(client, session_factory, username, STAFF_PASSWORD)
    return client


def test_the_console_home_counts_pending_overdue_and_open_cases_per_portal(console):
    app, client, session_factory, _ = console
    with session_factory() as session:
        session.add(
            Registration(
                reference="PLATE0001",
                portal="provider",
                workflow_id="registration/provider/PLATE0001",
                status="pending_review",
                overdue=True,
            )
        )
        session.commit()
    page = client.get("/staff/").get_data(as_text=True)
    provider = page.split("Portal de Proveedores")[1].split("</li>")[0]
    assert ">2</dd>" in provider  # two applications waiting
    assert '<span class="badge overdue">1</span>' in provider
    member = page.split("Portal Seguro del Miembro")[1].split("</li>")[0]
    assert '<span class="badge warning">1</span>' in member  # one open case


def test_the_console_home_counts_proxy_requests_and_health_apps_waiting_for_a_decision(console):
    app, client, session_factory, _ = console
    with session_factory() as session:
        session.execute(update(AppRegistration).values(overdue=True))
        session.commit()
    page = client.get("/staff/").get_data(as_text=True)
    patient = page.split("Portal del Paciente")[1].split("</li>")[0]
    proxies = patient.split("Accesos en nombre de otra persona por revisar")[1].split("</dd>")[0]
    apps = patient.split("Aplicaciones de salud por revisar")[1].split("</dd>")[0]
    assert "1" in proxies and "vencidas" not in proxies
    assert '1 <span class="badge overdue">1 vencidas</span>' in apps
    provider_only = staff(app, session_factory, "rita", "reviewer", portals="provider")
    work = provider_only.get("/staff/").get_data(as_text=True).split("Trabajo pendiente")[1]
    assert "Aplicaciones de salud" not in work.split("<h2>")[0]


def test_the_counts_cost_one_query_whatever_the_number_of_portals(console):
    app, client, *_ = console
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        if "count(" in statement.lower():
            statements.append(statement)

    engine = app.extensions["acceso.engine"]
    event.listen(engine, "before_cursor_execute", count)
    try:
        assert client.get("/staff/").status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == 1


def test_a_reviewer_of_one_portal_sees_only_its_counts(console):
    app, _client, session_factory, _ = console
    reviewer = staff(app, session_factory, "rita", "reviewer", portals="provider")
    page = reviewer.get("/staff/").get_data(as_text=True)
    assert "Portal de Proveedores" in page
    assert "Casos abiertos" not in page
    assert "Portal Seguro del Miembro" not in page.split("Trabajo pendiente")[1]


def test_statuses_read_as_words_in_badges_in_each_language(console):
    _app, client, _sf, showcase = console
    page = client.get(f"/staff/reviews/{showcase.review_reference}").get_data(as_text=True)
    assert '<span class="badge warning">En revisión</span>' in page
    english = client.get(f"/staff/reviews/{showcase.review_reference}?lang=en")
    assert '<span class="badge warning">In review</span>' in english.get_data(as_text=True)


def test_history_reads_as_dates_and_sentences(console):
    _app, client, session_factory, showcase = console
    with session_factory() as session:
        session.add(
            AuditEvent(
                at=datetime(2026, 11, 30, 14, 5, 33, 123456, tzinfo=UTC),
                portal="provider",
                actor="staff:rita",
                action="review.decision_sent",
                workflow_id=f"registration/provider/{showcase.review_reference}",
                detail={"approved": False, "reason": "NPI de otra oficina"},
            )
        )
        session.commit()
    page = client.get(f"/staff/reviews/{showcase.review_reference}").get_data(as_text=True)
    assert "30 nov 2026, 14:05" in page
    assert "rita (personal) denegó la solicitud." in page
    assert "NPI de otra oficina" in page
    assert "review.decision_sent" not in page and ".123456" not in page
    english = client.get(f"/staff/reviews/{showcase.review_reference}?lang=en")
    assert "rita (staff) denied the application." in english.get_data(as_text=True)


def test_the_audit_log_filters_by_who_what_portal_and_dates(console):
    _app, client, session_factory, _ = console
    with session_factory() as session:
        for day, actor, action, portal in (
            (1, "staff:rita", "staff.login", ""),
            (2, "applicant", "identity.failed", "member"),
            (3, "applicant", "registration.submitted", "provider"),
            (3, "system", "email.confirm_email", "provider"),
        ):
            session.add(
                AuditEvent(
                    at=datetime(2026, 10, day, 9, 0, tzinfo=UTC),
                    actor=actor,
                    action=action,
                    portal=portal,
                    detail={"strikes": 1},
                )
            )
        session.commit()

    def sentences(query: str) -> str:
        return client.get(f"/staff/audit?{query}").get_data(as_text=True)

    by_actor = sentences("actor=rita")
    assert "rita (personal) entró a la consola." in by_actor
    assert "El solicitante" not in by_actor
    by_action = sentences("action=identity&since=2026-10-01&until=2026-10-31")
    assert "2 oct 2026, 09:00" in by_action and "El solicitante envió" not in by_action
    by_portal = sentences("portal=provider&since=2026-10-01&until=2026-10-31")
    assert "El solicitante envió el registro." in by_portal
    assert "Se envió el correo «confirmación del correo electrónico»." in by_portal
    assert "validar su identidad" not in by_portal
    by_days = sentences("since=2026-10-02&until=2026-10-02")
    assert "2 oct 2026" in by_days and "1 oct 2026" not in by_days and "3 oct 2026" not in by_days
    assert "Escriba una fecha válida." in sentences("since=ayer")


def test_a_duplicate_npi_is_an_amber_warning_beside_the_decision(console):
    _app, client, session_factory, showcase = console
    page = client.get(f"/staff/reviews/{showcase.review_reference}").get_data(as_text=True)
    decision = page.split("<h2>Decisión</h2>")[1].split("</form>")[0]
    assert 'class="flash warning" id="duplicate-warning"' in decision
    assert "Clínica del Norte ya tiene el mismo NPI y el mismo Tax ID." in decision
    assert 'aria-describedby="duplicate-warning"' in decision
    assert decision.index("duplicate-warning") < decision.index('value="approve"')


def test_no_warning_beside_the_decision_without_a_duplicate(console):
    _app, client, session_factory, showcase = console
    with session_factory() as session:
        session.query(User).filter(User.role == "provider_primary").delete()
        session.query(Office).delete()
        session.commit()
    page = client.get(f"/staff/reviews/{showcase.review_reference}").get_data(as_text=True)
    assert "duplicate-warning" not in page


def test_a_case_names_the_field_that_did_not_match_the_record():
    record = MemberRecord(
        portal="member",
        client_id="100200301",
        first_name="Carlos",
        last_name="Santos",
        suffix="Jr.",
        date_of_birth="1979-11-03",
    )
    typed = {
        "portal": "member",
        "workflow_id": "w",
        "first_name": " carlos ",
        "last_name": "SANTOS",
        "suffix": "",
        "date_of_birth": "1979-11-04",
        "client_id": "100200301",
        "strike_limit": 3,
    }
    assert mismatched_fields(record, IdentityAttempt(**typed)) == ["date_of_birth", "suffix"]
    assert mismatched_fields(None, IdentityAttempt(**typed)) == ["client_id"]
    assert (
        mismatched_fields(
            record, IdentityAttempt(**{**typed, "suffix": "jr.", "date_of_birth": "1979-11-03"})
        )
        == []
    )


def test_the_case_page_says_what_did_not_match(console):
    _app, client, session_factory, showcase = console
    from portal.models import IdentityTry

    with session_factory() as session:
        for attempt in session.query(IdentityTry):
            attempt.mismatch = "date_of_birth,suffix"
        session.commit()
    page = client.get(f"/staff/cases/{showcase.case_id}").get_data(as_text=True)
    assert "Qué no coincidió con el expediente en el último intento:" in page
    assert "fecha de nacimiento, sufijo" in page
    english = client.get(f"/staff/cases/{showcase.case_id}?lang=en").get_data(as_text=True)
    assert "date of birth, suffix" in english


def test_portal_texts_are_shown_in_the_readers_language_with_a_fallback(console, tmp_path):
    app, _client, _sf, _ = console
    anonymous = app.test_client()
    spanish = anonymous.get("/provider/login?lang=es").get_data(as_text=True)
    english = anonymous.get("/provider/login?lang=en").get_data(as_text=True)
    assert "Servicio al Proveedor" in spanish and "Provider Services" in english
    assert "Servicio al Proveedor" not in english
    assert "Portal de Proveedores" in spanish and "Provider Portal" in english

    config = tmp_path / "portals.toml"
    config.write_text(
        '[portals.p]\nname = { es = "Portal", en = "Portal EN" }\nflow = "patient"\n'
        'support_phones = [{ label = { es = "Ayuda" }, number = "1" }]\n'
    )
    portal = load_portals(config)["p"]
    label = portal.support_phones[0][0]
    assert isinstance(label, Text) and label.get("en") == "Ayuda"  # falls back to Spanish
    assert portal.name.get("en") == "Portal EN" and portal.name == "Portal"


def test_the_header_and_footer_carry_the_organisation_and_its_policy_links(console):
    app, *_ = console
    page = app.test_client().get("/patient/login?lang=en").get_data(as_text=True)
    site = load_site(Path(app.config["SETTINGS"].portals_file))
    assert 'src="/static/logo.svg"' in page
    assert "Acceso Clinic" in page  # the patient portal's organisation, in English
    for url, label in (
        (site.privacy_url, "Privacy"),
        (site.terms_url, "Terms of use"),
        (site.accessibility_url, "Accessibility"),
        (site.language_assistance_url, "Language assistance"),
    ):
        assert f'<a href="{url}">{label}</a>' in page


def test_the_user_menu_is_named_with_the_visible_username(console):
    app, *_ = console
    client = app.test_client()
    submit(client, "/patient/login", {"username": "ana.perez", "password": "Clave123segura"})
    page = client.get("/patient/").get_data(as_text=True)
    assert 'aria-label="Menú de usuario: ana.perez"' in page
