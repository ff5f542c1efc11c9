"""A staff member in a real browser (Debian's headless Chromium): first sign-in enrols the
authenticator app from the key on the page, the recovery codes are shown once, and the next
sign-in takes a code computed with pyotp."""

from __future__ import annotations

import pyotp
import pytest

from tests.fixtures.staff import add_staff, next_code
from tests.test_browser import browser, live_site  # noqa: F401  (shared browser fixtures)

pytestmark = pytest.mark.browser

PASSWORD = "consola-segura-123"


def test_a_staff_member_enrols_an_authenticator_and_signs_in_with_a_code(live_site, browser):  # noqa: F811
    base, stack = live_site
    add_staff(stack.session_factory, "lucia", PASSWORD, roles="support", enrolled=False)
    page = browser.new_context(locale="es-AR").new_page()
    page.set_default_timeout(20_000)

    page.goto(f"{base}/staff/login")
    page.fill("#username", "lucia")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/staff/login/enrol")
    assert page.get_attribute("img.qr", "src").startswith("data:image/svg+xml")
    key = page.inner_text("[data-secret-key]").replace(" ", "")

    page.fill("#code", "000000")
    page.click("button[type=submit]")
    assert "no es correcto" in page.inner_text(".field.has-error")

    page.fill("#code", pyotp.TOTP(key).now())
    page.click("button[type=submit]")
    assert len(page.query_selector_all(".recovery-codes li")) == 10
    page.click("text=Ya los guardé, continuar")
    page.wait_for_url(f"{base}/staff/")

    page.click("header form button")  # sign out
    page.wait_for_url(f"{base}/staff/login")
    page.fill("#username", "lucia")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/staff/login/code")
    page.fill("#code", next_code(stack.session_factory, "lucia"))  # this step's was used
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/staff/")
    assert page.locator("#idle-warning").get_attribute("data-idle-seconds") == "900"
