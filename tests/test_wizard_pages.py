"""Wizards say where the applicant is, and the done page is a clear success with the reference
that does not send people to sign in before they can."""

from __future__ import annotations

import pytest

from web import create_app


@pytest.fixture
def client(settings, session_factory):
    app = create_app({"SETTINGS": settings, "TESTING": True})
    yield app.test_client()
    app.extensions["acceso.temporal"].close()


def test_the_provider_wizard_says_step_one_of_three_and_marks_it(client):
    page = client.get("/provider/register").get_data(as_text=True)
    assert '<p class="step-count">Paso 1 de 3</p>' in page
    assert '<li aria-current="step">Información de usuario</li>' in page
    english = client.get("/provider/register?lang=en").get_data(as_text=True)
    assert "Step 1 of 3" in english


def test_the_member_wizard_starts_at_step_one_of_four(client):
    page = client.get("/member/register").get_data(as_text=True)
    assert "Paso 1 de 4" in page and '<li aria-current="step">Acuerdo de licencia</li>' in page


@pytest.mark.parametrize("portal", ["patient", "member", "provider"])
def test_the_done_page_is_a_success_with_the_reference_and_no_sign_in_button(client, portal):
    page = client.get(f"/{portal}/register/done/ABCD234567").get_data(as_text=True)
    assert '<div class="success-state" role="status">' in page
    assert '<p class="reference">ABCD234567</p>' in page
    assert "Ir a iniciar sesión" not in page and f'href="/{portal}/login"' not in page
    assert "confirme su correo electrónico" in page
