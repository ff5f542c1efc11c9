"""The mailer keeps its SMTP connection between messages, and replaces one the server dropped
meanwhile, on a real loopback SMTP server."""

from __future__ import annotations

from dataclasses import replace
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
