"""The main forms work from the keyboard alone: the skip link comes first and shows, Tab reaches
every field and the main button in order, the focus is always visible, and a refused form puts
the focus on the summary of what went wrong, whose links lead back to each field."""

from __future__ import annotations

import pytest

from tests.fixtures.browser import chromium, serving
from tests.fixtures.showcase import seed_showcase
from web import create_app

pytestmark = pytest.mark.browser

FOCUS_STATE = """() => {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  const box = el.getBoundingClientRect();
  return {
    id: el.id, tag: el.tagName.toLowerCase(), text: (el.innerText || '').trim(),
    type: el.getAttribute('type'), cls: el.className,
    outline: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2,
    onscreen: box.width > 0 && box.height > 0 && box.left >= 0 && box.top >= 0,
  };
}"""


@pytest.fixture
def site(settings, session_factory):
    """The app without Temporal (these pages answer from the database alone), served."""
    seed_showcase(session_factory)
    app = create_app({"SETTINGS": settings, "TESTING": True})
    with serving(app) as base:
        yield base
    app.extensions["acceso.temporal"].close()


@pytest.fixture(scope="module")
def browser():
    with chromium() as running:
        yield running


def tab_through(page, limit: int = 40) -> list[dict]:
    """Presses Tab from the top of the page; every stop's element and whether it shows focus."""
    stops = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        state = page.evaluate(FOCUS_STATE)
        if state["tag"] == "body":
            break
        stops.append(state)
    return stops


@pytest.mark.parametrize(
    ("path", "fields", "button"),
    [
        ("/patient/login", ["username", "password", "remember_me"], "Iniciar sesión"),
        (
            "/patient/register",
            ["email", "username", "password", "password_confirm", "full_name"],
            "Aceptar",
        ),
        ("/provider/recover/password", ["username"], "Enviar"),
        ("/staff/login", ["username", "password"], "Iniciar sesión"),
    ],
)
def test_tab_reaches_every_field_and_the_main_button_with_the_focus_visible(
    site, browser, path, fields, button
):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{site}{path}?lang=es")
    stops = tab_through(page)

    assert stops[0]["cls"] == "skip-link" and stops[0]["onscreen"], stops[0]
    ids = [stop["id"] for stop in stops]
    positions = [ids.index(name) for name in fields]
    assert positions == sorted(positions), f"fields out of order: {ids}"
    buttons = [s for s in stops if s["tag"] == "button" and s["text"] == button]
    assert buttons and ids.index(fields[-1]) < stops.index(buttons[0])
    hidden = [s for s in stops if not (s["outline"] and s["onscreen"])]
    assert not hidden, f"focus not visible on {hidden}"


def test_a_refused_form_puts_the_focus_on_its_summary_whose_links_lead_to_the_fields(site, browser):
    page = browser.new_page(viewport={"width": 375, "height": 740})
    page.goto(f"{site}/patient/register?lang=es")
    page.focus("#email")
    page.keyboard.type("ana@example.org")
    with page.expect_navigation(wait_until="load"):
        page.keyboard.press("Enter")

    assert page.evaluate("document.activeElement.matches('.error-summary')")
    assert page.input_value("#email") == "ana@example.org"
    links = page.locator(".error-summary a")
    assert links.count() == 4  # username, password, its repeat, full name
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "username"
    described = page.get_attribute("#username", "aria-describedby").split()
    assert "username-help" in described and "username-error" in described
    assert "obligatorio" in page.inner_text("#username-error")
