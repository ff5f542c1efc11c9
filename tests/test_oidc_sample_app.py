"""Mi Historia Clínica, the sample relying party, run as its own process against Acceso: a
person clicks "Iniciar sesión con Acceso", signs in, sees their claims, and "Cerrar sesión"
signs them out of both."""

from __future__ import annotations

import re

import requests

from tests.fixtures.oidc import PASSWORD


def test_sign_in_with_acceso_shows_the_claims_and_sign_out_ends_both(provider, sample_app):
    provider.add_user()
    browser = requests.Session()

    home = browser.get(f"{sample_app}/", timeout=5)
    assert "Iniciar sesión con Acceso" in home.text

    login_page = browser.get(f"{sample_app}/login", timeout=10)
    assert "/patient/login" in login_page.url
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', login_page.text).group(1)
    signed_in = browser.post(
        login_page.url,
        data={"csrf_token": csrf, "username": "ana.perez", "password": PASSWORD},
        timeout=10,
    )

    assert signed_in.url == f"{sample_app}/"
    assert "Hola, Ana Pérez" in signed_in.text
    assert "ana.perez@example.org" in signed_in.text and "preferred_username" in signed_in.text
    assert browser.get(f"{provider.base_url}/patient/", timeout=5).url.endswith("/patient/")

    signed_out = browser.get(f"{sample_app}/logout", timeout=10)

    assert signed_out.url == f"{sample_app}/?ended=1"
    assert "Iniciar sesión con Acceso" in signed_out.text
    assert "/patient/login" in browser.get(f"{provider.base_url}/patient/", timeout=5).url
