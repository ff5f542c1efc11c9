"""A patient in a real browser (Debian's headless Chromium driven by Playwright): the form, the
show-password padlock, the e-mailed link, "keep me signed in" and the user menu."""

from __future__ import annotations

import os
import shutil
import threading
from urllib.parse import urlsplit

import pytest
from werkzeug.serving import make_server

from portal.models import ClinicalRecord
from tests.fixtures.smtp import free_port, link_in

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def live_site(stack):
    """The app on a real HTTP port on loopback, served by werkzeug in a thread."""
    port = free_port()
    server = make_server("127.0.0.1", port, stack.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with stack.session_factory() as session:
        session.add(
            ClinicalRecord(
                portal="patient", record_number="HC-7", full_name="Ana", email="ana@example.org"
            )
        )
        session.commit()
    yield f"http://127.0.0.1:{port}", stack
    server.shutdown()
    thread.join(5)


@pytest.fixture
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


def test_a_patient_registers_confirms_and_signs_in_with_a_browser(live_site, browser):
    base, stack = live_site
    page = browser.new_context(locale="es-AR").new_page()
    page.set_default_timeout(20_000)

    page.goto(f"{base}/patient/register")
    page.fill("#email", "ana@example.org")
    page.fill("#username", "ana.perez")
    page.fill("#password", "Clave123segura")
    page.click("button.toggle-password[data-target=password]")
    assert page.get_attribute("#password", "type") == "text"
    page.click("button.toggle-password[data-target=password]")
    assert page.get_attribute("#password", "type") == "password"
    page.fill("#password_confirm", "Clave123otra")
    page.fill("#full_name", "Ana Pérez")
    page.click("button[type=submit]")
    assert "Las contraseñas no coinciden" in page.inner_text(".field.has-error")
    assert page.input_value("#full_name") == "Ana Pérez"

    page.fill("#password", "Clave123segura")
    page.fill("#password_confirm", "Clave123segura")
    page.click("button[type=submit]")
    page.wait_for_url("**/patient/register/check-mail")

    link = link_in(stack.mailbox.wait_for("ana@example.org", "Confirme"), "/patient/confirm/")
    page.goto(base + urlsplit(link).path)
    page.click("text=Confirmar mi correo electrónico")
    assert "Su usuario está confirmado" in page.inner_text(".flash")

    page.fill("#username", "ana.perez")
    page.fill("#password", "Clave123segura")
    page.check("#remember_me")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/patient/")
    assert "Bienvenido/a, Ana Pérez" in page.inner_text("h1")
    remember = [c for c in page.context.cookies() if c["name"] == "remember_token"]
    assert remember and remember[0]["expires"] > 0

    page.click(".user-menu summary")
    page.click("text=Cambiar contraseña")
    page.wait_for_url(f"{base}/patient/account/password")
    page.click(".user-menu summary")
    page.click("text=Cerrar sesión")
    page.wait_for_url(f"{base}/patient/login")
    page.goto(f"{base}/patient/")
    assert page.url.startswith(f"{base}/patient/login")
