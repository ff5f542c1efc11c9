"""Mi Historia Clínica (sample app): a relying party that signs people in with Acceso.

A separate process with its own folder, using only Authlib's Flask client, as any application
connecting to Acceso would. Configured by environment:

    RP_ISSUER          the portal's issuer, e.g. http://127.0.0.1:5000/patient
    RP_CLIENT_ID       from `acceso client add`
    RP_CLIENT_SECRET   from `acceso client add` (empty for a public client)
    RP_BASE_URL        where this app is reached, e.g. http://127.0.0.1:5050
    RP_SECRET_KEY      signs this app's cookie (random if unset)

Run it with `python samples/rp/app.py --port 5050`.
"""

from __future__ import annotations

import argparse
import os
import secrets
import threading
import time
from urllib.parse import urlencode

import requests
from authlib.integrations.flask_client import OAuth
from flask import Flask, abort, redirect, render_template_string, request, session, url_for
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry
from werkzeug.serving import WSGIRequestHandler, make_server

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"

PAGE = """<!doctype html>
<html lang="es"><head><meta charset="utf-8"><title>Mi Historia Clínica</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
a.button{display:inline-block;padding:.5rem 1rem;background:#0b5;color:#fff;text-decoration:none;
border-radius:4px}</style></head><body>
<h1>Mi Historia Clínica</h1>
<p><em>Aplicación de ejemplo conectada a Acceso.</em></p>
{% if user %}
  <p id="greeting">Hola, {{ user.get("name") or user.get("preferred_username") or "paciente" }}.</p>
  <h2>Lo que Acceso nos dijo de usted</h2>
  <table id="claims">{% for key, value in user.items() %}
    <tr><th>{{ key }}</th><td>{{ value }}</td></tr>{% endfor %}
  </table>
  <p><a class="button" id="logout" href="{{ url_for('logout') }}">Cerrar sesión</a></p>
{% else %}
  {% if ended %}<p id="ended">Su sesión terminó.</p>{% endif %}
  <p><a class="button" id="login" href="{{ url_for('login') }}">Iniciar sesión con Acceso</a></p>
{% endif %}
</body></html>"""


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=os.environ.get("RP_SECRET_KEY") or secrets.token_urlsafe(32),
        SESSION_COOKIE_NAME="historia_session",
        SESSION_COOKIE_SAMESITE="Lax",
    )
    issuer = os.environ["RP_ISSUER"].rstrip("/")
    base_url = os.environ.get("RP_BASE_URL", "http://127.0.0.1:5050").rstrip("/")
    client_id = os.environ["RP_CLIENT_ID"]
    oauth = OAuth(app)
    oauth.register(
        "acceso",
        client_id=client_id,
        client_secret=os.environ.get("RP_CLIENT_SECRET") or None,
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_kwargs={"scope": "openid profile email roles", "code_challenge_method": "S256"},
    )
    ended: dict[str, float] = {}
    """When Acceso said a session ended: by its `sid`, or by `sub` for every session of a person."""
    ended_lock = threading.Lock()

    def current_user():
        user = session.get("user")
        if not user:
            return None
        with ended_lock:
            ended_at = max(
                ended.get(f"sub:{user['sub']}", 0), ended.get(f"sid:{session.get('sid')}", 0)
            )
        if ended_at >= session.get("signed_in_at", 0):
            session.clear()
            return None
        return user

    @app.get("/")
    def home():
        return render_template_string(
            PAGE, user=current_user(), ended=request.args.get("ended") == "1"
        )

    @app.get("/login")
    def login():
        return oauth.acceso.authorize_redirect(f"{base_url}/callback")

    @app.get("/callback")
    def callback():
        token = oauth.acceso.authorize_access_token()
        claims = dict(token["userinfo"])
        claims.update(oauth.acceso.userinfo(token=token))
        shown = ("sub", "preferred_username", "name", "email", "email_verified", "locale")
        session["user"] = {k: claims[k] for k in (*shown, "portal", "roles") if k in claims}
        session["id_token"] = token["id_token"]
        session["sid"] = token["userinfo"].get("sid")
        session["signed_in_at"] = time.time()
        return redirect(url_for("home"))

    @app.get("/logout")
    def logout():
        id_token = session.get("id_token")
        session.clear()
        end_session = oauth.acceso.load_server_metadata()["end_session_endpoint"]
        params = {"post_logout_redirect_uri": f"{base_url}/?ended=1", "client_id": client_id}
        if id_token:
            params["id_token_hint"] = id_token
        return redirect(f"{end_session}?{urlencode(params)}")

    @app.post("/backchannel-logout")
    def backchannel_logout():
        """Acceso says one session (`sid`) or all of this person's sessions ended: end ours too
        (OIDC Back-Channel Logout)."""
        raw = request.form.get("logout_token", "")
        jwks_uri = oauth.acceso.load_server_metadata()["jwks_uri"]
        keys = KeySet.import_key_set(requests.get(jwks_uri, timeout=5).json())
        try:
            decoded = jwt.decode(raw, keys, algorithms=["ES256"])
            JWTClaimsRegistry(
                iss={"essential": True, "value": issuer},
                aud={"essential": True, "value": client_id},
                sub={"essential": True},
                exp={"essential": True},
            ).validate(decoded.claims)
        except Exception:
            abort(400)
        if BACKCHANNEL_EVENT not in decoded.claims.get("events", {}):
            abort(400)
        sid = decoded.claims.get("sid")
        with ended_lock:
            ended[f"sid:{sid}" if sid else f"sub:{decoded.claims['sub']}"] = time.time()
        return "", 200, {"Cache-Control": "no-store"}

    return app


class QuietHandler(WSGIRequestHandler):
    """No request lines in the log: the callback's query carries an authorization code."""

    def log_request(self, *args, **kwargs) -> None:
        return


def main() -> None:
    parser = argparse.ArgumentParser(description="Mi Historia Clínica, a sample Acceso client")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5050)
    args = parser.parse_args()
    server = make_server(
        args.host, args.port, create_app(), threaded=True, request_handler=QuietHandler
    )
    print(f"Mi Historia Clínica (sample app) on http://{args.host}:{args.port}/", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
