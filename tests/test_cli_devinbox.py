"""The dev inbox pages: captured mail listed newest first, each readable without a real mailbox."""

from __future__ import annotations

import html
import re
from email.message import EmailMessage

import pytest

from cli.mailcatcher import MailDirHandler
from portal.settings import Settings
from tests.fixtures.codec import TEST_CODEC_KEYS
from web import create_app


def capture(mail_dir, to: str, subject: str, text: str, html_part: str | None = None) -> str:
    message = EmailMessage()
    message["From"] = "Acceso <no-reply@acceso.localhost>"
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = "Sat, 21 Nov 2026 10:00:00 +0000"
    message.set_content(text)
    if html_part:
        message.add_alternative(html_part, subtype="html")
    MailDirHandler(mail_dir).store([to], message.as_bytes())
    return sorted(mail_dir.glob("*.eml"))[-1].name


@pytest.fixture
def inbox(tmp_path, database_url):
    settings = Settings(data_dir=tmp_path, database_url=database_url, dev_mode=True)
    app = create_app({"SETTINGS": settings, "TESTING": True, "WTF_CSRF_ENABLED": False})
    yield app.test_client(), settings.mail_dir
    bridge = app.extensions["acceso.temporal"]
    if hasattr(bridge, "close"):
        bridge.close()


def test_inbox_lists_captured_mail_newest_first_with_recipient_and_subject(inbox):
    client, mail_dir = inbox
    capture(mail_dir, "ana@example.com", "Primero", "uno")
    capture(mail_dir, "luis@example.com", "Segundo", "dos")

    page = client.get("/dev/inbox/").get_data(as_text=True)

    assert page.index("Segundo") < page.index("Primero")
    assert "luis@example.com" in page and "ana@example.com" in page
    assert "2026-11-21 10:00:00" in page


def test_message_page_links_the_text_and_sandboxes_the_html(inbox):
    client, mail_dir = inbox
    name = capture(
        mail_dir,
        "ana@example.com",
        "Confirme su correo",
        "Abra https://acceso.test/patient/confirm/abc123 para confirmar.",
        '<p>Hola <script>alert("x")</script><a href="https://acceso.test/x">enlace</a></p>',
    )

    response = client.get(f"/dev/inbox/{name}")

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert (
        '<a href="https://acceso.test/patient/confirm/abc123">'
        "https://acceso.test/patient/confirm/abc123</a>" in page
    )
    iframe = re.search(r"<iframe[^>]*>", page).group(0)
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in iframe
    assert "allow-scripts" not in iframe
    srcdoc = re.search(r'srcdoc="([^"]*)"', iframe).group(1)
    assert "<script>" not in page.replace(html.escape("<script>"), "")
    assert '<script>alert("x")</script>' in html.unescape(srcdoc)


def test_unknown_or_path_like_names_are_not_found(inbox):
    client, mail_dir = inbox
    (mail_dir.parent / "secret.eml").write_text("Subject: no\n\nsecret")

    assert client.get("/dev/inbox/nothing.eml").status_code == 404
    assert client.get("/dev/inbox/..%2Fsecret.eml").status_code == 404
    assert client.get("/dev/inbox/.hidden.eml").status_code == 404


def test_inbox_does_not_exist_outside_dev_mode(tmp_path, database_url):
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        dev_mode=False,
        secret_key="k" * 32,
        codec_keys=TEST_CODEC_KEYS,
    )
    app = create_app({"SETTINGS": settings, "TESTING": True})

    assert app.test_client().get("/dev/inbox/").status_code == 404
