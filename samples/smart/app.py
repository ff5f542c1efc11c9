"""Mis Datos de Salud (sample SMART app): a health app that gets a patient's access through
Acceso by a SMART standalone launch and shows their name and observations.

A separate process with its own folder, using SMART Health IT's `fhirclient` library as any
health app would: it finds Acceso through the FHIR server's CapabilityStatement, asks for
`launch/patient` and read access, and keeps offline access, so it goes on working after the
person signs out of the portal. Configured by environment:

    SMART_FHIR_BASE    the FHIR server, e.g. http://127.0.0.1:5060/fhir
    SMART_CLIENT_ID    from `acceso client add ... --public --scope ...`
    SMART_BASE_URL     where this app is reached, e.g. http://127.0.0.1:5070
    SMART_SECRET_KEY   signs this app's cookie (random if unset)

Run it with `python samples/smart/app.py --port 5070`.
"""

from __future__ import annotations

import argparse
import os
import secrets
import threading

from fhirclient import client as smart_client
from fhirclient.models.observation import Observation
from fhirclient.models.patient import Patient
from fhirclient.server import FHIRPermissionDeniedException, FHIRUnauthorizedException
from flask import Flask, redirect, render_template_string, request, session, url_for
from werkzeug.serving import WSGIRequestHandler, make_server

SCOPE = "openid fhirUser offline_access patient/Patient.r patient/Observation.rs"
"""fhirclient adds `launch/patient` itself, as it launches without a patient."""

PAGE = """<!doctype html>
<html lang="es"><head><meta charset="utf-8"><title>Mis Datos de Salud</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
a.button{display:inline-block;padding:.5rem 1rem;background:#05b;color:#fff;text-decoration:none;
border-radius:4px}</style></head><body>
<h1>Mis Datos de Salud</h1>
<p><em>Aplicación de salud de ejemplo (SMART on FHIR) conectada a Acceso.</em></p>
{% if error %}<p id="error">{{ error }}</p>{% endif %}
{% if name %}
  <p id="patient">Paciente: <strong>{{ name }}</strong> ({{ patient_id }})</p>
  <h2>Observaciones</h2>
  <table id="observations"><tr><th>Fecha</th><th>Qué</th><th>Valor</th></tr>
  {% for o in observations %}
    <tr><td>{{ o.date }}</td><td>{{ o.what }}</td><td>{{ o.value }}</td></tr>
  {% endfor %}</table>
  <p><a class="button" id="disconnect" href="{{ url_for('disconnect') }}">Olvidar esta conexión</a></p>
{% else %}
  <p><a class="button" id="connect" href="{{ url_for('launch') }}">Conectar con Acceso</a></p>
{% endif %}
</body></html>"""


def read_record(smart: smart_client.FHIRClient):
    """The patient and their observations, read with the app's current access token."""
    patient = Patient.read(smart.patient_id, smart.server)
    found = Observation.where({"patient": smart.patient_id}).perform_resources(smart.server)
    return patient, found


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=os.environ.get("SMART_SECRET_KEY") or secrets.token_urlsafe(32),
        SESSION_COOKIE_NAME="misdatos_session",
    )
    base_url = os.environ["SMART_BASE_URL"].rstrip("/")
    settings = {
        "app_id": os.environ["SMART_CLIENT_ID"],
        "api_base": os.environ["SMART_FHIR_BASE"],
        "redirect_uri": f"{base_url}/callback",
        "scope": SCOPE,
    }
    states: dict[str, dict] = {}
    """fhirclient's state (tokens included) per browser, kept here and never in the cookie."""
    lock = threading.Lock()

    def client_for_browser() -> smart_client.FHIRClient | None:
        key = session.get("key")
        with lock:
            state = states.get(key) if key else None
        if state is None:
            return None

        def save(new_state):
            with lock:
                states[key] = new_state

        return smart_client.FHIRClient(state=state, save_func=save)

    def new_client() -> smart_client.FHIRClient:
        key = session["key"] = secrets.token_urlsafe(16)

        def save(new_state):
            with lock:
                states[key] = new_state

        return smart_client.FHIRClient(settings=settings, save_func=save)

    @app.get("/")
    def home():
        smart = client_for_browser()
        if smart is None or not smart.ready or smart.patient_id is None:
            return render_template_string(PAGE, error=request.args.get("error"))
        try:
            patient, found = read_record(smart)
        except FHIRUnauthorizedException:
            try:
                smart.reauthorize()  # the access token lasts minutes; offline access, months
                patient, found = read_record(smart)
            except Exception:
                return render_template_string(PAGE, error="Acceso ya no permite esta conexión.")
        except FHIRPermissionDeniedException:
            return render_template_string(PAGE, error="Acceso ya no permite esta conexión.")
        observations = [
            {
                "date": o.effectiveDateTime.isostring if o.effectiveDateTime else "",
                "what": o.code.text,
                "value": f"{o.valueQuantity.value:g} {o.valueQuantity.unit}",
            }
            for o in found
        ]
        return render_template_string(
            PAGE,
            name=smart.human_name(patient.name[0]) if patient and patient.name else "",
            patient_id=smart.patient_id,
            observations=observations,
        )

    @app.get("/launch")
    def launch():
        return redirect(new_client().authorize_url)

    @app.get("/callback")
    def callback():
        smart = client_for_browser()
        if smart is None:
            return redirect(url_for("home"))
        try:
            smart.handle_callback(request.url)
        except Exception as error:  # fhirclient raises plain exceptions for OAuth errors
            return redirect(url_for("home", error=str(error)))
        return redirect(url_for("home"))

    @app.get("/disconnect")
    def disconnect():
        with lock:
            states.pop(session.pop("key", None), None)
        return redirect(url_for("home"))

    return app


class QuietHandler(WSGIRequestHandler):
    def log_request(self, code="-", size="-"):
        if str(code).startswith(("4", "5")):
            super().log_request(code, size)


def main() -> None:
    parser = argparse.ArgumentParser(description="Mis Datos de Salud, a sample SMART app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5070)
    args = parser.parse_args()
    server = make_server(
        args.host, args.port, create_app(), threaded=True, request_handler=QuietHandler
    )
    print(f"Mis Datos de Salud (sample SMART app) on http://{args.host}:{args.port}/", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
