"""An operator scrapes the web app and the worker after a registration and sees the counters
move; the web endpoint hides behind its bearer token."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest
import requests

from mail.mailer import Mailer
from portal.metrics import WorkerMetricsServer, count_rate_limited
from portal.models import Registration
from processes.registration.activities import RegistrationActivities, StepReached
from tests.fixtures.patients import confirm_by_email, login, register
from tests.fixtures.processes import free_port
from tests.fixtures.waiting import wait_until
from tests.test_install_recipe import metric

pytestmark = pytest.mark.dialects

TOKEN = "metrics-test-token"


def scrape_web(client) -> str:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    return response.get_data(as_text=True)


def test_metrics_are_not_found_without_the_token(clinic):
    assert clinic.client.get("/metrics").status_code == 404
    clinic.app.config["SETTINGS"] = replace(clinic.settings, metrics_token=TOKEN)
    assert clinic.client.get("/metrics").status_code == 404
    wrong = {"Authorization": "Bearer not-the-token"}
    assert clinic.client.get("/metrics", headers=wrong).status_code == 404
    assert (
        clinic.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code
        == 200
    )


def test_a_registration_moves_the_web_and_worker_counters(clinic):
    clinic.app.config["SETTINGS"] = replace(clinic.settings, metrics_token=TOKEN)
    worker_metrics = WorkerMetricsServer(f"127.0.0.1:{free_port()}", None).start()
    worker_url = f"http://127.0.0.1:{worker_metrics.port}/metrics"
    try:
        before_web = scrape_web(clinic.client)
        before_worker = requests.get(worker_url, timeout=5).text
        sent = ("acceso_activity_outcomes_total", {"activity": "send_link", "outcome": "ok"})
        failed_logins = ("acceso_logins_total", {"portal": "patient", "outcome": "failed"})
        ok_logins = ("acceso_logins_total", {"portal": "patient", "outcome": "ok"})
        limited = ("acceso_rate_limited_total", {"limit": "test"})

        assert register(clinic.client).status_code == 302
        login(clinic.client, password="not-the-password")
        confirm_by_email(clinic)
        clinic.mailbox.wait_for("ana@example.org", "Usuario confirmado")
        assert login(clinic.client).status_code == 302
        count_rate_limited("test")

        after_web = scrape_web(clinic.client)
        assert metric(after_web, "acceso_registrations_started_total", portal="patient") == 1
        assert (
            metric(
                after_web,
                "acceso_registration_outcomes_total",
                portal="patient",
                outcome="confirmed",
            )
            == 1
        )
        for name, labels in (failed_logins, ok_logins, limited):
            assert metric(after_web, name, **labels) == metric(before_web, name, **labels) + 1
        registered = {"endpoint": "registration.register", "status": "302"}
        assert metric(after_web, "acceso_http_requests_total", **registered) >= 1
        assert metric(
            after_web,
            "acceso_http_request_duration_seconds_count",
            endpoint="registration.register",
        )

        after_worker = wait_until(
            lambda: (
                (text := requests.get(worker_url, timeout=5).text)
                and metric(text, sent[0], **sent[1]) > metric(before_worker, sent[0], **sent[1])
                and text
            ),
            20,
            "the worker's send_link counter to move",
        )
        assert (
            "acceso_email_send_failures_total" in after_worker
            or "acceso_email_send_failures" in after_worker
        )
    finally:
        worker_metrics.stop()


def test_an_application_past_its_review_sla_shows_in_the_overdue_gauge(clinic):
    clinic.app.config["SETTINGS"] = replace(clinic.settings, metrics_token=TOKEN)
    with clinic.session_factory() as session:
        session.add(
            Registration(
                reference="P-OVERDUE1",
                portal="provider",
                workflow_id="registration/provider/P-OVERDUE1",
                status="confirm_email",
            )
        )
        session.commit()
    steps = RegistrationActivities(clinic.session_factory)
    steps.record_step(StepReached(workflow_id="registration/provider/P-OVERDUE1", status="review"))
    assert metric(scrape_web(clinic.client), "acceso_registrations_overdue", portal="provider") == 0

    # What the workflow records when the 24-hour SLA passes without a decision.
    steps.record_step(
        StepReached(workflow_id="registration/provider/P-OVERDUE1", status="review", overdue=True)
    )

    assert metric(scrape_web(clinic.client), "acceso_registrations_overdue", portal="provider") == 1


def test_a_failed_delivery_counts_as_an_email_failure(settings):
    failures = ("acceso_email_send_failures_total", {"template": "user_confirmed"})
    unreachable = replace(settings, smtp_port=free_port())
    server = WorkerMetricsServer(f"127.0.0.1:{free_port()}", None).start()
    url = f"http://127.0.0.1:{server.port}/metrics"
    try:
        before = metric(requests.get(url, timeout=5).text, failures[0], **failures[1])
        user = SimpleNamespace(display_name="Ana", username="ana")
        with pytest.raises(OSError):
            Mailer(unreachable).send(
                "ana@example.org",
                "user_confirmed",
                "es",
                {"user": user, "base_url": "https://acceso.test", "portal": "patient"},
                key="metrics-test",
            )
        after = metric(requests.get(url, timeout=5).text, failures[0], **failures[1])
        assert after == before + 1
    finally:
        server.stop()
