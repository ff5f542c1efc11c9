"""Signing in to an application goes through the portal's own login page: consent for
third-party clients, `prompt`, `max_age`, `login_hint`, and the forced change of a temporary
password, then back to the application."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import update

from portal.models import User, UserSession, utcnow
from tests.fixtures.oidc import PASSWORD, REDIRECT_URI, callback_params


def test_login_hint_prefills_the_username_on_the_portal_login_page(provider):
    provider.add_user()
    client = provider.add_client()
    url, _, _ = provider.start_signin(provider.relying_party(client), login_hint="ana.perez")
    page = provider.browser().walk(url)
    assert "/patient/login" in page.url
    assert re.search(r'name="username"[^>]*value="ana.perez"', page.text)


def test_third_party_client_asks_for_consent_listing_the_claims(provider):
    provider.add_user()
    client = provider.add_client("partner", first_party=False)
    browser = provider.browser()
    oauth = provider.relying_party(client, scope="openid email")
    url, verifier, _ = provider.start_signin(oauth)

    consent = browser.sign_in(browser.walk(url), "ana.perez")

    assert consent.status_code == 200
    assert "partner" in consent.text and "Su correo electrónico" in consent.text
    assert "Su usuario, su nombre" not in consent.text
    allowed = browser.submit(consent, {"decision": "allow"})
    assert "code" in callback_params(allowed.headers["Location"])

    # Consent is remembered now; `prompt=consent` asks again, and a "no" is heard.
    url, _, _ = provider.start_signin(oauth, prompt="consent")
    denied = browser.submit(browser.walk(url), {"decision": "deny"})
    got = callback_params(denied.headers["Location"])
    assert got["error"] == "access_denied" and "code" not in got


def test_first_party_client_skips_consent(provider):
    provider.add_user()
    client = provider.add_client(first_party=True)
    browser = provider.browser()
    url, _, _ = provider.start_signin(provider.relying_party(client))
    answer = browser.sign_in(browser.walk(url), "ana.perez")
    assert answer.status_code == 302 and answer.headers["Location"].startswith(REDIRECT_URI)


def test_signed_in_person_returns_at_once_and_prompt_none_never_shows_a_page(provider):
    provider.add_user()
    client = provider.add_client()
    oauth = provider.relying_party(client)
    stranger = provider.browser()
    url, _, _ = provider.start_signin(oauth, prompt="none")
    assert callback_params(stranger.walk(url).headers["Location"])["error"] == "login_required"

    browser = provider.browser()
    provider.sign_in(client, browser)
    url, _, _ = provider.start_signin(oauth)
    assert "code" in callback_params(browser.walk(url).headers["Location"])


def test_prompt_login_and_max_age_send_a_signed_in_person_back_to_the_login_page(provider):
    provider.add_user()
    client = provider.add_client()
    browser = provider.browser()
    first = provider.sign_in(client, browser)
    first_auth = first.oauth.token["id_token"]

    url, _, _ = provider.start_signin(provider.relying_party(client), prompt="login")
    page = browser.walk(url)
    assert "/patient/login" in page.url
    answer = browser.sign_in(page, "ana.perez")
    assert "code" in callback_params(answer.headers["Location"])

    with provider.session_factory() as session:
        session.execute(update(UserSession).values(created_at=utcnow() - timedelta(hours=2)))
        session.commit()
    oauth = provider.relying_party(client)
    url, _, _ = provider.start_signin(oauth, max_age="60")
    assert "/patient/login" in browser.walk(url).url
    url, _, _ = provider.start_signin(oauth, max_age="86400")
    assert "code" in callback_params(browser.walk(url).headers["Location"])
    assert first_auth


def test_auth_time_in_the_id_token_is_when_the_person_signed_in(provider):
    provider.add_user()
    client = provider.add_client()
    signin = provider.sign_in(client)
    claims = provider.validate_id_token(signin.token["id_token"], client, signin.nonce).claims
    assert abs(claims["auth_time"] - utcnow().timestamp()) < 60


def test_temporary_password_is_changed_first_then_the_person_returns_to_the_app(provider):
    provider.add_user(must_change_password=True, password_expires_at=utcnow() + timedelta(hours=1))
    client = provider.add_client()
    browser = provider.browser()
    oauth = provider.relying_party(client)
    url, verifier, _ = provider.start_signin(oauth)

    change = browser.sign_in(browser.walk(url), "ana.perez")
    assert "/patient/account/password" in change.url or "contraseña" in change.text.lower()
    new_password = "OtraClave456segura"
    answer = browser.submit(
        change,
        {
            "current_password": PASSWORD,
            "new_password": new_password,
            "new_password_confirm": new_password,
        },
    )

    location = answer.headers["Location"]
    assert location.startswith(REDIRECT_URI)
    token = oauth.fetch_token(
        provider.metadata()["token_endpoint"],
        authorization_response=location,
        code_verifier=verifier,
    )
    assert token["id_token"]


def test_keep_me_signed_in_works_through_the_app_sign_in(provider):
    provider.add_user()
    client = provider.add_client()
    browser = provider.browser()
    url, _, _ = provider.start_signin(provider.relying_party(client))
    answer = browser.sign_in(browser.walk(url), "ana.perez", remember_me="y")
    assert answer.headers["Location"].startswith(REDIRECT_URI)
    assert any(cookie.name == "remember_token" for cookie in browser.cookies)


def test_disabled_account_gets_no_tokens(provider):
    provider.add_user()
    client = provider.add_client()
    signin = provider.sign_in(client)
    with provider.session_factory() as session:
        session.execute(update(User).values(status="disabled"))
        session.commit()
    userinfo = signin.oauth.get(provider.metadata()["userinfo_endpoint"])
    assert userinfo.status_code == 401


def test_consent_speaks_english_when_the_person_chose_it(provider):
    provider.add_user()
    client = provider.add_client("partner", first_party=False)
    browser = provider.browser()
    browser.get(f"{provider.base_url}/patient/login?lang=en")
    url, _, _ = provider.start_signin(provider.relying_party(client, scope="openid profile"))

    consent = browser.sign_in(browser.walk(url), "ana.perez")

    assert "Authorise an application" in consent.text
    assert "Your username, your name and your language" in consent.text


def test_max_age_zero_asks_for_the_password_once_and_then_returns(provider):
    provider.add_user()
    client = provider.add_client()
    browser = provider.browser()
    provider.sign_in(client, browser)

    url, _, _ = provider.start_signin(provider.relying_party(client), max_age="0")
    page = browser.walk(url)
    assert "/patient/login" in page.url
    answer = browser.sign_in(page, "ana.perez")

    assert "code" in callback_params(answer.headers["Location"])
