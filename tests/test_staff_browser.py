"""A staff member in a real browser (Debian's headless Chromium): first sign-in enrols the
authenticator app from the key on the page, the recovery codes are shown once, and the next
sign-in takes a code computed with pyotp."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select, update

from portal.models import AuditEvent, Passkey, UserSession, utcnow
from tests.fixtures.staff import add_staff, next_code
from tests.fixtures.waiting import wait_until
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


def test_a_staff_member_registers_a_passkey_and_signs_in_with_it(live_site, browser):  # noqa: F811
    base, stack = live_site
    base = base.replace("127.0.0.1", "localhost")  # WebAuthn wants a domain, not an IP address
    add_staff(stack.session_factory, "lucia", PASSWORD, roles="support")
    context = browser.new_context(locale="es-AR")
    page = context.new_page()
    page.set_default_timeout(20_000)
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )

    def password_step():
        page.goto(f"{base}/staff/login")
        page.fill("#username", "lucia")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/staff/login/code")

    password_step()
    page.fill("#code", next_code(stack.session_factory, "lucia"))
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/staff/")

    page.goto(f"{base}/staff/security")
    page.click("[data-passkey-register] [data-passkey-start]")
    expect(page.locator("[data-passkey-count]")).to_have_text("1")
    with stack.session_factory() as session:
        assert session.scalar(select(func.count(Passkey.id))) == 1

    page.click("header form button")
    page.wait_for_url(f"{base}/staff/login")
    password_step()
    page.click("[data-passkey-login] [data-passkey-start]")
    page.wait_for_url(f"{base}/staff/")
    with stack.session_factory() as session:
        methods = [
            e.detail.get("method")
            for e in session.scalars(select(AuditEvent))
            if e.action == "staff.login"
        ]
    assert methods == ["totp", "passkey"]


def test_the_idle_warning_offers_to_stay_signed_in_without_losing_a_half_filled_form(
    live_site,  # noqa: F811
    browser,  # noqa: F811
):
    base, stack = live_site
    add_staff(stack.session_factory, "lucia", PASSWORD, roles="support")
    page = browser.new_context(locale="es-AR").new_page()
    page.set_default_timeout(20_000)
    page.clock.install()  # the page's timers run on a clock the test moves; nobody sleeps

    page.goto(f"{base}/staff/login")
    page.fill("#username", "lucia")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/staff/login/code")
    page.fill("#code", next_code(stack.session_factory, "lucia"))
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/staff/")

    page.goto(f"{base}/staff/accounts")
    assert page.locator("#idle-warning").is_hidden()
    page.clock.run_for("14:01")
    page.wait_for_selector("#idle-warning [data-idle-soon]", state="visible")
    page.click("[data-idle-stay]")
    page.wait_for_selector("#idle-warning", state="hidden")
    with stack.session_factory() as session:
        seen = session.scalar(select(UserSession.last_seen_at))
    assert utcnow() - seen < timedelta(minutes=1)

    page.fill("#q", "ana@example.org")  # typing counts as presence: no warning, no reload
    with stack.session_factory() as session:
        session.execute(update(UserSession).values(last_seen_at=utcnow() - timedelta(minutes=14)))
        session.commit()
    page.clock.run_for("14:01")

    def kept_alive() -> bool:
        with stack.session_factory() as session:
            return utcnow() - session.scalar(select(UserSession.last_seen_at)) < timedelta(
                minutes=1
            )

    wait_until(kept_alive, what="the page to keep the session alive by itself")
    assert page.locator("#idle-warning").is_hidden()
    assert page.input_value("#q") == "ana@example.org"
    assert page.url == f"{base}/staff/accounts"
