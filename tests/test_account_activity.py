"""Activity and access over HTTP on the real stack: a person sees and ends their sessions from
another browser (and the applications those sessions signed in to), removes an application (its refresh token fails and its back-channel URI gets
a logout token), is asked for consent only for scopes not allowed before, hears by e-mail of a
sign-in from a new browser and ends it with the "not me" link, and keeps a profile whose
language the e-mails follow; the help desk's account page is reached only within its portals."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import requests
from authlib.integrations.base_client.errors import OAuthError
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import event, select

from portal.models import (
    AuditEvent,
    OidcConsent,
    OidcGrant,
    OidcRefreshToken,
    OutboxMessage,
    User,
    utcnow,
)
from portal.oidc import BACKCHANNEL_EVENT
from tests.fixtures.oidc import REDIRECT_URI, callback_params
from tests.fixtures.patients import register
from tests.fixtures.smtp import body_text, link_in
from tests.fixtures.stack import press_link_button, submit
from tests.fixtures.staff import add_staff, sign_in_staff
from tests.fixtures.waiting import wait_until
from tests.test_oidc_logout import LogoutReceiver

CHROME_ON_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
FIREFOX_ON_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
STAFF_PASSWORD = "una clave larga del personal"


@pytest.fixture
def receiver():
    made = LogoutReceiver()
    made.up = True
    yield made
    made.close()


def browser_of(provider, user_agent: str = CHROME_ON_WINDOWS):
    browser = provider.browser()
    browser.headers["User-Agent"] = user_agent
    return browser


def sign_in(provider, browser, username: str = "ana.perez"):
    page = browser.get(f"{provider.base_url}/patient/login")
    answer = browser.sign_in(page, username)
    assert answer.status_code == 200 and "/login" not in answer.url, answer.url
    return answer


def signed_in(provider, browser) -> bool:
    return browser.get(f"{provider.base_url}/patient/", allow_redirects=False).status_code == 200


def activity_page(provider, browser):
    page = browser.get(f"{provider.base_url}/patient/account/activity")
    assert page.status_code == 200, page.status_code
    return page


def post_form(browser, page, action: str, data: dict):
    """Presses a button of one of the page's several forms (each carries the CSRF token)."""
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text).group(1)
    return browser.post(action, data={"csrf_token": token, **data})


def session_handles(page) -> list[str]:
    return re.findall(r'name="session" value="([^"]+)"', page.text)


def authorize(provider, client, browser, scope: str, **params):
    """One code flow: returns the provider's last answer (a consent page or the redirect back)
    and what the relying party needs to finish it."""
    oauth = provider.relying_party(client, scope=scope)
    url, verifier, _nonce = provider.start_signin(oauth, **params)
    answer = browser.walk(url)
    if "/login" in answer.url and answer.status_code == 200:
        answer = browser.sign_in(answer, "ana.perez")
    return answer, oauth, verifier


def is_consent_page(answer) -> bool:
    return answer.status_code == 200 and 'name="decision"' in answer.text


def finish(provider, answer, oauth, verifier) -> dict:
    callback = answer.headers["Location"]
    assert callback.startswith(REDIRECT_URI), callback
    return dict(
        oauth.fetch_token(
            provider.metadata()["token_endpoint"],
            authorization_response=callback,
            code_verifier=verifier,
        )
    )


def test_ending_a_session_from_another_browser_signs_it_out_at_its_next_request(provider):
    provider.add_user()
    mine, other, third = (browser_of(provider) for _ in range(3))
    other.headers["User-Agent"] = FIREFOX_ON_LINUX
    for browser in (mine, other, third):
        sign_in(provider, browser)

    page = activity_page(provider, mine)
    assert page.text.count("Este dispositivo") == 1
    assert "Firefox 128" in page.text and "Linux" in page.text
    assert "Chrome 120" in page.text and "Windows 10" in page.text
    handles = session_handles(page)
    assert len(handles) == 2  # every session but this one can be ended from here

    other_page = activity_page(provider, other)
    other_handle = next(h for h in handles if h not in session_handles(other_page))
    ended = post_form(
        mine,
        page,
        f"{provider.base_url}/patient/account/activity/sessions/end",
        {"session": other_handle},
    )
    assert ended.status_code == 200 and "Cerramos esa sesión" in ended.text

    assert not signed_in(provider, other)
    assert signed_in(provider, mine) and signed_in(provider, third)

    page = activity_page(provider, mine)
    post_form(mine, page, f"{provider.base_url}/patient/account/activity/sessions/end-others", {})
    assert not signed_in(provider, third)
    assert signed_in(provider, mine)
    assert session_handles(activity_page(provider, mine)) == []


def test_ending_a_session_from_the_activity_page_signs_its_applications_out_too(
    provider_with_worker, receiver
):
    provider = provider_with_worker
    provider.add_user()
    client = provider.add_client(backchannel_logout_uri=receiver.url)
    mine, other = browser_of(provider), browser_of(provider, FIREFOX_ON_LINUX)
    on_mine = provider.sign_in(client, mine)
    on_other = provider.sign_in(client, other)
    other_sid = provider.validate_id_token(
        on_other.token["id_token"], client, on_other.nonce
    ).claims["sid"]

    page = activity_page(provider, mine)
    (handle,) = session_handles(page)
    post_form(
        mine,
        page,
        f"{provider.base_url}/patient/account/activity/sessions/end",
        {"session": handle},
    )

    token = wait_until(lambda: receiver.tokens, 30, "the back-channel logout token")[0]
    keys = KeySet.import_key_set(requests.get(provider.metadata()["jwks_uri"], timeout=5).json())
    assert jwt.decode(token, keys, algorithms=["ES256"]).claims["sid"] == other_sid
    endpoint = provider.metadata()["token_endpoint"]
    with pytest.raises(OAuthError):
        on_other.oauth.refresh_token(endpoint, refresh_token=on_other.token["refresh_token"])
    assert on_mine.oauth.refresh_token(endpoint, refresh_token=on_mine.token["refresh_token"])
    assert signed_in(provider, mine)


def test_a_session_of_another_account_cannot_be_ended_by_its_handle(provider):
    provider.add_user()
    provider.add_user("luis.gomez", email="luis@example.org")
    ana, luis = browser_of(provider), browser_of(provider)
    sign_in(provider, ana)
    sign_in(provider, luis, "luis.gomez")
    second_ana = browser_of(provider)
    sign_in(provider, second_ana)
    handle = session_handles(activity_page(provider, ana))[0]

    page = luis.get(f"{provider.base_url}/patient/account/profile")
    answer = post_form(
        luis,
        page,
        f"{provider.base_url}/patient/account/activity/sessions/end",
        {"session": handle},
    )

    assert "ya había terminado" in answer.text
    assert signed_in(provider, second_ana)


def test_removing_an_application_revokes_its_tokens_and_sends_its_back_channel_logout(
    provider_with_worker, receiver
):
    provider = provider_with_worker
    provider.add_user()
    client = provider.add_client(first_party=False, backchannel_logout_uri=receiver.url)
    browser = browser_of(provider)
    answer, oauth, verifier = authorize(provider, client, browser, "openid profile email")
    assert is_consent_page(answer)
    token = finish(provider, browser.submit(answer, {"decision": "allow"}), oauth, verifier)

    page = activity_page(provider, browser)
    assert "historia" in page.text and "Su correo electrónico y si está confirmado" in page.text
    client_pk = re.search(r'name="client" value="(\d+)"', page.text).group(1)
    removed = post_form(
        browser,
        page,
        f"{provider.base_url}/patient/account/activity/applications/remove",
        {"client": client_pk},
    )
    assert removed.status_code == 200 and "Quitamos el acceso" in removed.text
    assert "Ninguna aplicación tiene acceso" in removed.text

    with pytest.raises(OAuthError):
        oauth.refresh_token(
            provider.metadata()["token_endpoint"], refresh_token=token["refresh_token"]
        )
    wait_until(lambda: receiver.tokens, 30, "the back-channel logout token")
    keys = KeySet.import_key_set(requests.get(provider.metadata()["jwks_uri"], timeout=5).json())
    claims = jwt.decode(receiver.tokens[0], keys, algorithms=["ES256"]).claims
    assert claims["aud"] == client.client_id and BACKCHANNEL_EVENT in claims["events"]
    with provider.session_factory() as session:
        assert session.scalars(select(OidcConsent)).all() == []
    # The consent was forgotten with the access: the next sign-in asks again.
    again, *_ = authorize(provider, client, browser, "openid profile email")
    assert is_consent_page(again)
    assert signed_in(provider, browser)


@pytest.mark.dialects
def test_consent_is_remembered_per_client_and_asked_again_only_for_new_scopes(provider):
    provider.add_user()
    client = provider.add_client(first_party=False)
    other_client = provider.add_client("agenda", first_party=False)
    browser = browser_of(provider)

    first, oauth, verifier = authorize(provider, client, browser, "openid profile")
    assert is_consent_page(first)
    finish(provider, browser.submit(first, {"decision": "allow"}), oauth, verifier)

    same, oauth, verifier = authorize(provider, client, browser, "openid profile")
    assert not is_consent_page(same)
    assert "code" in callback_params(same.headers["Location"])
    finish(provider, same, oauth, verifier)

    narrower, *_ = authorize(provider, client, browser, "openid")
    assert not is_consent_page(narrower)
    wider, *_ = authorize(provider, client, browser, "openid profile email")
    assert is_consent_page(wider)
    forced, *_ = authorize(provider, client, browser, "openid profile", prompt="consent")
    assert is_consent_page(forced)
    elsewhere, *_ = authorize(provider, other_client, browser, "openid profile")
    assert is_consent_page(elsewhere)

    browser.submit(wider, {"decision": "allow"})
    with provider.session_factory() as session:
        consent = session.scalar(select(OidcConsent).where(OidcConsent.client_pk == client.pk))
        assert consent.scope.split() == ["openid", "profile", "email"]
        allowed = session.scalars(
            select(AuditEvent.detail).where(AuditEvent.action == "application.allowed")
        ).all()
    assert [d["scope"] for d in allowed] == ["openid profile", "openid profile email"]


@pytest.mark.dialects
def test_a_sign_in_from_a_new_browser_emails_the_owner_and_not_me_ends_that_session(
    provider_with_worker, mailbox
):
    provider = provider_with_worker
    provider.add_user()
    usual = browser_of(provider)
    sign_in(provider, usual)
    sign_in(provider, usual)  # the same browser again is no news
    stranger = browser_of(provider, FIREFOX_ON_LINUX)
    sign_in(provider, stranger)

    notice = mailbox.wait_for("ana.perez@example.org", "Nuevo inicio de sesión")
    assert "Firefox 128" in body_text(notice) and "Linux" in body_text(notice)
    assert len(mailbox.to("ana.perez@example.org")) == 1
    link = link_in(notice, "/patient/account/not-me/")

    mail_reader = browser_of(provider)
    page = mail_reader.get(link)
    assert page.status_code == 200 and signed_in(provider, stranger)
    done = mail_reader.submit(page, {})
    assert done.status_code == 200 and "Cerramos esa sesión" in done.text

    assert not signed_in(provider, stranger)
    assert signed_in(provider, usual)
    mailbox.wait_for("ana.perez@example.org", "Confirme el cambio de contraseña")
    assert mail_reader.get(link).status_code == 410
    with provider.session_factory() as session:
        actions = session.scalars(select(AuditEvent.action)).all()
    assert "login.new_device" in actions and "login.not_me" in actions
    # Forgotten: the stranger's browser is news again at its next sign-in.
    sign_in(provider, stranger)
    wait_until(
        lambda: (
            len([m for m in mailbox.to("ana.perez@example.org") if "Nuevo" in m["Subject"]]) == 2
        ),
        20,
        "a second new-device notice",
    )


def test_the_profile_keeps_phone_and_language_and_emails_follow_the_language(
    provider_with_worker, mailbox
):
    provider = provider_with_worker
    provider.add_user()
    browser = browser_of(provider)
    sign_in(provider, browser)
    page = browser.get(f"{provider.base_url}/patient/account/profile")
    assert 'id="full_name"' in page.text  # the patient portal did not verify the name

    refused = browser.submit(page, {"full_name": "Ana Pérez", "phone": "12", "locale": "es"})
    assert refused.status_code == 200 and "Escriba un teléfono válido" in refused.text
    saved = browser.submit(
        refused, {"full_name": "Ana Pérez Ruiz", "phone": "+54 11 4000-1234", "locale": "en"}
    )
    assert saved.status_code == 200 and "Your profile" in saved.text
    with provider.session_factory() as session:
        user = session.scalar(select(User))
        assert (user.full_name, user.phone, user.locale) == (
            "Ana Pérez Ruiz",
            "+541140001234",
            "en",
        )

    sign_in(provider, browser_of(provider, FIREFOX_ON_LINUX))
    notice = mailbox.wait_for("ana.perez@example.org", "New sign-in")
    assert "from a browser it had not used before" in body_text(notice)


def test_a_member_sees_the_verified_name_read_only(provider):
    provider.add_user("maria.lopez", portal="member", full_name="María López")
    browser = browser_of(provider)
    page = browser.get(f"{provider.base_url}/member/login")
    browser.sign_in(page, "maria.lopez")
    profile = browser.get(f"{provider.base_url}/member/account/profile")
    assert 'id="full_name"' not in profile.text and "María López" in profile.text


def test_the_staff_account_page_is_for_the_help_desk_within_its_portals(provider):
    user_id = provider.add_user()
    add_staff(provider.session_factory, "rita", STAFF_PASSWORD, roles="reviewer")
    add_staff(provider.session_factory, "mora", STAFF_PASSWORD, roles="support", portals="member")
    add_staff(provider.session_factory, "pablo", STAFF_PASSWORD, roles="support", portals="patient")
    path = f"/staff/accounts/{user_id}"
    for name, expected in (("rita", 403), ("mora", 404)):
        staff = provider.app.test_client()
        sign_in_staff(staff, provider.session_factory, name, STAFF_PASSWORD)
        assert staff.get(path).status_code == expected
        acted = submit(staff, f"{path}/end-sessions", {"note": "x"}, form_page="/staff/")
        assert acted.status_code == expected
    anonymous = provider.app.test_client()
    assert anonymous.get(path).status_code == 302

    person = browser_of(provider)
    sign_in(provider, person)
    desk = provider.app.test_client()
    sign_in_staff(desk, provider.session_factory, "pablo", STAFF_PASSWORD)
    page = desk.get(path).get_data(as_text=True)
    assert "Chrome 120" in page and f"/staff/accounts/{user_id}/email" in page
    with provider.session_factory() as session:
        viewed = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "staff.account_viewed")
        ).all()
        assert [(e.actor, e.user_id) for e in viewed] == [("staff:pablo", user_id)]

    refused = submit(desk, f"{path}/end-sessions", {"note": ""}, form_page=path)
    assert refused.status_code == 400 and "Este campo es obligatorio" in refused.get_data(
        as_text=True
    )
    assert signed_in(provider, person)
    ended = submit(desk, f"{path}/end-sessions", {"note": "Llamó; verifiqué DNI"}, form_page=path)
    assert ended.status_code == 302 and not signed_in(provider, person)

    sign_in(provider, person)
    assert 'name="to" value="disabled"' in desk.get(path).get_data(as_text=True)
    disable = {"note": "Pidió bloquear", "to": "disabled"}
    disabled = submit(desk, f"{path}/status", disable, form_page=path)
    assert disabled.status_code == 302 and not signed_in(provider, person)
    repeated = submit(desk, f"{path}/status", disable, form_page=path, follow=True)
    assert "ya estaba desactivada" in repeated.get_data(as_text=True)
    with provider.session_factory() as session:
        assert session.get(User, user_id).status == "disabled", "a repeated press undoes nothing"
    assert 'name="to" value="active"' in desk.get(path).get_data(as_text=True)
    submit(desk, f"{path}/status", {"note": "Lo pidió de nuevo", "to": "active"}, form_page=path)
    with provider.session_factory() as session:
        assert session.get(User, user_id).status == "active"
        notes = session.scalars(
            select(AuditEvent.detail).where(AuditEvent.action.like("account.%_by_helpdesk"))
        ).all()
    assert [d["note"] for d in notes] == ["Pidió bloquear", "Lo pidió de nuevo"]


def _connect(provider, user_id: int, name: str) -> None:
    """An application holding a live grant, refreshed once, as a finished code flow leaves it."""
    client = provider.add_client(name, first_party=False)
    with provider.session_factory() as session:
        grant = OidcGrant(
            id=f"grant-{name}",
            client_pk=client.pk,
            user_id=user_id,
            portal="patient",
            scope="openid profile",
            auth_time=utcnow(),
        )
        session.add(grant)
        session.add(
            OidcRefreshToken(
                token_hash=f"hash-{name}",
                grant_id=grant.id,
                expires_at=utcnow() + timedelta(days=1),
            )
        )
        session.commit()


@pytest.mark.dialects
def test_the_activity_page_reads_in_as_many_queries_for_many_sessions_and_apps_as_for_one(
    provider,
):
    user_id = provider.add_user()
    engine = provider.app.extensions["acceso.sessions"].kw["bind"]
    browser = browser_of(provider)
    sign_in(provider, browser)
    _connect(provider, user_id, "uno")

    def queries_for_the_page() -> int:
        seen = []

        def count(*_args):
            seen.append(1)

        event.listen(engine, "before_cursor_execute", count)
        try:
            page = activity_page(provider, browser)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return len(seen), page

    few, _ = queries_for_the_page()
    for _ in range(4):
        sign_in(provider, browser_of(provider, FIREFOX_ON_LINUX))
    for name in ("dos", "tres", "cuatro"):
        _connect(provider, user_id, name)
    many, page = queries_for_the_page()

    assert len(session_handles(page)) == 4 and page.text.count('name="client"') == 4
    assert many == few


def test_the_help_desk_resends_a_confirmation_link_through_the_registration(clinic, mailbox):
    stack = clinic
    register(stack.client)
    first = link_in(mailbox.wait_for("ana@example.org", "Confirme"), "/patient/confirm/")
    add_staff(stack.session_factory, "pablo", STAFF_PASSWORD, roles="support", portals="patient")
    desk = stack.new_client()
    sign_in_staff(desk, stack.session_factory, "pablo", STAFF_PASSWORD)
    with stack.session_factory() as session:
        user_id = session.scalar(select(User.id).where(User.username == "ana.perez"))
    path = f"/staff/accounts/{user_id}"
    assert "Reenviar el enlace de confirmación" in desk.get(path).get_data(as_text=True)

    answer = submit(desk, f"{path}/resend-confirmation", {}, form_page=path)

    assert answer.status_code == 302
    wait_until(lambda: len(mailbox.to("ana@example.org")) == 2, 30, "a second confirmation e-mail")
    second = link_in(mailbox.to("ana@example.org")[-1], "/patient/confirm/")
    assert second != first
    old_page = stack.client.get("/" + first.split("://", 1)[1].split("/", 1)[1])
    assert 'name="csrf_token"' not in old_page.get_data(as_text=True)  # replaced by the new one
    confirmed = press_link_button(stack.client, second)
    assert "Ya puede iniciar sesión" in confirmed.get_data(as_text=True)


def test_a_new_device_sign_in_never_waits_on_temporal(provider):
    """No Temporal server at all: the sign-in answers, and the notice waits in the outbox."""
    provider.add_user()
    sign_in(provider, browser_of(provider))
    stranger = browser_of(provider, FIREFOX_ON_LINUX)
    sign_in(provider, stranger)

    assert signed_in(provider, stranger)
    with provider.session_factory() as session:
        owed = session.scalars(select(OutboxMessage.workflow)).all()
    assert owed == ["SignInNoticeWorkflow"]
