"""A SMART standalone launch end to end with the `fhirclient` library (SMART Health IT's Python
client) against the sample FHIR server, which checks every token by introspection at Acceso."""

from __future__ import annotations

import re
import sys

import pytest
import requests
from fhirclient import client as smart_client
from fhirclient.models.observation import Observation
from fhirclient.models.patient import Patient
from fhirclient.server import FHIRPermissionDeniedException, FHIRUnauthorizedException
from requests import HTTPError

from cli.imports import KINDS, import_records
from tests.fixtures.oidc import REDIRECT_URI, answers
from tests.fixtures.processes import free_port
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.system

DEMO_PATIENTS = "portal/demo/patients.csv"
APP_SCOPES = ["openid", "fhirUser", "launch/patient", "offline_access", "patient/*.rs"]


@pytest.fixture
def fhir_server(provider, spawn):
    """The sample FHIR server as its own process, introspecting at the patient portal."""
    server = provider.add_client("fhir-server", first_party=False)
    port = free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    _, output = spawn(
        [sys.executable, "samples/fhir/app.py", "--port", str(port)],
        env={
            "FHIR_ISSUER": provider.issuer("patient"),
            "FHIR_CLIENT_ID": server.client_id,
            "FHIR_CLIENT_SECRET": server.client_secret,
            "FHIR_BASE_URL": base,
        },
    )
    output.wait_for(r"Sample FHIR server on", 30)
    wait_until(lambda: answers(f"{base}/metadata"), 30, "the FHIR server to answer")
    return base


@pytest.fixture
def maria(provider):
    """María from the demo records, with a patient-portal account."""
    import_records(provider.session_factory, KINDS["patients"], DEMO_PATIENTS, "patient")
    provider.add_user("maria", email="maria.fernandez@example.com", full_name="María Fernández")
    return "HC-100001"


def test_a_health_app_launches_standalone_reads_its_patient_and_keeps_access_offline(
    provider, fhir_server, maria
):
    app = provider.add_client(
        "mis-datos", public=True, first_party=False, approved_scopes=APP_SCOPES
    )
    smart = smart_client.FHIRClient(
        settings={
            "app_id": app.client_id,
            "api_base": fhir_server,
            "redirect_uri": REDIRECT_URI,
            "scope": "openid fhirUser offline_access patient/*.rs",
        }
    )
    discovered = requests.get(f"{fhir_server}/.well-known/smart-configuration", timeout=5).json()
    assert "context-standalone-patient" in discovered["capabilities"]

    browser = provider.browser()
    authorize_url = smart.authorize_url
    assert "launch%2Fpatient" in authorize_url
    page = browser.sign_in(browser.walk(authorize_url), "maria")
    assert "Sus resultados de laboratorio y signos vitales" not in page.text
    assert "Toda su historia clínica (leer, buscar)" in page.text
    callback = browser.submit(page, {"decision": "allow", "resource": ["patient/*.rs"]})
    smart.handle_callback(callback.headers["Location"])

    assert smart.patient_id == maria
    assert smart.human_name(smart.patient.name[0]) == "María José Fernández"
    observations = Observation.where({"patient": maria}).perform_resources(smart.server)
    assert {o.code.coding[0].code for o in observations} == {"8867-4", "8480-6", "2339-0"}
    assert all(o.subject.reference == f"Patient/{maria}" for o in observations)
    with pytest.raises(FHIRPermissionDeniedException):
        Patient.read("HC-100002", smart.server)
    with pytest.raises(FHIRPermissionDeniedException):
        Observation.where({"patient": "HC-100002"}).perform_resources(smart.server)

    browser.submit(browser.get(f"{provider.issuer()}/end-session"), {})
    spent = smart.server.auth.access_token
    assert smart.reauthorize()
    assert smart.server.auth.access_token != spent
    assert Patient.read(maria, smart.server).id == maria

    activity = browser.sign_in(browser.get(f"{provider.issuer()}/login"), "maria")
    activity = browser.get(f"{provider.issuer()}/account/activity")
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', activity.text).group(1)
    browser.post(
        f"{provider.issuer()}/account/activity/applications/remove",
        data={"client": app.pk, "csrf_token": token},
    )
    with pytest.raises(FHIRUnauthorizedException):
        Patient.read(maria, smart.server)
    with pytest.raises(HTTPError):
        smart.reauthorize()


def test_the_sample_smart_app_shows_the_patients_name_and_observations(
    provider, fhir_server, maria, spawn
):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = provider.add_client(
        "mis-datos-de-salud",
        public=True,
        first_party=False,
        redirect_uris=[f"{base}/callback"],
        approved_scopes=[*APP_SCOPES, "patient/Patient.r", "patient/Observation.rs"],
    )
    _, output = spawn(
        [sys.executable, "samples/smart/app.py", "--port", str(port)],
        env={
            "SMART_FHIR_BASE": fhir_server,
            "SMART_CLIENT_ID": app.client_id,
            "SMART_BASE_URL": base,
        },
    )
    output.wait_for(r"sample SMART app\) on", 30)
    wait_until(lambda: answers(f"{base}/"), 30, "the sample SMART app to answer")
    browser = provider.browser()

    launch = browser.get(f"{base}/launch", allow_redirects=False)
    page = browser.sign_in(browser.walk(launch.headers["Location"]), "maria")
    callback = browser.submit(
        page,
        {"decision": "allow", "resource": ["patient/Patient.r", "patient/Observation.rs"]},
    )
    home = browser.get(callback.headers["Location"])

    assert "María José Fernández" in home.text and "HC-100001" in home.text
    assert "Heart rate" in home.text and "Glucose" in home.text
