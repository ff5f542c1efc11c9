"""Every page of every portal and of the staff console, signed in or not, in Spanish and in
English, including refused forms, passes axe-core's WCAG 2.0/2.1 A and AA rules and fits a
375 px phone without sideways scrolling; a refused form shows a summary that takes the focus.

axe-core comes inside the `axe-playwright-python` package (never downloaded at run time) and is
loaded into every page by the browser context. One Chromium serves the module; only the member
wizard needs Temporal, the other pages answer from the database alone."""

from __future__ import annotations

import json
from dataclasses import replace
from urllib.parse import urlencode

import pytest

from portal.oidc import add_client
from tests.fixtures.browser import chromium, serving
from tests.fixtures.showcase import (
    APP_REVIEW_REFERENCE,
    EMAIL_CHANGE_TOKEN,
    EMAIL_UNDO_TOKEN,
    INVITATION_TOKEN,
    NOT_ME_TOKEN,
    PASSWORD,
    PROXY_ACCEPT_TOKEN,
    PROXY_CONSENT_TOKEN,
    PROXY_REVIEW_REFERENCE,
    RESET_TOKEN,
    STAFF_PASSWORD,
    second_step_in_browser,
    seed_showcase,
)
from web import create_app

pytestmark = pytest.mark.browser

LANGUAGES = ("es", "en")
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
AXE_OPTIONS = {"runOnly": {"type": "tag", "values": WCAG_TAGS}, "resultTypes": ["violations"]}
AXE_RUN = f"axe.run(document, {json.dumps(AXE_OPTIONS)})"
UNEXPLAINED = """() => {
  const described = (e) => (e.getAttribute('aria-describedby') || '').split(/\\s+/)
    .filter(Boolean).map((id) => document.getElementById(id)).filter(Boolean);
  const name = (e) => e.id || e.name || e.tagName;
  const found = [];
  for (const e of document.querySelectorAll('[aria-invalid="true"]')) {
    if (!described(e).some((d) => d.matches('.error') && d.textContent.trim())) {
      found.push('invalid but not described by its error: ' + name(e));
    }
  }
  for (const hint of document.querySelectorAll('.field .help')) {
    const controls = [...hint.closest('.field').querySelectorAll('input, select, textarea')]
      .filter((c) => c.type !== 'hidden');
    for (const c of controls.filter((c) => !described(c).includes(hint))) {
      found.push('hint not tied to ' + name(c));
    }
  }
  return found.slice(0, 5);
}"""
"""What axe does not ask: each invalid control is described by its error, and each hint by the
controls it explains (a group's checkboxes included), so a screen reader says why."""
PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1280, "height": 900}


class Walk:
    """Visits pages, runs axe and the 375 px reflow check on each, and collects every failure
    so one run reports them all."""

    def __init__(self, browser, base: str):
        from axe_playwright_python.sync_playwright import Axe

        self.context = browser.new_context(viewport=DESKTOP)
        self.context.add_init_script(script=Axe().axe_script)
        self.page = self.context.new_page()
        self.page.set_default_timeout(20_000)
        self.base = base
        self.failures: list[str] = []
        self.checked = 0

    def close(self) -> None:
        self.context.close()
        assert self.checked, "no page was checked"
        assert not self.failures, "\n".join(self.failures)

    def check(self, label: str) -> None:
        page = self.page
        lang = page.get_attribute("html", "lang")
        name = f"{label} [{lang}] {page.url.removeprefix(self.base)}"
        for violation in page.evaluate(AXE_RUN)["violations"]:
            targets = [node["target"] for node in violation["nodes"]][:3]
            self.failures.append(f"{name}: axe {violation['id']} ({violation['help']}) {targets}")
        for problem in page.evaluate(UNEXPLAINED):
            self.failures.append(f"{name}: {problem}")
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

    def refuse(
        self, path: str, fill: dict[str, str], label: str, button="main button[type=submit]"
    ):
        """The form refused (in each language): errors beside fields and a summary on top
        that has the focus."""
        for lang in LANGUAGES:
            self.page.goto(f"{self.base}{path}?lang={lang}")
            for selector, value in fill.items():
                enter(self.page, selector, value)
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


def enter(page, selector: str, value: str) -> None:
    """Types into a field, or chooses in a list."""
    if page.eval_on_selector(selector, "e => e.tagName") == "SELECT":
        page.select_option(selector, value)
    else:
        page.fill(selector, value)


def sign_in(page, base: str, path: str, username: str, password: str) -> None:
    page.goto(f"{base}{path}?lang=es")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("form button[type=submit]")
    page.wait_for_load_state()
    second_step_in_browser(page, username)


def sign_out(page) -> None:
    page.context.clear_cookies()


@pytest.fixture(scope="module")
def browser():
    with chromium() as running:
        yield running


@pytest.fixture
def site(settings, session_factory):
    """The seeded app without Temporal, served on loopback."""
    showcase = seed_showcase(session_factory)
    generous = replace(
        settings, rate_limit_recovery="1000/minute", rate_limit_sign_in="1000/minute"
    )
    app = create_app({"SETTINGS": generous, "TESTING": True})
    with serving(app) as base:
        yield base, showcase
    app.extensions["acceso.temporal"].close()


@pytest.fixture
def walk(site, browser):
    base, _showcase = site
    walker = Walk(browser, base)
    yield walker
    walker.close()


def test_every_public_page_of_every_portal(walk):
    walk.visit("/", "portal chooser")
    walk.visit("/nowhere/", "not found")
    for portal in ("patient", "member", "provider"):
        walk.visit(f"/{portal}/login")
        walk.refuse(f"/{portal}/login", {"#username": "nadie", "#password": "equivocada"}, "login")
        walk.visit(f"/{portal}/faq")
        walk.visit(f"/{portal}/recover/username")
        walk.refuse(f"/{portal}/recover/username", {}, "username reminder")
        walk.visit(f"/{portal}/recover/password")
        walk.refuse(f"/{portal}/recover/password", {}, "password reset")
        walk.visit(f"/{portal}/reset/no-such-token", "reset link invalid")
        walk.visit(f"/{portal}/confirm/no-such-token", "confirmation link invalid")
        walk.visit(f"/{portal}/register/done/R00000001", "registration done")
    walk.visit("/patient/register")
    walk.refuse("/patient/register", {"#email": "ana@example.org"}, "patient register")
    walk.visit("/member/register", "member agreement")
    walk.visit("/provider/invitation/no-such-token", "invitation invalid")
    walk.visit(f"/provider/invitation/{INVITATION_TOKEN}", "accept an invitation")
    walk.refuse(f"/provider/invitation/{INVITATION_TOKEN}", {}, "accept an invitation")
    walk.visit(f"/provider/reset/{RESET_TOKEN}", "new password")
    walk.refuse(
        f"/provider/reset/{RESET_TOKEN}",
        {"#password": "una-clave-larga", "#password_confirm": "otra-clave-larga"},
        "new password",
    )
    walk.visit("/member/register/continue/no-such-token", "member continue link invalid")
    walk.visit(f"/patient/account/not-me/{NOT_ME_TOKEN}", "this was not me")
    walk.visit("/patient/account/not-me/no-such-token", "not-me link invalid")
    walk.visit(f"/patient/account/email/confirm/{EMAIL_CHANGE_TOKEN}", "confirm a new e-mail")
    walk.visit(f"/patient/account/email/undo/{EMAIL_UNDO_TOKEN}", "undo an e-mail change")
    walk.visit("/patient/account/email/confirm/no-such-token", "e-mail change link invalid")
    walk.visit(f"/patient/proxy/accept/{PROXY_ACCEPT_TOKEN}", "accept a proxy invitation")
    walk.visit(f"/patient/proxy/consent/{PROXY_CONSENT_TOKEN}", "approve a proxy request")
    walk.visit("/patient/proxy/consent/no-such-token", "proxy link invalid")
    walk.visit("/developers/apps/new", "register a health app")
    walk.refuse("/developers/apps/new", {"#app_name": "Mi Salud"}, "register a health app")
    walk.visit("/developers/apps/credentials/no-such-token", "app credentials link invalid")
    walk.visit("/developers/apps/credentials/new", "ask for a new app secret")
    walk.refuse(
        "/developers/apps/credentials/new", {"#contact_email": "no-es"}, "ask for a new app secret"
    )


def test_every_page_of_the_provider_wizard(walk):
    _provider_wizard(walk)


def test_every_page_of_the_member_wizard(stack, browser):
    showcase = seed_showcase(stack.session_factory)
    with serving(stack.app) as base:
        walker = Walk(browser, base)
        _member_wizard(walker, showcase)
        walker.close()


def test_every_signed_in_page_of_every_portal(walk):
    page = walk.page
    for portal, username in (
        ("patient", "ana.perez"),
        ("member", "maria.lopez"),
        ("provider", "dr.ruiz"),
    ):
        sign_in(page, walk.base, f"/{portal}/login", username, PASSWORD)
        walk.visit(f"/{portal}/", f"{portal} home")
        walk.visit(f"/{portal}/account/password")
        walk.visit(f"/{portal}/account/activity", "activity and access")
        walk.visit(f"/{portal}/account/profile", "profile")
        walk.refuse(f"/{portal}/account/profile", {"#phone": "12"}, "profile")
        walk.refuse(
            f"/{portal}/account/password", {"#current_password": "equivocada"}, "change password"
        )
        walk.visit(f"/{portal}/account/email")
        walk.refuse(f"/{portal}/account/email", {"#new_email": "no-es-correo"}, "change e-mail")
        if portal == "patient":
            walk.visit("/staff/", "forbidden")
            walk.visit("/patient/account/proxies", "people who can act for me")
            walk.refuse(
                "/patient/account/proxies",
                {"#email": "no-es-correo"},
                "invite a proxy",
                button="form:has(#email) button[type=submit]",
            )
            walk.visit("/patient/proxy/request", "ask to act for someone")
            walk.refuse("/patient/proxy/request", {"#record_number": "HC-3"}, "ask to act")
            walk.visit(f"/patient/proxy/accept/{PROXY_ACCEPT_TOKEN}", "invitation, signed in")
            page.select_option("#acting-reference", "XSHOW0001")
            page.click(".acting button[type=submit]")
            page.wait_for_load_state()
            walk.visit("/patient/", "acting for someone")
            assert "Sofía Pérez" in page.inner_text(".acting strong")
        if portal == "provider":
            walk.visit("/provider/account/employees")
            walk.refuse(
                "/provider/account/employees",
                {"#email": "no-es-correo"},
                "invite an employee",
                button="form:has(#email) button[type=submit]",
            )
        sign_out(page)


def test_every_page_of_the_staff_console(walk, site):
    _base, showcase = site
    walk.visit("/staff/login")
    walk.refuse("/staff/login", {"#username": "x", "#password": "y"}, "staff login")
    sign_in(walk.page, walk.base, "/staff/login", "marta.admin", STAFF_PASSWORD)
    walk.visit("/staff/", "staff home")
    walk.visit("/staff/audit")
    walk.visit("/staff/audit?actor=applicant&portal=member&since=2020-01-01", "audit filtered")
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
    walk.visit("/staff/accounts?q=ana.perez", "account search")
    walk.visit(f"/staff/accounts/{showcase.patient_id}", "staff account page")
    walk.refuse(
        f"/staff/accounts/{showcase.patient_id}",
        {},
        "disable without a note",
        button="form:has(#status_note) button[type=submit]",
    )
    walk.visit(f"/staff/accounts/{showcase.patient_id}/email", "help desk e-mail change")
    walk.visit("/staff/proxies", "proxy requests")
    walk.visit(f"/staff/proxies/{PROXY_REVIEW_REFERENCE}", "proxy request")
    walk.refuse(
        f"/staff/proxies/{PROXY_REVIEW_REFERENCE}",
        {"#decision": "decline"},
        "deny a proxy request without a reason",
        button="form:has(#decision) button[type=submit]",
    )
    walk.refuse(
        f"/staff/accounts/{showcase.patient_id}/email",
        {"#new_email": "ana.nueva@example.org"},
        "help desk e-mail change without a note",
    )
    walk.visit("/staff/apps", "health apps waiting")
    walk.visit(f"/staff/apps/{APP_REVIEW_REFERENCE}", "health app application")
    walk.refuse(
        f"/staff/apps/{APP_REVIEW_REFERENCE}",
        {"#decision": "deny"},
        "deny a health app without a reason",
        button="form:has(#decision) button[type=submit]",
    )
    walk.visit("/staff/admin/", "staff list")
    walk.visit("/staff/admin/invite", "invite staff")
    walk.refuse("/staff/admin/invite", {}, "invite staff")
    walk.page.goto(f"{walk.base}/staff/admin/?lang=es")
    member = walk.page.locator("a[href*='/staff/admin/']").filter(has_text="marta.admin")
    member_path = member.first.get_attribute("href")
    walk.visit(member_path, "staff member")
    for lang in LANGUAGES:
        walk.page.goto(f"{walk.base}{member_path}?lang={lang}")
        for box in walk.page.locator("input[name=roles]").all():
            box.uncheck()
        walk.page.click("form:has(input[name=roles]) button[type=submit]")
        walk.page.wait_for_load_state()
        walk.check("staff member without a role (refused)")


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
        enter(page, f"#{name}", value)
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
    page.check("#certify")
    page.click("button[value=finish]")
    page.wait_for_url("**/member/register/done/**")
    walk.visit(page.url.removeprefix(walk.base).split("?")[0], "member done")

    for lang in LANGUAGES:  # a client ID that already has an account
        sign_out(page)
        _start_member_identity(walk, lang)
        for name, value in {
            "birth_day": "12",
            "birth_month": "4",
            "birth_year": "1985",
            "first_name": "María",
            "last_name": "López",
            "client_id": "100200302",
        }.items():
            enter(page, f"#{name}", value)
        page.click("button[value=next]")
        page.wait_for_selector("main a[href$='/recover/username']")
        walk.check("member already has an account")

    sign_out(page)  # three tries that do not match: the help desk
    _start_member_identity(walk, "es")
    for _ in range(3):
        for name, value in {**showcase.member_record, "client_id": "100200399"}.items():
            enter(page, f"#{name}", value)
        page.click("button[value=next]")
        page.wait_for_load_state()
    walk.visit("/member/register", "member escalated")


def _start_member_identity(walk: Walk, lang: str) -> None:
    walk.page.goto(f"{walk.base}/member/register?lang={lang}")
    walk.page.click("button[value=accept]")
    walk.page.wait_for_selector("#first_name")


def test_the_consent_page_of_a_health_app(walk, session_factory):
    with session_factory() as session:
        client_id = add_client(
            session,
            "Mis Datos de Salud",
            portal="patient",
            public=True,
            redirect_uris=["http://app.test/callback"],
            approved_scopes=[
                "openid",
                "fhirUser",
                "launch/patient",
                "offline_access",
                "patient/*.rs",
            ],
        ).client.client_id
        session.commit()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": "http://app.test/callback",
            "scope": "openid fhirUser launch/patient offline_access patient/Patient.r "
            "patient/Observation.rs patient/MedicationRequest.rs",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
        }
    )
    sign_in(walk.page, walk.base, "/patient/login", "ana.perez", PASSWORD)
    # Ana acts for her daughter, so she is first asked whose record the app gets.
    walk.visit(f"/patient/authorize?{query}", "whose record a health app uses")
    walk.page.locator("input[name=record]").last.check()
    walk.page.click("main button[type=submit]")
    walk.page.wait_for_load_state()
    assert walk.page.locator("input[name=resource]").count(), walk.page.url
    walk.check("health app consent")
