"""What an outside review found the pages still gave away, each closed and proved here against the
app itself: response headers, error pages, request size, redirects after sign-in, and attempts per
client address (the two-worker proof runs gunicorn in tests/test_rate_limit_workers.py)."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from portal.models import LoginThrottle, User, utcnow
from portal.passwords import hash_password
from tests.fixtures.smtp import free_port
from tests.fixtures.stack import csrf_token, submit
from tests.fixtures.staff import add_staff, sign_in_staff
from web import create_app
from web.sessions import SESSIONLESS_ENDPOINTS

PASSWORD = "Clave123segura"


@pytest.fixture
def app(settings, session_factory):
    """The web app alone: sign-in and error pages never need Temporal, so none is running."""
    settings = replace(settings, temporal_address=f"127.0.0.1:{free_port()}")
    application = create_app({"SETTINGS": settings, "TESTING": True})
    with session_factory() as session:
        session.add(
            User(
                portal="patient",
                username="ana.perez",
                email="ana@example.org",
                full_name="Ana Pérez",
                password_hash=hash_password(PASSWORD),
                status="active",
                role="patient",
                activated_at=utcnow(),
            )
        )
        session.commit()
    add_staff(session_factory, "rosa", PASSWORD, roles="reviewer")
    yield application
    application.extensions["acceso.temporal"].close()


@pytest.fixture
def client(app):
    return app.test_client()


# Content Security Policy and the other browser headers --------------------------------------


def directives(response) -> dict[str, str]:
    policy = response.headers["Content-Security-Policy"]
    return {
        part.split(" ", 1)[0]: part.split(" ", 1)[1] if " " in part else ""
        for part in (p.strip() for p in policy.split(";"))
        if part
    }


def test_every_page_sends_a_strict_content_security_policy(client):
    for path in ("/", "/patient/login", "/staff/login", "/patient/register", "/missing/"):
        response = client.get(path)
        csp = directives(response)
        assert re.fullmatch(r"'self' 'nonce-[A-Za-z0-9_-]{20,}'", csp["script-src"]), path
        assert "unsafe-inline" not in csp["script-src"] and "unsafe-eval" not in csp["script-src"]
        assert csp["object-src"] == "'none'"
        assert csp["frame-ancestors"] == "'none'"
        assert csp["form-action"] == "'self'"
        assert csp["base-uri"] == "'none'"
        assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"
        assert "camera=()" in response.headers["Permissions-Policy"]


def test_json_answers_get_a_policy_that_allows_nothing_and_the_other_headers(client):
    for path in ("/healthz", "/patient/jwks", "/patient/.well-known/openid-configuration"):
        response = client.get(path)
        csp = directives(response)
        assert response.mimetype == "application/json", path
        assert csp["default-src"] == "'none'" and csp["frame-ancestors"] == "'none'", path
        assert (
            "script-src" not in csp and "nonce-" not in response.headers["Content-Security-Policy"]
        )
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"


def test_every_endpoint_that_skips_the_sign_in_exists_and_answers_json_or_nothing(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert endpoints >= SESSIONLESS_ENDPOINTS
    assert not {e for e in SESSIONLESS_ENDPOINTS if e.split(".")[0] in ("auth", "account")}


def test_a_redirect_gets_the_policy_that_allows_nothing_and_the_other_headers(client):
    response = submit(client, "/patient/login", {"username": "ana.perez", "password": PASSWORD})
    csp = directives(response)
    assert response.status_code == 302
    assert csp["default-src"] == "'none'" and csp["frame-ancestors"] == "'none'"
    assert "nonce-" not in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"


def test_each_response_has_its_own_nonce(client):
    first = directives(client.get("/patient/login"))["script-src"]
    second = directives(client.get("/patient/login"))["script-src"]
    assert first != second


def test_pages_carry_no_inline_script_or_style_the_policy_would_refuse(client):
    for path in ("/patient/login", "/patient/register", "/member/register", "/staff/login"):
        page = client.get(path).get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)", page), path
        assert not re.search(r"\son[a-z]+=|\sstyle=|<style", page), path


def test_strict_transport_security_only_when_the_public_url_is_https(settings, session_factory):
    plain = create_app({"SETTINGS": settings, "TESTING": True})
    assert "Strict-Transport-Security" not in plain.test_client().get("/").headers
    secure = create_app(
        {"SETTINGS": replace(settings, public_base_url="https://acceso.test"), "TESTING": True}
    )
    assert "max-age=" in secure.test_client().get("/").headers["Strict-Transport-Security"]


def test_the_browser_reports_violations_to_the_app(app, client):
    report = {"csp-report": {"violated-directive": "script-src", "blocked-uri": "inline"}}
    response = client.post(
        "/csp-report", json=report, headers={"Content-Type": "application/csp-report"}
    )
    assert response.status_code == 204
    assert app.extensions["acceso.csp_reports"][-1]["directive"] == "script-src"


# Error pages ------------------------------------------------------------------------------


def test_a_missing_page_is_the_apps_page_in_the_chosen_language_with_a_way_back(client):
    response = client.get("/patient/no-such-page?lang=en")
    page = response.get_data(as_text=True)
    assert response.status_code == 404
    assert "Page not found" in page and 'class="brand"' in page
    assert 'href="/patient/"' in page
    assert "Werkzeug" not in page and "The requested URL" not in page


def test_a_wrong_method_is_the_apps_page_and_keeps_allow(client):
    response = client.delete("/patient/login")
    assert response.status_code == 405
    assert "Acción no permitida" in response.get_data(as_text=True)
    assert "POST" in response.headers["Allow"]


def test_a_form_without_its_token_gets_the_apps_400_page(client):
    response = client.post("/patient/login", data={"username": "x", "password": "y"})
    assert response.status_code == 400
    assert "Solicitud no válida" in response.get_data(as_text=True)


def test_a_one_megabyte_form_body_is_refused_at_once_with_413(client):
    body = "username=ana&password=" + "x" * (1024 * 1024)
    response = client.post(
        "/patient/login", data=body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 413
    assert "Envío demasiado grande" in response.get_data(as_text=True)


def test_an_unexpected_failure_is_the_apps_500_page_without_a_trace(settings):
    application = create_app({"SETTINGS": settings})

    @application.get("/boom")
    def boom():
        raise RuntimeError("secret detail")

    response = application.test_client().get("/boom")
    page = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "Algo salió mal" in page and "secret detail" not in page and "Traceback" not in page


def test_service_unavailable_is_the_apps_503_page(settings):
    from flask import abort

    application = create_app({"SETTINGS": settings})
    application.add_url_rule("/down", "down", lambda: abort(503))
    response = application.test_client().get("/down?lang=en")
    assert response.status_code == 503
    assert "Service unavailable" in response.get_data(as_text=True)


# Where sign-in sends people afterwards ------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/\t/evil.example",
        "/\n/evil.example",
        "/\r\n/evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "//evil.example",
        "https://evil.example/",
        " //evil.example",
        "javascript:alert(1)",
    ],
)
def test_sign_in_never_sends_anyone_off_site(client, target):
    response = submit(
        client,
        f"/patient/login?next={_quote(target)}",
        {"username": "ana.perez", "password": PASSWORD},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/patient/"


@pytest.mark.parametrize("target", ["/\t/evil.example", "/\n/evil.example"])
def test_staff_sign_in_never_sends_anyone_off_site(client, session_factory, target):
    response = sign_in_staff(client, session_factory, "rosa", PASSWORD, _quote(target))
    assert response.status_code == 302
    assert response.headers["Location"] == "/staff/"


def test_sign_in_still_returns_to_a_local_page(client):
    response = submit(
        client,
        "/patient/login?next=/patient/account/password",
        {"username": "ana.perez", "password": PASSWORD},
    )
    assert response.headers["Location"] == "/patient/account/password"


def _quote(target: str) -> str:
    from urllib.parse import quote

    return quote(target, safe="")


# Attempts per client address ---------------------------------------------------------------


@pytest.fixture
def strict(settings, session_factory):
    settings = replace(
        settings,
        temporal_address=f"127.0.0.1:{free_port()}",
        rate_limit_sign_in="3/minute",
        rate_limit_recovery="2/minute",
        trusted_proxies="10.0.0.0/8",
    )
    application = create_app({"SETTINGS": settings, "TESTING": True})
    yield application
    application.extensions["acceso.temporal"].close()


def _login(client, username, password="wrong", **environ):  # noqa: S107
    token = csrf_token(client, "/patient/login")
    return client.post(
        "/patient/login",
        data={"csrf_token": token, "username": username, "password": password},
        **environ,
    )


def test_one_client_trying_many_usernames_is_stopped_with_429_and_retry_after(strict):
    client = strict.test_client()
    answers = [_login(client, f"user{n}") for n in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    over = _login(client, "user4")
    assert over.status_code == 429
    assert 1 <= int(over.headers["Retry-After"]) <= 60
    assert "Demasiados intentos" in over.get_data(as_text=True)


def test_a_bad_form_or_token_counts_too_and_past_the_limit_is_answered_429(strict, session_factory):
    client = strict.test_client()
    empty = _login(client, "ana.perez", password="")
    forged = client.post("/patient/login", data={"csrf_token": "x", "username": "ana.perez"})
    assert (empty.status_code, forged.status_code) == (200, 400)
    assert _login(client, "ana.perez").status_code == 200
    assert _login(client, "ana.perez", password="").status_code == 429
    forged = client.post("/patient/login", data={"csrf_token": "x", "username": "ana.perez"})
    assert forged.status_code == 429 and "Retry-After" in forged.headers
    assert _login(client, "ana.perez", password=PASSWORD).status_code == 429
    with session_factory() as session:
        assert session.get(LoginThrottle, ("patient", "ana.perez")).failures == 1


def test_the_429_page_is_the_same_for_existing_and_unknown_accounts(strict, session_factory):
    client = strict.test_client()
    for n in range(3):
        _login(client, f"user{n}")
    known = _login(client, "ana.perez").get_data(as_text=True)
    unknown = _login(client, "nadie").get_data(as_text=True)
    strip_nonce = re.compile(r"nonce-[A-Za-z0-9_-]+|value=\"[^\"]+\"")
    assert strip_nonce.sub("", known) == strip_nonce.sub("", unknown)


def test_the_limit_counts_per_client_not_per_account(strict):
    client = strict.test_client()
    for _ in range(3):
        _login(client, "same", environ_base={"REMOTE_ADDR": "192.0.2.1"})
    assert _login(client, "same", environ_base={"REMOTE_ADDR": "192.0.2.1"}).status_code == 429
    assert _login(client, "same", environ_base={"REMOTE_ADDR": "192.0.2.2"}).status_code == 200


def test_forwarded_for_counts_only_from_a_trusted_proxy(strict):
    client = strict.test_client()
    via_proxy = {"REMOTE_ADDR": "10.1.2.3"}
    for n in range(3):
        forwarded = {"X-Forwarded-For": f"198.51.100.{n}"}
        response = _login(client, "x", environ_base=via_proxy, headers=forwarded)
        assert response.status_code == 200
    spoofer = {"REMOTE_ADDR": "203.0.113.9"}
    for n in range(3):
        forwarded = {"X-Forwarded-For": f"198.51.100.{50 + n}"}
        assert _login(client, "x", environ_base=spoofer, headers=forwarded).status_code == 200
    forwarded = {"X-Forwarded-For": "198.51.100.99"}
    assert _login(client, "x", environ_base=spoofer, headers=forwarded).status_code == 429


def test_recovery_forms_are_limited_per_client_too(strict):
    client = strict.test_client()
    codes = []
    for _ in range(3):
        token = csrf_token(client, "/patient/recover/password")
        codes.append(
            client.post(
                "/patient/recover/password",
                data={"csrf_token": token, "username": "nadie"},
            ).status_code
        )
    assert codes[-1] == 429 and 429 not in codes[:2]


def test_the_counter_is_in_the_database_shared_by_every_process(strict, settings):
    other = create_app({"SETTINGS": strict.config["SETTINGS"], "TESTING": True}).test_client()
    client = strict.test_client()
    _login(client, "a")
    _login(other, "b")
    _login(client, "c")
    assert _login(other, "d").status_code == 429


# What is typed is checked at the door, and never reaches an e-mail header -------------------

LINE_BREAK_MESSAGE = "Escriba una sola línea, sin saltos de línea ni caracteres de control."


def _register_patient(client, **overrides):
    data = {
        "email": "ana@example.org",
        "username": "ana.nueva",
        "password": PASSWORD,
        "password_confirm": PASSWORD,
        "full_name": "Ana Pérez",
        **overrides,
    }
    return submit(client, "/patient/register", data)


@pytest.mark.parametrize(
    "field, value",
    [
        ("full_name", "Ana\r\nBcc: victim@example.org"),
        ("full_name", "Ana\u2028Pérez"),
        ("full_name", "Ana\x00Pérez"),
        ("full_name", "Ana\u200bPérez"),
        ("username", "ana\tperez"),
    ],
)
def test_line_breaks_and_control_characters_are_refused_beside_the_field(client, field, value):
    page = _register_patient(client, **{field: value}).get_data(as_text=True)
    assert LINE_BREAK_MESSAGE in page or "Use solo letras" in page
    assert re.search(rf'<input[^>]*aria-invalid="true"[^>]*id="{field}"', page)


def test_every_text_field_has_a_maximum_length(client):
    page = _register_patient(client, full_name="A" * 5000).get_data(as_text=True)
    assert "Como máximo" in page
    login = submit(client, "/patient/login", {"username": "ana.perez", "password": "x" * 5000})
    assert "Como máximo 256 caracteres" in login.get_data(as_text=True)


def test_a_line_break_in_a_name_cannot_start_a_header_of_its_own(settings, mailbox):
    from mail.mailer import Mailer

    class Named:
        display_name = "Rosa"
        organization_name = "Clínica Sur\r\nBcc: victim@example.org\r\nX-Injected: yes"
        full_name = "Luis\nBcc: other@example.org"

    Mailer(settings).send(
        "luis@example.org",
        "invitation",
        "es",
        {"office": Named, "invitation": Named, "inviter": Named, "link": "x", "days": "7"},
        "test/header-injection",
    )
    message = mailbox.wait_for("luis@example.org")
    assert message["Bcc"] is None and message["X-Injected"] is None
    assert "\n" not in str(message["Subject"]) and "Clínica Sur Bcc:" in str(message["Subject"])


def test_a_recipient_address_with_a_line_break_is_never_sent(settings):
    from mail.mailer import Mailer

    with pytest.raises(ValueError):
        Mailer(settings).send(
            "luis@example.org\r\nBcc: victim@example.org",
            "password_changed",
            "es",
            {"user": None, "occurred_at": "now", "portal": "patient", "base_url": "x"},
            "test/bad-recipient",
        )


# The password blocklist ---------------------------------------------------------------------

COMMON_MESSAGE = "Esa contraseña es demasiado común o apareció en filtraciones conocidas"
NAME_MESSAGE = "La contraseña no puede contener su usuario ni el nombre de la organización"


@pytest.mark.parametrize("password", ["Password1", "Qwerty123"])
def test_common_passwords_are_refused_at_registration(client, password):
    page = _register_patient(client, password=password, password_confirm=password)
    assert COMMON_MESSAGE in page.get_data(as_text=True)


@pytest.mark.parametrize("password", ["ClinicaAcceso2024", "Ana.nueva2024", "PortalPaciente9"])
def test_the_organisation_portal_and_username_are_refused_in_a_password(client, password):
    page = _register_patient(client, password=password, password_confirm=password)
    assert NAME_MESSAGE in page.get_data(as_text=True)


def test_common_passwords_are_refused_when_changing_it(client):
    submit(client, "/patient/login", {"username": "ana.perez", "password": PASSWORD})
    page = submit(
        client,
        "/patient/account/password",
        {
            "current_password": PASSWORD,
            "new_password": "Password1",
            "new_password_confirm": "Password1",
        },
    ).get_data(as_text=True)
    assert COMMON_MESSAGE in page
    page = submit(
        client,
        "/patient/account/password",
        {
            "current_password": PASSWORD,
            "new_password": "AnaPerez2024x",
            "new_password_confirm": "AnaPerez2024x",
        },
    ).get_data(as_text=True)
    assert NAME_MESSAGE in page


def test_common_passwords_are_refused_on_the_reset_form(app):
    from web.recovery import NewPasswordForm

    with app.test_request_context("/patient/reset/x", method="POST"):
        from flask import g

        g.portal = app.extensions["acceso.portals"]["patient"]
        g.password_username = "ana.perez"
        form = NewPasswordForm(
            formdata=None, data={"password": "Qwerty123", "password_confirm": "Qwerty123"}
        )
        form.meta.csrf = False
        assert not form.validate()
        assert COMMON_MESSAGE in " ".join(str(e) for e in form.password.errors)


def test_a_cleared_or_expired_window_starts_again_from_zero(strict):
    """Expired rows are left to the cleanup sweep (tests/test_cleanup.py); until it runs, an
    expired window counts as new."""
    storage = strict.extensions["acceso.rate_limits"].storage
    assert storage.incr("probe", 60) == 1 and storage.incr("probe", 60) == 2
    storage.clear("probe")
    assert storage.get("probe") == 0 and storage.incr("probe", 60) == 1
    assert storage.incr("old", -1) == 1
    assert storage.get("old") == 0 and storage.incr("old", 60) == 1


def test_the_codec_endpoint_answers_its_errors_in_json_for_the_temporal_ui(settings):
    application = create_app(
        {"SETTINGS": replace(settings, codec_bearer_token="codec-token"), "TESTING": True}
    )
    client = application.test_client()
    wrong_method = client.get("/codec/decode")
    assert wrong_method.status_code == 405 and wrong_method.is_json
    too_big = client.post(
        "/codec/decode",
        data=b"{" + b" " * (5 * 1024 * 1024) + b"}",
        content_type="application/json",
        headers={"Authorization": "Bearer codec-token"},
    )
    assert too_big.status_code == 413 and too_big.is_json


def test_a_page_may_let_its_form_redirect_to_a_named_origin_only(settings):
    from web.security import allow_form_redirect_to

    application = create_app({"SETTINGS": settings, "TESTING": True})

    @application.get("/consent")
    def consent():
        allow_form_redirect_to("https://client.example")
        return "ok"

    client = application.test_client()
    assert directives(client.get("/consent"))["form-action"] == "'self' https://client.example"
    assert directives(client.get("/"))["form-action"] == "'self'"
