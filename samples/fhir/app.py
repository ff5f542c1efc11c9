"""A sample FHIR resource server (R4) that trusts Acceso for its tokens.

It serves Patient and Observation for the demo records and asks Acceso about every bearer token
by introspection (RFC 7662), as a real FHIR server pointed at Acceso would: the token must be
active, carry a `patient/` scope that allows the interaction, and name the very patient whose
data is asked for. A separate process with its own folder, using only Flask and requests.
Configured by environment:

    FHIR_ISSUER          the portal's issuer, e.g. http://127.0.0.1:5000/patient
    FHIR_CLIENT_ID       this server's client ID at Acceso (a confidential client)
    FHIR_CLIENT_SECRET   its secret, used only to introspect
    FHIR_BASE_URL        where this server is reached, e.g. http://127.0.0.1:5060/fhir
    FHIR_PATIENTS        CSV of patients (full_name,email,record_number[,fhir_patient_id]);
                         default: Acceso's demo records, portal/demo/patients.csv

Run it with `python samples/fhir/app.py --port 5060`.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import re
from pathlib import Path

import requests
from flask import Flask, abort, jsonify, request
from werkzeug.serving import WSGIRequestHandler, make_server

DEMO_PATIENTS = Path(__file__).resolve().parents[2] / "portal" / "demo" / "patients.csv"
FHIR_JSON = "application/fhir+json"
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
PERMISSIONS = "cruds"
SCOPE = re.compile(r"^patient/(\*|[A-Za-z]+)\.([cruds]+)$")

VITALS = (
    ("8867-4", "Heart rate", "/min", 58, 40),
    ("8480-6", "Systolic blood pressure", "mm[Hg]", 105, 35),
    ("2339-0", "Glucose [Mass/volume] in Blood", "mg/dL", 75, 45),
)
"""LOINC code, name, unit, lowest value and spread: each patient gets one of each, its value
derived from the patient id, so the demo data is the same on every start."""


def load_patients(path: Path) -> dict[str, dict]:
    """FHIR Patients by id, from a CSV of the shape `acceso import patients` reads."""
    patients = {}
    with path.open(encoding="utf-8-sig") as handle:
        for row in csv.DictReader(handle):
            patient_id = (row.get("fhir_patient_id") or "").strip() or row["record_number"].strip()
            given, _, family = row["full_name"].strip().rpartition(" ")
            patients[patient_id] = {
                "resourceType": "Patient",
                "id": patient_id,
                "identifier": [{"system": "urn:acceso:record", "value": row["record_number"]}],
                "name": [{"text": row["full_name"], "family": family, "given": given.split()}],
                "telecom": [{"system": "email", "value": row["email"]}],
            }
    return patients


def observations_of(patient_id: str) -> list[dict]:
    observations = []
    for index, (code, name, unit, low, spread) in enumerate(VITALS):
        seed = hashlib.sha256(f"{patient_id}:{code}".encode()).digest()[0]
        observations.append(
            {
                "resourceType": "Observation",
                "id": f"{patient_id}-{index + 1}",
                "status": "final",
                "code": {
                    "coding": [{"system": "http://loinc.org", "code": code, "display": name}],
                    "text": name,
                },
                "subject": {"reference": f"Patient/{patient_id}"},
                "effectiveDateTime": f"2026-0{index + 1}-15T09:30:00Z",
                "valueQuantity": {
                    "value": low + seed % spread,
                    "unit": unit,
                    "system": "http://unitsofmeasure.org",
                    "code": unit,
                },
            }
        )
    return observations


def allows(scope: str, resource: str, interaction: str) -> bool:
    """Whether any granted `patient/` scope allows this interaction (r read, s search)."""
    for granted in scope.split():
        match = SCOPE.match(granted)
        if match and match.group(1) in ("*", resource) and interaction in match.group(2):
            return True
    return False


def outcome(status: int, code: str, text: str):
    response = jsonify(
        resourceType="OperationOutcome",
        issue=[{"severity": "error", "code": code, "diagnostics": text}],
    )
    response.status_code = status
    response.mimetype = FHIR_JSON
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return response


def create_app() -> Flask:
    app = Flask(__name__)
    issuer = os.environ["FHIR_ISSUER"].rstrip("/")
    credentials = (os.environ["FHIR_CLIENT_ID"], os.environ["FHIR_CLIENT_SECRET"])
    base_url = os.environ["FHIR_BASE_URL"].rstrip("/")
    patients = load_patients(Path(os.environ.get("FHIR_PATIENTS") or DEMO_PATIENTS))

    def token_for(resource: str, interaction: str, patient_id: str):
        """Introspects the bearer token; an answer to send back if it may not do this."""
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None, outcome(401, "login", "a bearer token is required")
        answer = requests.post(
            f"{issuer}/introspect",
            data={"token": header[7:].strip(), "token_type_hint": "access_token"},
            auth=credentials,
            timeout=10,
        )
        answer.raise_for_status()
        token = answer.json()
        if not token.get("active") or token.get("token_type") == "refresh_token":
            return None, outcome(401, "login", "the token is not active")
        if not allows(token.get("scope", ""), resource, interaction):
            return None, outcome(403, "forbidden", f"no scope allows {resource} ({interaction})")
        if token.get("patient") != patient_id:
            return None, outcome(403, "forbidden", "the token is for another patient")
        return token, None

    def fhir(body: dict):
        response = jsonify(body)
        response.mimetype = FHIR_JSON
        return response

    @app.get("/fhir/metadata")
    def metadata():
        """The CapabilityStatement, whose security section tells a SMART client where Acceso is."""
        return fhir(
            {
                "resourceType": "CapabilityStatement",
                "status": "active",
                "date": "2026-12-01",
                "kind": "instance",
                "fhirVersion": "4.0.1",
                "format": ["json"],
                "implementation": {"description": "Acceso sample FHIR server", "url": base_url},
                "rest": [
                    {
                        "mode": "server",
                        "security": {
                            "service": [
                                {
                                    "coding": [
                                        {
                                            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                            "code": "SMART-on-FHIR",
                                        }
                                    ]
                                }
                            ],
                            "extension": [
                                {
                                    "url": OAUTH_URIS,
                                    "extension": [
                                        {"url": "authorize", "valueUri": f"{issuer}/authorize"},
                                        {"url": "token", "valueUri": f"{issuer}/token"},
                                        {"url": "introspect", "valueUri": f"{issuer}/introspect"},
                                        {"url": "revoke", "valueUri": f"{issuer}/revoke"},
                                    ],
                                }
                            ],
                        },
                        "resource": [
                            {
                                "type": "Patient",
                                "interaction": [{"code": "read"}],
                            },
                            {
                                "type": "Observation",
                                "interaction": [{"code": "read"}, {"code": "search-type"}],
                                "searchParam": [{"name": "patient", "type": "reference"}],
                            },
                        ],
                    }
                ],
            }
        )

    @app.get("/fhir/.well-known/smart-configuration")
    def smart_configuration():
        """SMART discovery belongs at the FHIR base: Acceso's own, as it publishes it."""
        answer = requests.get(f"{issuer}/.well-known/smart-configuration", timeout=10)
        answer.raise_for_status()
        return jsonify(answer.json())

    @app.get("/fhir/Patient/<patient_id>")
    def read_patient(patient_id: str):
        _, refused = token_for("Patient", "r", patient_id)
        if refused:
            return refused
        if patient_id not in patients:
            return outcome(404, "not-found", f"no Patient/{patient_id}")
        return fhir(patients[patient_id])

    @app.get("/fhir/Observation")
    def search_observations():
        reference = request.args.get("patient") or request.args.get("subject") or ""
        patient_id = reference.removeprefix("Patient/")
        if not patient_id:
            return outcome(400, "required", "search Observation by patient")
        _, refused = token_for("Observation", "s", patient_id)
        if refused:
            return refused
        found = observations_of(patient_id) if patient_id in patients else []
        return fhir(
            {
                "resourceType": "Bundle",
                "type": "searchset",
                "total": len(found),
                "entry": [
                    {"fullUrl": f"{base_url}/Observation/{o['id']}", "resource": o} for o in found
                ],
            }
        )

    @app.get("/fhir/Observation/<observation_id>")
    def read_observation(observation_id: str):
        patient_id, _, _ = observation_id.rpartition("-")
        _, refused = token_for("Observation", "r", patient_id)
        if refused:
            return refused
        found = [o for o in observations_of(patient_id) if o["id"] == observation_id]
        if patient_id not in patients or not found:
            abort(404)
        return fhir(found[0])

    return app


class QuietHandler(WSGIRequestHandler):
    def log_request(self, code="-", size="-"):
        if str(code).startswith(("4", "5")):
            super().log_request(code, size)


def main() -> None:
    parser = argparse.ArgumentParser(description="A sample FHIR server that trusts Acceso")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5060)
    args = parser.parse_args()
    server = make_server(
        args.host, args.port, create_app(), threaded=True, request_handler=QuietHandler
    )
    print(f"Sample FHIR server on http://{args.host}:{args.port}/fhir", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
