"""The sample app in a real browser (Debian's headless Chromium driven by Playwright): "Iniciar
sesión con Acceso", the portal's login page, the claims, and "Cerrar sesión" from both."""

from __future__ import annotations

import os
import shutil

import pytest
from flask import Flask

from tests.fixtures.browser import serving
from tests.fixtures.oidc import PASSWORD

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


@pytest.fixture
def chromium():
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


def test_a_patient_signs_in_to_the_sample_app_with_acceso_and_out_of_both(
    provider, sample_app, chromium
):
    provider.add_user()
    page = chromium.new_page()
    page.set_default_timeout(20_000)

    page.goto(f"{sample_app}/")
    page.click("text=Iniciar sesión con Acceso")
    page.wait_for_url(f"{provider.base_url}/patient/login**")
    page.fill("input[name=username]", "ana.perez")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")

    page.wait_for_url(f"{sample_app}/")
    assert "Hola, Ana Pérez" in page.inner_text("#greeting")
    assert "ana.perez@example.org" in page.inner_text("#claims")

    page.click("#logout")
    page.wait_for_url(f"{sample_app}/?ended=1")
    assert page.is_visible("#login")
    page.goto(f"{provider.base_url}/patient/")
    assert "/patient/login" in page.url


def test_a_browser_app_at_a_registered_origin_may_call_userinfo_and_others_may_not(
    provider, chromium
):
    """Chromium's own CORS check, preflight included (a Bearer header is not a simple request)."""
    page_app = Flask("spa")
    page_app.get("/")(lambda: "<!doctype html><title>spa</title>")
    with serving(page_app) as registered, serving(page_app) as unregistered:
        provider.add_client("spa", public=True, redirect_uris=[f"{registered}/callback"])
        userinfo = provider.metadata()["userinfo_endpoint"]
        call = """async (url) => {
            try {
                const answer = await fetch(url, {headers: {Authorization: "Bearer not-a-token"}});
                return answer.status + " " + answer.headers.get("WWW-Authenticate");
            } catch (error) { return "blocked"; }
        }"""
        page = chromium.new_page()
        page.goto(f"{registered}/")
        assert page.evaluate(call, userinfo) == '401 Bearer error="invalid_token"'
        page.goto(f"{unregistered}/")
        assert page.evaluate(call, userinfo) == "blocked"
