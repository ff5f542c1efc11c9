"""Every page of every portal and of the staff console, signed in or not, in Spanish and in
English, including refused forms, passes axe-core's WCAG 2.0/2.1 A and AA rules, fits a 375 px
phone without sideways scrolling, and the main forms work from the keyboard.

axe-core comes inside the `axe-playwright-python` package (never downloaded at run time); one
Chromium walks the whole site, so the walk costs about a minute."""

from __future__ import annotations

import pytest

from tests.fixtures.browser import chromium, serving
from tests.fixtures.showcase import PASSWORD, STAFF_PASSWORD, seed_showcase

pytestmark = pytest.mark.browser

LANGUAGES = ("es", "en")
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1280, "height": 900}


class Walk:
    """Visits pages, runs axe and the 375 px reflow check on each, and collects every failure
    so one run reports them all."""

    def __init__(self, page, base: str):
        from axe_playwright_python.sync_playwright import Axe

        self.page = page
        self.base = base
        self.axe = Axe()
        self.failures: list[str] = []
        self.checked = 0

    def check(self, label: str) -> None:
        page = self.page
        lang = page.get_attribute("html", "lang")
        name = f"{label} [{lang}] {page.url.removeprefix(self.base)}"
        results = self.axe.run(
            page,
            options={
                "runOnly": {"type": "tag", "values": WCAG_TAGS},
                "resultTypes": ["violations"],
            },
        )
        for violation in results.response["violations"]:
            targets = [node["target"] for node in violation["nodes"]][:3]
            self.failures.append(f"{name}: axe {violation['id']} ({violation['help']}) {targets}")
        page.set_viewport_size(PHONE)
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            wide = page.evaluate(
                """() => [...document.querySelectorAll('body *')]
                  .filter(e => e.getBoundingClientRect().right > 376 && !e.closest('.table-scroll'))
                  .slice(0, 3).map(e => e.tagName + '.' + e.className)"""
            )
            self.failures.append(f"{name}: {width} px wide at 375 px, widest {wide}")
        page.set_viewport_size(DESKTOP)
        self.checked += 1

    def visit(self, path: str, label: str = "") -> None:
        """The page in each language."""
        for lang in LANGUAGES:
            self.page.goto(f"{self.base}{path}{'&' if '?' in path else '?'}lang={lang}")
            self.check(label or path)

    def refuse(self, path: str, fill: dict[str, str], label: str, button="button[type=submit]"):
        """The form refused (in each language): errors beside fields and a summary on top
        that has the focus."""
        for lang in LANGUAGES:
            self.page.goto(f"{self.base}{path}?lang={lang}")
            for selector, value in fill.items():
                self.page.fill(selector, value)
            self.page.click(button)
            self.page.wait_for_load_state()
            summary = self.page.locator(".error-summary")
            if summary.count() != 1:
                self.failures.append(f"{label} [{lang}]: no error summary on the refused form")
            elif not self.page.evaluate(
                "document.activeElement && document.activeElement.matches('.error-summary')"
            ):
                self.failures.append(f"{label} [{lang}]: the error summary did not take focus")
            self.check(f"{label} (refused)")


def sign_in(page, base: str, path: str, username: str, password: str) -> None:
    page.goto(f"{base}{path}?lang=es")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("form button[type=submit]")
    page.wait_for_load_state()


def sign_out(page) -> None:
    page.context.clear_cookies()


def test_every_page_passes_axe_and_fits_a_phone_in_both_languages(stack):
    showcase = seed_showcase(stack.session_factory)
    with serving(stack.app) as base, chromium() as browser:
        context = browser.new_context(viewport=DESKTOP, bypass_csp=True)
        page = context.new_page()
        page.set_default_timeout(20_000)
        walk = Walk(page, base)

        walk.visit("/", "portal chooser")
        walk.visit("/nowhere/", "not found")
        for portal in ("patient", "member", "provider"):
            walk.visit(f"/{portal}/login")
            walk.refuse(
                f"/{portal}/login",
                {"#username": "nadie", "#password": "equivocada"},
                f"{portal} login",
            )
            walk.visit(f"/{portal}/faq")
            walk.visit(f"/{portal}/recover/username")
            walk.refuse(f"/{portal}/recover/username", {}, f"{portal} username reminder")
            walk.visit(f"/{portal}/recover/password")
            walk.refuse(f"/{portal}/recover/password", {}, f"{portal} password reset")
            walk.visit(f"/{portal}/reset/no-such-token", "reset link invalid")
            walk.visit(f"/{portal}/confirm/no-such-token", "confirmation link invalid")
            walk.visit(f"/{portal}/register/done/R00000001", "registration done")

        walk.visit("/patient/register")
        walk.refuse("/patient/register", {"#email": "ana@example.org"}, "patient register")
        walk.visit("/provider/invitation/no-such-token", "invitation invalid")
        walk.visit("/member/register/continue/no-such-token", "member continue link invalid")

        _provider_wizard(walk)
        sign_out(page)
        _member_wizard(walk, showcase)
        sign_out(page)

        for portal, username in (
            ("patient", "ana.perez"),
            ("member", "maria.lopez"),
            ("provider", "dr.ruiz"),
        ):
            sign_in(page, base, f"/{portal}/login", username, PASSWORD)
            walk.visit(f"/{portal}/", f"{portal} home")
            walk.visit(f"/{portal}/account/password")
            walk.refuse(
                f"/{portal}/account/password",
                {"#current_password": "equivocada"},
                f"{portal} change password",
            )
            if portal == "provider":
                walk.visit("/provider/account/employees")
                walk.refuse(
                    "/provider/account/employees",
                    {"#email": "no-es-correo"},
                    "invite an employee",
                    button="form:has(#email) button[type=submit]",
                )
            sign_out(page)

        walk.visit("/staff/login")
        walk.refuse("/staff/login", {"#username": "x", "#password": "y"}, "staff login")
        sign_in(page, base, "/staff/login", "marta.admin", STAFF_PASSWORD)
        walk.visit("/staff/", "staff home")
        walk.visit("/staff/audit")
        walk.visit("/staff/audit?actor=applicant&portal=member", "audit filtered")
        walk.visit("/staff/reviews")
        walk.visit(f"/staff/reviews/{showcase.review_reference}", "application")
        walk.refuse(
            f"/staff/reviews/{showcase.review_reference}",
            {},
            "deny without a reason",
            button="button[value=deny]",
        )
        walk.visit("/staff/cases")
        walk.visit(f"/staff/cases/{showcase.case_id}", "case")
        context.close()

    assert walk.checked > 100
    assert not walk.failures, "\n".join(walk.failures)


def _provider_wizard(walk: Walk) -> None:
    page = walk.page
    walk.visit("/provider/register", "provider step 1")
    walk.refuse("/provider/register", {}, "provider step 1")
    page.goto(f"{walk.base}/provider/register?lang=es")
    page.fill("#first_name", "Rosa")
    page.fill("#last_name", "Marín")
    page.fill("#email", "rosa@example.org")
    page.fill("#phone", "787-555-0123")
    page.fill("#username", "rosa.marin")
    page.fill("#password", "una-clave-larga")
    page.fill("#password_confirm", "una-clave-larga")
    for n in (1, 2, 3):
        page.select_option(f"#security_question_{n}", index=n)
        page.fill(f"#security_answer_{n}", f"respuesta {n}")
    page.click("button[type=submit]")
    page.wait_for_url("**/provider/register/office")
    walk.visit("/provider/register/office", "provider step 2")
    walk.refuse(
        "/provider/register/office", {"#npi": "123"}, "provider step 2", "button[value=next]"
    )
    page.goto(f"{walk.base}/provider/register/office?lang=es")
    page.fill("#organization_name", "Consultorio Marín")
    page.fill("#tax_id", "12-3456789")
    page.fill("#npi", "1234567893")
    page.fill("#address_line1", "Calle Luna 5")
    page.fill("#city", "San Juan")
    page.fill("#state", "PR")
    page.fill("#postal_code", "00901")
    page.click("button[value=next]")
    page.wait_for_url("**/provider/register/summary")
    walk.visit("/provider/register/summary", "provider summary")


def _member_wizard(walk: Walk, showcase) -> None:
    page = walk.page
    walk.visit("/member/register", "member agreement")
    page.goto(f"{walk.base}/member/register?lang=es")
    page.click("button[value=accept]")
    page.wait_for_selector("#first_name")
    walk.visit("/member/register", "member identity")
    walk.refuse(
        "/member/register",
        {"#birth_day": "31", "#birth_month": "2", "#birth_year": "1980"},
        "member identity",
    )
    page.goto(f"{walk.base}/member/register?lang=es")
    for name, value in showcase.member_record.items():
        if name == "birth_month":
            page.select_option("#birth_month", value)
        else:
            page.fill(f"#{name}", value)
    page.click("button[type=submit]")
    page.wait_for_selector("#email_confirm")
    walk.visit("/member/register", "member credentials")
    walk.refuse("/member/register", {"#email": "no-es-correo"}, "member credentials")
    page.goto(f"{walk.base}/member/register?lang=es")
    page.fill("#username", "carlos.santos")
    page.fill("#email", "carlos@example.org")
    page.fill("#email_confirm", "carlos@example.org")
    page.fill("#password", PASSWORD)
    page.fill("#password_confirm", PASSWORD)
    page.select_option("#security_question_1", index=1)
    page.fill("#security_answer_1", "Hartford")
    page.click("button[type=submit]")
    page.wait_for_selector("#certify")
    walk.visit("/member/register", "member review")
    walk.refuse("/member/register", {}, "member review", "button[value=finish]")
