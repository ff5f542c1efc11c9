"""The dev SMTP capture: whatever the app sends ends up as an .eml file the dev inbox can read."""

from __future__ import annotations

import email
import signal
import smtplib
import socket
import sys
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest

from tests.fixtures.processes import free_port
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.system


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_message_sent_with_smtplib_is_stored_as_an_eml_file(tmp_path, spawn):
    port = free_port()
    mail_dir = tmp_path / "mail"
    process, output = spawn(
        [sys.executable, "-m", "cli.mailcatcher", "--port", str(port), "--dir", str(mail_dir)]
    )
    wait_until(lambda: accepts_connections(port), 30, "the SMTP capture to listen")

    message = EmailMessage()
    message["From"] = "Acceso <no-reply@acceso.localhost>"
    message["To"] = "ana@example.com"
    message["Subject"] = "Confirme su correo"
    message.set_content("Abra https://acceso.test/confirm/abc para confirmar.")
    message.add_alternative(
        "<p><a href='https://acceso.test/confirm/abc'>Confirmar</a></p>", subtype="html"
    )
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.send_message(message)

    files = list(mail_dir.glob("*.eml"))
    assert len(files) == 1, "the file is written before the server answers 250"
    stored = email.message_from_bytes(files[0].read_bytes(), policy=default_policy)
    assert stored["Subject"] == "Confirme su correo"
    assert stored["X-Original-To"] == "ana@example.com"
    assert "https://acceso.test/confirm/abc" in stored.get_body(("plain",)).get_content()
    assert list(mail_dir.glob(".*")) == []

    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0


def test_a_taken_port_is_reported_and_the_capture_exits_non_zero(tmp_path, spawn):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process, output = spawn(
            [sys.executable, "-m", "cli.mailcatcher", "--port", str(port), "--dir", str(tmp_path)]
        )
        assert process.wait(30) == 1
    assert f"cannot listen on 127.0.0.1:{port}" in output.wait_for("cannot listen.*", 5).group(0)
