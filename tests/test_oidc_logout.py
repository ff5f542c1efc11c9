"""Signing out: RP-initiated logout returns only to a registered URI, and when a session (or
every session) of an account ends, each client it signed in to with a back-channel URI gets a
signed logout token (naming the session's `sid`, or the account alone), by a durable workflow
that retries a client that is down until it comes back."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
import requests
from authlib.integrations.base_client.errors import OAuthError
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from portal.models import AuditEvent, OidcGrant, OutboxMessage, User
from portal.oidc import BACKCHANNEL_EVENT
from processes.logout_delivery.workflows import LogoutDeliveryWorkflow
from tests.fixtures.oidc import PASSWORD, POST_LOGOUT_URI, callback_params
from tests.fixtures.processes import free_port
from tests.fixtures.smtp import link_in
from tests.fixtures.waiting import wait_until


class LogoutReceiver:
    """A client's back-channel endpoint that can be down (503) and come back."""

    def __init__(self):
        self.up = False
        self.tokens: list[str] = []
        self.refused = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                if not receiver.up:
                    receiver.refused += 1
                    self.send_response(503)
                    self.end_headers()
                    return
                receiver.tokens.append(parse_qs(body)["logout_token"][0])
                self.send_response(200)
                self.send_header("Cache-Control", "no-store")
                self.end_headers()

            def log_message(self, *args):
                return

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/backchannel-logout"

    def close(self):
        self.server.shutdown()
        self.thread.join(timeout=10)


@pytest.fixture
def receiver():
    made = LogoutReceiver()
    yield made
    made.close()


def signed_in_home(browser, provider) -> bool:
    page = browser.get(f"{provider.base_url}/patient/", allow_redirects=False)
    return page.status_code == 200


def test_rp_initiated_logout_ends_the_session_and_returns_to_the_registered_uri(provider):
    provider.add_user()
    client = provider.add_client()
    browser = provider.browser()
    signin = provider.sign_in(client, browser)
    assert signed_in_home(browser, provider)

    answer = browser.get(
        provider.metadata()["end_session_endpoint"],
        params={
            "id_token_hint": signin.token["id_token"],
            "post_logout_redirect_uri": POST_LOGOUT_URI,
            "state": "bye",
        },
        allow_redirects=False,
    )

    assert answer.status_code == 302
    assert answer.headers["Location"].startswith(POST_LOGOUT_URI)
    assert callback_params(answer.headers["Location"])["state"] == "bye"
    assert not signed_in_home(browser, provider)
    with pytest.raises(OAuthError):
        signin.oauth.refresh_token(
            provider.metadata()["token_endpoint"], refresh_token=signin.token["refresh_token"]
        )


def test_logout_to_an_unregistered_uri_is_refused_and_keeps_the_session(provider):
    provider.add_user()
    client = provider.add_client()
    browser = provider.browser()
    signin = provider.sign_in(client, browser)

    answer = browser.get(
        provider.metadata()["end_session_endpoint"],
        params={
            "id_token_hint": signin.token["id_token"],
            "post_logout_redirect_uri": "http://evil.example/after",
        },
        allow_redirects=False,
    )

    assert answer.status_code == 400 and "Location" not in answer.headers
    assert signed_in_home(browser, provider)


def test_logout_without_a_hint_asks_the_person_to_confirm(provider):
    provider.add_user()
    client = provider.add_client()
    browser = provider.browser()
    provider.sign_in(client, browser)
    end = provider.metadata()["end_session_endpoint"]

    page = browser.get(end, params={"client_id": client.client_id})
    assert page.status_code == 200 and "historia" in page.text
    assert signed_in_home(browser, provider)

    done = browser.submit(page, {})
    assert done.status_code == 200 and "Sesión cerrada" in done.text
    assert not signed_in_home(browser, provider)


def test_logout_sends_a_signed_logout_token_retried_until_the_client_is_back(
    provider_with_worker, receiver
):
    provider = provider_with_worker
    provider.add_user()
    client = provider.add_client(backchannel_logout_uri=receiver.url)
    quiet = provider.add_client("no-backchannel")
    browser = provider.browser()
    signin = provider.sign_in(client, browser)
    provider.sign_in(quiet, browser)

    assert signed_in_home(browser, provider)
    page = browser.get(provider.metadata()["end_session_endpoint"])
    browser.submit(page, {})

    with provider.session_factory() as session:
        assert all(g.revoked_at is not None for g in session.scalars(select(OidcGrant)))
        owed = session.scalars(select(OutboxMessage)).all()
    assert [m.workflow for m in owed] == ["LogoutDeliveryWorkflow"]
    with pytest.raises(OAuthError):
        signin.oauth.refresh_token(
            provider.metadata()["token_endpoint"], refresh_token=signin.token["refresh_token"]
        )

    wait_until(lambda: receiver.refused >= 2, timeout=30, what="the down client to be tried")
    receiver.up = True
    token = wait_until(lambda: receiver.tokens, timeout=30, what="the logout token")[0]

    keys = KeySet.import_key_set(requests.get(provider.metadata()["jwks_uri"], timeout=5).json())
    decoded = jwt.decode(token, keys, algorithms=["ES256"])
    claims = decoded.claims
    id_claims = provider.validate_id_token(signin.token["id_token"], client, signin.nonce).claims
    assert decoded.header["typ"] == "logout+jwt"
    assert claims["iss"] == provider.issuer() and claims["aud"] == client.client_id
    assert (claims["sub"], claims["sid"]) == (id_claims["sub"], id_claims["sid"])
    assert claims["events"] == {BACKCHANNEL_EVENT: {}}
    assert "nonce" not in claims and claims["jti"]
    with provider.session_factory() as session:
        wait_until(
            lambda: session.scalar(
                select(AuditEvent).where(AuditEvent.action == "oidc.backchannel_logout")
            ),
            what="the delivery's audit event",
        )


def test_a_password_change_signs_the_account_out_of_every_client(provider_with_worker, receiver):
    provider = provider_with_worker
    receiver.up = True
    provider.add_user()
    client = provider.add_client(backchannel_logout_uri=receiver.url)
    browser = provider.browser()
    signin = provider.sign_in(client, browser)

    page = browser.get(f"{provider.base_url}/patient/account/password")
    new_password = "OtraClave456segura"
    browser.submit(
        page,
        {
            "current_password": PASSWORD,
            "new_password": new_password,
            "new_password_confirm": new_password,
        },
    )

    assert signin.oauth.get(provider.metadata()["userinfo_endpoint"]).status_code == 401
    token = wait_until(lambda: receiver.tokens, timeout=30, what="the logout token")[0]
    claims = jwt.decode(token, provider.jwks(), algorithms=["ES256"]).claims
    assert claims["aud"] == client.client_id
    assert "sid" not in claims, "every session ends, so the token names the account alone"


def test_an_employee_disabled_by_the_office_is_signed_out_of_every_client(
    provider_with_worker, receiver
):
    provider = provider_with_worker
    receiver.up = True
    provider.add_user("rosa", portal="provider", role="provider_primary", office="Clínica Sur")
    with provider.session_factory() as session:
        office_id = session.scalar(select(User.office_id).where(User.username == "rosa"))
    employee_id = provider.add_user(
        "pablo", portal="provider", role="provider_employee", office_id=office_id
    )
    client = provider.add_client("claims", portal="provider", backchannel_logout_uri=receiver.url)
    signin = provider.sign_in(client, username="pablo", portal="provider")

    office = provider.browser()
    office.sign_in(office.get(f"{provider.base_url}/provider/login"), "rosa")
    page = office.get(f"{provider.base_url}/provider/account/employees")
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text).group(1)
    disabled = office.post(
        f"{provider.base_url}/provider/account/employees/{employee_id}/disable",
        data={"csrf_token": csrf},
        allow_redirects=False,
    )

    assert disabled.status_code in (302, 303)
    with pytest.raises(OAuthError):
        signin.oauth.refresh_token(
            provider.metadata("provider")["token_endpoint"],
            refresh_token=signin.token["refresh_token"],
        )
    token = wait_until(lambda: receiver.tokens, timeout=30, what="the logout token")[0]
    keys = KeySet.import_key_set(
        requests.get(provider.metadata("provider")["jwks_uri"], timeout=5).json()
    )
    claims = jwt.decode(token, keys, algorithms=["ES256"]).claims
    assert (claims["iss"], claims["aud"]) == (provider.issuer("provider"), client.client_id)


async def _plaintext_history(client, workflow_id: str) -> bytes:
    """Every payload of the workflow's history, decoded with the suite's codec."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    codec = client.data_converter.payload_codec
    chunks = []
    for event in history.events:
        for payloads in (
            event.workflow_execution_started_event_attributes.input,
            event.activity_task_scheduled_event_attributes.input,
            event.activity_task_completed_event_attributes.result,
            event.workflow_execution_completed_event_attributes.result,
        ):
            if payloads.payloads:
                decoded = await codec.decode(list(payloads.payloads))
                chunks += [payload.data for payload in decoded]
    chunks += [event.SerializeToString() for event in history.events]
    return b"".join(chunks)


def test_the_logout_token_never_enters_workflow_history(
    provider_with_worker, receiver, dev_server, background_loop
):
    provider = provider_with_worker
    receiver.up = True
    provider.add_user()
    client = provider.add_client(backchannel_logout_uri=receiver.url)
    browser = provider.browser()
    signin = provider.sign_in(client, browser)
    browser.submit(browser.get(provider.metadata()["end_session_endpoint"]), {})
    token = wait_until(lambda: receiver.tokens, timeout=30, what="the logout token")[0]
    with provider.session_factory() as session:
        workflow_id = session.scalar(select(OutboxMessage.workflow_id))

    handle = dev_server.client.get_workflow_handle_for(LogoutDeliveryWorkflow.run, workflow_id)
    outcome = background_loop.run(handle.result(), timeout=30)
    stored = background_loop.run(_plaintext_history(dev_server.client, workflow_id))

    assert outcome.outcome == "delivered"
    assert b'"client_pk"' in stored
    for secret in (token, signin.token["refresh_token"], client.client_secret):
        assert secret.encode() not in stored
    assert token.split(".")[1].encode() not in stored


@pytest.mark.dialects
def test_ending_one_session_logs_out_only_its_sid_and_the_other_session_keeps_working(
    provider_with_worker, receiver
):
    provider = provider_with_worker
    receiver.up = True
    provider.add_user()
    client = provider.add_client(backchannel_logout_uri=receiver.url)
    laptop, phone = provider.browser(), provider.browser()
    on_laptop = provider.sign_in(client, laptop)
    on_phone = provider.sign_in(client, phone)
    laptop_claims = provider.validate_id_token(
        on_laptop.token["id_token"], client, on_laptop.nonce
    ).claims
    phone_claims = provider.validate_id_token(
        on_phone.token["id_token"], client, on_phone.nonce
    ).claims
    assert laptop_claims["sub"] == phone_claims["sub"]
    assert laptop_claims["sid"] and laptop_claims["sid"] != phone_claims["sid"]

    ended = laptop.get(
        provider.metadata()["end_session_endpoint"],
        params={"id_token_hint": on_laptop.token["id_token"]},
        allow_redirects=False,
    )

    assert ended.status_code == 200 and not signed_in_home(laptop, provider)
    token = wait_until(lambda: receiver.tokens, timeout=30, what="the logout token")[0]
    claims = jwt.decode(token, provider.jwks(), algorithms=["ES256"]).claims
    assert (claims["sid"], claims["sub"]) == (laptop_claims["sid"], laptop_claims["sub"])
    with provider.session_factory() as session:
        owed = session.scalars(select(OutboxMessage)).all()
    # The phone's sign-in also owes a new-device notice; one logout is owed, for the laptop.
    assert [m.workflow for m in owed if m.workflow != "SignInNoticeWorkflow"] == [
        "LogoutDeliveryWorkflow"
    ]

    meta = provider.metadata()
    assert on_laptop.oauth.get(meta["userinfo_endpoint"]).status_code == 401
    with pytest.raises(OAuthError):
        on_laptop.oauth.refresh_token(
            meta["token_endpoint"], refresh_token=on_laptop.token["refresh_token"]
        )
    assert signed_in_home(phone, provider)
    assert on_phone.oauth.get(meta["userinfo_endpoint"]).status_code == 200
    refreshed = on_phone.oauth.refresh_token(
        meta["token_endpoint"], refresh_token=on_phone.token["refresh_token"]
    )
    assert (
        jwt.decode(refreshed["id_token"], provider.jwks(), algorithms=["ES256"]).claims["sid"]
        == (phone_claims["sid"])
    )


def test_an_rs256_clients_logout_token_is_signed_with_rs256(provider_with_worker, receiver):
    provider = provider_with_worker
    receiver.up = True
    provider.add_user()
    client = provider.add_client(backchannel_logout_uri=receiver.url, signing_alg="RS256")
    browser = provider.browser()
    signin = provider.sign_in(client, browser)

    browser.submit(browser.get(provider.metadata()["end_session_endpoint"]), {})

    token = wait_until(lambda: receiver.tokens, timeout=30, what="the logout token")[0]
    decoded = jwt.decode(token, provider.jwks(), algorithms=["RS256"])
    id_claims = provider.validate_id_token(
        signin.token["id_token"], client, signin.nonce, alg="RS256"
    ).claims
    assert decoded.header["alg"] == "RS256"
    assert decoded.claims["sid"] == id_claims["sid"]


def test_an_applied_e_mail_change_signs_the_account_out_of_every_client(
    provider_with_worker, receiver, mailbox
):
    provider = provider_with_worker
    receiver.up = True
    provider.add_user(email="ana@example.org")
    client = provider.add_client(backchannel_logout_uri=receiver.url)
    browser = provider.browser()
    signin = provider.sign_in(client, browser)

    page = browser.get(f"{provider.base_url}/patient/account/email")
    new = "ana.nueva@example.net"
    browser.submit(page, {"new_email": new, "new_email_confirm": new, "current_password": PASSWORD})
    link = link_in(mailbox.wait_for(new, "Confirme su nueva"), "/account/email/confirm/")
    clicker = provider.browser()
    clicker.submit(clicker.get(provider.base_url + "/" + link.split("/", 3)[3]), {})

    wait_until(lambda: receiver.tokens, timeout=30, what="the logout token")
    assert signin.oauth.get(provider.metadata()["userinfo_endpoint"]).status_code == 401
    assert signed_in_home(browser, provider), "the session that asked for the change survives"
