"""Concurrent guesses each count: eight browsers post a wrong secret at the same moment, over real
HTTP to a threaded server on loopback, and the account locks at exactly the threshold, only the
threshold's worth of secrets are ever checked, the owner is told once, and nothing answers 500.
On SQLite and PostgreSQL alike (the counters are one atomic upsert each). The signed-in secret
checks (current password, factor removal) count and lock the same way, and the per-client
limit covers them."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pyotp
import pytest
import requests
from sqlalchemy import func, select
from werkzeug.serving import make_server

from portal import two_factor
from portal.codec import parse_keys
from portal.models import (
    AuditEvent,
    LoginThrottle,
    OutboxMessage,
    RateLimitCounter,
    SecondFactor,
    User,
    utcnow,
)
from portal.passwords import hash_password
from tests.fixtures.codec import TEST_CODEC_KEYS
from tests.fixtures.processes import free_port
from tests.fixtures.stack import submit
from tests.fixtures.staff import add_staff
from web import create_app

pytestmark = pytest.mark.dialects

PASSWORD = "Clave123segura"
BROWSERS = 8
THRESHOLD = 5
"""The patient portal's login_lockout_threshold and the staff lockout, both 5."""


@pytest.fixture
def site(settings, session_factory):
    """The web app alone on a threaded loopback server: no Temporal (the outbox holds notices)."""
    settings = replace(
        settings,
        temporal_address=f"127.0.0.1:{free_port()}",
        rate_limit_sign_in="1000/minute",
    )
    app = create_app({"SETTINGS": settings, "TESTING": True})
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", app
    server.shutdown()
    thread.join(10)
    app.extensions["acceso.temporal"].close()


RECOVERY_CODES: list[str] = []
"""The codes shown at the last `add_patient` enrolment (tests run one at a time)."""


def add_patient(session_factory, with_factor: bool) -> str | None:
    secret = pyotp.random_base32() if with_factor else None
    with session_factory() as session:
        user = User(
            portal="patient",
            username="ana.perez",
            email="ana@example.org",
            full_name="Ana Pérez",
            password_hash=hash_password(PASSWORD),
            status="active",
            role="patient",
            activated_at=utcnow(),
        )
        session.add(user)
        session.flush()
        if secret:
            RECOVERY_CODES[:] = two_factor.enrol(
                session, user, secret, 0, parse_keys(TEST_CODEC_KEYS)
            )
        session.commit()
    return secret


def token_on(page: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


def post_form(browser: requests.Session, url: str, data: dict) -> requests.Response:
    token = token_on(browser.get(url, timeout=30).text)
    return browser.post(url, data={"csrf_token": token, **data}, timeout=30, allow_redirects=False)


def all_at_once(prepare, fire, browsers: int = BROWSERS) -> list[requests.Response]:
    """Each browser gets ready in turn (`prepare` returns its state; a right password is an
    attempt too, so eight at once would lock), then all wait at one barrier and fire together,
    so the posts overlap on the server."""
    barrier = threading.Barrier(browsers, timeout=60)
    one_at_a_time = threading.Lock()

    def one(n: int) -> requests.Response:
        with one_at_a_time:
            state = prepare(n)
        barrier.wait()
        return fire(state, n)

    with ThreadPoolExecutor(max_workers=browsers) as pool:
        return list(pool.map(one, range(browsers)))


def logins_at_once(url: str, username, password) -> list[requests.Response]:
    """Eight browsers each open the login page, then post at once; `username` and `password`
    give each browser's (by its number)."""

    def prepare(_n):
        browser = requests.Session()
        return browser, token_on(browser.get(url, timeout=30).text)

    def fire(state, n):
        browser, token = state
        data = {"csrf_token": token, "username": username(n), "password": password(n)}
        return browser.post(url, data=data, timeout=30, allow_redirects=False)

    return all_at_once(prepare, fire)


def failures(session_factory, portal: str, key: str) -> LoginThrottle | None:
    with session_factory() as session:
        return session.get(LoginThrottle, (portal, key))


def lock_notices(session_factory) -> int:
    with session_factory() as session:
        return session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.summary == "notice: account_locked")
        )


def audited(session_factory, action: str) -> int:
    with session_factory() as session:
        return session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)
        )


def wrong_code(secret: str) -> str:
    """Six digits that are not the code of any step around now."""
    totp = pyotp.TOTP(secret)
    taken = {totp.now(), totp.at(utcnow().timestamp() - 30), totp.at(utcnow().timestamp() + 30)}
    return next(c for c in (f"{n:06d}" for n in range(1000)) if c not in taken)


def test_eight_concurrent_wrong_passwords_count_eight_and_lock_at_five(site, session_factory):
    base, _app = site
    add_patient(session_factory, with_factor=False)
    url = f"{base}/patient/login"

    answers = logins_at_once(url, lambda _n: "ana.perez", lambda n: f"wrong{n}")
    assert [a.status_code for a in answers] == [200] * BROWSERS
    assert all("Usuario o contraseña incorrectos" in a.text for a in answers)
    row = failures(session_factory, "patient", "ana.perez")
    assert row.failures == BROWSERS
    assert row.locked_at is not None
    assert lock_notices(session_factory) == 1
    assert audited(session_factory, "login.locked") == 1
    right = post_form(requests.Session(), url, {"username": "ana.perez", "password": PASSWORD})
    assert right.status_code == 200 and "Usuario o contraseña incorrectos" in right.text


def test_eight_concurrent_wrong_codes_at_the_applicant_code_step_lock_at_five(
    site, session_factory
):
    base, _app = site
    secret = add_patient(session_factory, with_factor=True)
    code_url = f"{base}/patient/login/code"

    def prepare(_n):
        browser = requests.Session()
        first = post_form(
            browser, f"{base}/patient/login", {"username": "ana.perez", "password": PASSWORD}
        )
        assert first.headers["Location"].endswith("/patient/login/code")
        return browser, token_on(browser.get(code_url, timeout=30).text)

    def fire(state, _n):
        browser, token = state
        data = {"csrf_token": token, "code": wrong_code(secret)}
        return browser.post(code_url, data=data, timeout=30, allow_redirects=False)

    answers = all_at_once(prepare, fire)
    assert [a.status_code for a in answers] == [200] * BROWSERS
    wrong = [a for a in answers if "El código no es correcto" in a.text]
    locked = [a for a in answers if "está bloqueado" in a.text]
    assert len(wrong) == THRESHOLD - 1, "only the threshold's worth of codes were checked"
    assert len(locked) == BROWSERS - THRESHOLD + 1
    row = failures(session_factory, "patient", "ana.perez")
    assert row.failures == BROWSERS and row.locked_at is not None
    assert lock_notices(session_factory) == 1


def test_eight_concurrent_wrong_codes_at_the_staff_code_step_lock_at_five(site, session_factory):
    base, _app = site
    secret = add_staff(session_factory, "rosa", PASSWORD, roles="reviewer")
    code_url = f"{base}/staff/login/code"

    def prepare(_n):
        browser = requests.Session()
        first = post_form(
            browser, f"{base}/staff/login", {"username": "rosa", "password": PASSWORD}
        )
        assert first.headers["Location"].endswith("/staff/login/code")
        return browser, token_on(browser.get(code_url, timeout=30).text)

    def fire(state, _n):
        browser, token = state
        data = {"csrf_token": token, "code": wrong_code(secret)}
        return browser.post(code_url, data=data, timeout=30, allow_redirects=False)

    answers = all_at_once(prepare, fire)
    assert [a.status_code for a in answers] == [200] * BROWSERS
    assert len([a for a in answers if "El código no es correcto" in a.text]) == THRESHOLD - 1
    assert len([a for a in answers if "está bloqueado" in a.text]) == BROWSERS - THRESHOLD + 1
    row = failures(session_factory, "staff", "rosa")
    assert row.failures == BROWSERS and row.locked_at is not None
    assert audited(session_factory, "staff.locked") == 1
    right = post_form(
        requests.Session(), f"{base}/staff/login", {"username": "rosa", "password": PASSWORD}
    )
    assert right.status_code == 200, "a locked staff account's right password opens nothing"


def test_eight_concurrent_wrong_factor_removal_codes_lock_and_end_the_session(
    site, session_factory
):
    base, _app = site
    secret = add_patient(session_factory, with_factor=True)
    security_url = f"{base}/patient/account/security"
    signed_in = requests.Session()
    post_form(signed_in, f"{base}/patient/login", {"username": "ana.perez", "password": PASSWORD})
    post_form(signed_in, f"{base}/patient/login/code", {"code": pyotp.TOTP(secret).now()})
    token = token_on(signed_in.get(security_url, timeout=30).text)

    def prepare(_n):
        browser = requests.Session()
        browser.cookies.update(signed_in.cookies)
        return browser

    def fire(browser, _n):
        data = {"csrf_token": token, "code": wrong_code(secret)}
        return browser.post(security_url, data=data, timeout=30, allow_redirects=False)

    answers = all_at_once(prepare, fire)
    assert all(a.status_code in (200, 302) for a in answers), [a.status_code for a in answers]
    checked = [a for a in answers if a.status_code == 200]
    assert all("El código no es correcto" in a.text for a in checked)
    assert len(checked) == THRESHOLD - 1, "only the threshold's worth of codes were checked"
    row = failures(session_factory, "patient", "ana.perez")
    assert THRESHOLD <= row.failures <= BROWSERS, "posts after the lock may meet no session"
    assert row.locked_at is not None
    assert lock_notices(session_factory) == 1
    with session_factory() as session:
        assert session.scalar(select(SecondFactor).where(SecondFactor.user_id.is_not(None)))
    after = signed_in.get(security_url, timeout=30, allow_redirects=False)
    assert after.status_code == 302 and "/patient/login" in after.headers["Location"]


def signed_in_patient(app, session_factory, with_factor: bool = False):
    """A browser (the Flask test client) signed in to the patient portal."""
    secret = add_patient(session_factory, with_factor=with_factor)
    client = app.test_client()
    first = submit(client, "/patient/login", {"username": "ana.perez", "password": PASSWORD})
    if secret:
        first = submit(client, "/patient/login/code", {"code": pyotp.TOTP(secret).now()})
    assert first.status_code == 302
    return client, secret


def test_wrong_current_passwords_lock_the_account_like_the_sign_in(site, session_factory):
    _base, app = site
    client, _secret = signed_in_patient(app, session_factory)
    form = {"new_password": "Otra-clave-segura-9", "new_password_confirm": "Otra-clave-segura-9"}
    for n in range(THRESHOLD - 1):
        answer = submit(client, "/patient/account/password", {"current_password": f"x{n}", **form})
        assert "La contraseña actual no es correcta" in answer.get_data(as_text=True)
    last = submit(client, "/patient/account/password", {"current_password": "x9", **form})
    assert last.status_code == 302 and last.headers["Location"].endswith("/patient/login")
    assert "está bloqueado" in client.get("/patient/login").get_data(as_text=True)
    assert client.get("/patient/account/password").status_code == 302, "the session ended"
    assert failures(session_factory, "patient", "ana.perez").locked_at is not None
    assert lock_notices(session_factory) == 1
    again = app.test_client()
    refused = submit(again, "/patient/login", {"username": "ana.perez", "password": PASSWORD})
    assert "Usuario o contraseña incorrectos" in refused.get_data(as_text=True)


def test_a_right_current_password_does_not_count_toward_the_lock(site, session_factory):
    _base, app = site
    client, _secret = signed_in_patient(app, session_factory)
    form = {"new_password": "Otra-clave-segura-9", "new_password_confirm": "Otra-clave-segura-9"}
    submit(client, "/patient/account/password", {"current_password": "wrong", **form})
    done = submit(client, "/patient/account/password", {"current_password": PASSWORD, **form})
    assert done.status_code == 302
    assert failures(session_factory, "patient", "ana.perez").failures == 1


def test_the_per_client_limit_covers_the_account_security_pages(settings, session_factory):
    settings = replace(
        settings, temporal_address=f"127.0.0.1:{free_port()}", rate_limit_sign_in="3/minute"
    )
    app = create_app({"SETTINGS": settings, "TESTING": True})
    client, secret = signed_in_patient(app, session_factory, with_factor=True)
    answer = submit(client, "/patient/account/security", {"code": wrong_code(secret)})
    assert answer.status_code == 200, "the password and code steps spent two of three"
    assert submit(client, "/patient/account/security", {"code": "x"}).status_code == 429
    password = submit(client, "/patient/account/password", {"current_password": "x"})
    assert password.status_code == 429
    email = submit(client, "/patient/account/email", {"current_password": "x"})
    assert email.status_code == 429
    app.extensions["acceso.temporal"].close()


@pytest.mark.parametrize("kind", ["authenticator", "recovery"])
def test_one_right_code_sent_from_four_browsers_at_once_signs_in_only_one(
    site, session_factory, kind
):
    base, _app = site
    secret = add_patient(session_factory, with_factor=True)
    code = pyotp.TOTP(secret).now() if kind == "authenticator" else RECOVERY_CODES[0]
    code_url = f"{base}/patient/login/code"

    def prepare(_n):
        browser = requests.Session()
        post_form(browser, f"{base}/patient/login", {"username": "ana.perez", "password": PASSWORD})
        return browser, token_on(browser.get(code_url, timeout=30).text)

    def fire(state, _n):
        browser, token = state
        data = {"csrf_token": token, "code": code}
        return browser.post(code_url, data=data, timeout=30, allow_redirects=False)

    answers = all_at_once(prepare, fire, browsers=4)
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 302]
    assert all("ya fue usado" in a.text for a in answers if a.status_code == 200)


def client_count(session_factory) -> int:
    """The loopback client's sign-in count in the rate limit's table."""
    with session_factory() as session:
        return session.scalar(
            select(func.sum(RateLimitCounter.count)).where(
                RateLimitCounter.key.like("%/sign_in/127.0.0.1/%")
            )
        )


def test_eight_concurrent_wrong_passwords_count_eight_for_the_client_too(site, session_factory):
    base, _app = site
    add_patient(session_factory, with_factor=False)
    url = f"{base}/patient/login"

    answers = logins_at_once(url, lambda n: f"nadie{n}", lambda _n: "wrong")
    assert [a.status_code for a in answers] == [200] * BROWSERS
    assert client_count(session_factory) == BROWSERS
    assert all(failures(session_factory, "patient", f"nadie{n}").failures == 1 for n in range(8))


def test_eight_concurrent_posts_past_the_clients_limit_check_only_the_limits_worth(
    settings, session_factory
):
    settings = replace(
        settings, temporal_address=f"127.0.0.1:{free_port()}", rate_limit_sign_in="5/minute"
    )
    app = create_app({"SETTINGS": settings, "TESTING": True})
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        add_patient(session_factory, with_factor=False)
        url = f"http://127.0.0.1:{server.server_port}/patient/login"

        answers = logins_at_once(url, lambda _n: "ana.perez", lambda n: f"wrong{n}")
        codes = sorted(a.status_code for a in answers)
        assert codes == [200] * 5 + [429] * 3
        assert client_count(session_factory) == BROWSERS
        assert failures(session_factory, "patient", "ana.perez").failures == 5
    finally:
        server.shutdown()
        app.extensions["acceso.temporal"].close()
