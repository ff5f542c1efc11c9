"""The mailer keeps its SMTP connection between messages, and replaces one the server dropped
meanwhile, on a real loopback SMTP server."""

from __future__ import annotations

import email
from dataclasses import replace
from email.message import EmailMessage
from email.policy import default as default_policy
from types import SimpleNamespace

from aiosmtpd.controller import Controller

from mail.mailer import Mailer
from tests.fixtures.processes import free_port


class ConnectionCounter:
    """Counts the messages and the client connections (their source ports) they came on."""

    def __init__(self) -> None:
        self.peers: list[tuple] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.peers.append(session.peer)
        return "250 OK"


def send(mailer: Mailer, n: int) -> None:
    user = SimpleNamespace(display_name="Ana", username="ana")
    mailer.send(
        "ana@example.org",
        "user_confirmed",
        "es",
        {"user": user, "base_url": "https://acceso.test", "portal": "patient"},
        key=f"mailer-test/{n}",
    )


def test_messages_in_a_row_share_one_smtp_connection(settings):
    counter = ConnectionCounter()
    port = free_port()
    server = Controller(counter, hostname="127.0.0.1", port=port)
    server.start()
    try:
        mailer = Mailer(replace(settings, smtp_port=port))
        for n in range(3):
            send(mailer, n)
    finally:
        server.stop()

    assert len(counter.peers) == 3
    assert len(set(counter.peers)) == 1


def test_a_connection_the_server_dropped_is_replaced_and_the_message_still_goes_out(settings):
    counter = ConnectionCounter()
    port = free_port()
    server = Controller(counter, hostname="127.0.0.1", port=port)
    server.start()
    mailer = Mailer(replace(settings, smtp_port=port))
    send(mailer, 1)
    server.stop()  # closes the kept connection: the SMTP server restarted
    server = Controller(counter, hostname="127.0.0.1", port=port)
    server.start()
    try:
        send(mailer, 2)
        send(mailer, 3)
    finally:
        server.stop()

    assert len(counter.peers) == 3
    assert counter.peers[0] != counter.peers[1] == counter.peers[2]


class Keeper:
    """Keeps each message's bytes as they arrived."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.messages.append(envelope.content)
        return "250 OK"


def arrived(settings, to: str, mail_from: str, name: str) -> EmailMessage:
    keeper = Keeper()
    port = free_port()
    server = Controller(keeper, hostname="127.0.0.1", port=port, enable_SMTPUTF8=True)
    server.start()
    try:
        mailer = Mailer(replace(settings, smtp_port=port, mail_from=mail_from))
        user = SimpleNamespace(display_name=name, username="jose")
        context = {"user": user, "base_url": "https://acceso.test", "portal": "patient"}
        mailer.send(to, "user_confirmed", "es", context, key="mailer-test/accents")
    finally:
        server.stop()
    (raw,) = keeper.messages
    return email.message_from_bytes(raw, policy=default_policy)


def test_a_message_arrives_as_text_and_html_in_utf8_with_its_accents_intact(settings):
    message = arrived(settings, "jose@example.org", "Clínica Añil <no-reply@x.test>", "José Núñez")

    assert message["Subject"] == "Usuario confirmado"
    assert message["From"].addresses[0].display_name == "Clínica Añil"
    assert message["From"].addresses[0].addr_spec == "no-reply@x.test"
    assert message["To"] == "jose@example.org"
    assert message["X-Acceso-Key"] == "mailer-test/accents"
    assert message["Message-ID"].endswith("@acceso.localhost>")
    assert message.get_content_type() == "multipart/alternative"
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text.get_content_charset() == html.get_content_charset() == "utf-8"
    assert "Hola, José Núñez:" in text.get_content()
    assert "está confirmado" in text.get_content()
    assert "<p>Hola, José Núñez:</p>" in html.get_content()


def test_an_ascii_message_keeps_an_accented_sender_name_and_subject_words(settings):
    message = arrived(settings, "ana@example.org", "Acceso <no-reply@x.test>", "Ñandú Pérez")

    assert str(message["From"]) == "Acceso <no-reply@x.test>"
    assert message.is_multipart() and len(message.get_payload()) == 2
    assert "Hola, Ñandú Pérez:" in message.get_body(("plain",)).get_content()


def test_a_non_ascii_address_still_arrives_over_smtputf8(settings):
    message = arrived(settings, "josé@ejemplo.test", "Acceso <no-reply@x.test>", "José")

    assert message["To"] == "josé@ejemplo.test"
    assert "Hola, José:" in message.get_body(("plain",)).get_content()
