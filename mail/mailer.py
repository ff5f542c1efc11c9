"""Renders the e-mail templates (text + HTML pair, in the recipient's language) and sends them."""

from __future__ import annotations

import random
import smtplib
import ssl
import sys
import threading
import time
import unicodedata
from email import charset as email_charset
from email.header import Header
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import make_msgid
from functools import lru_cache
from pathlib import Path

from babel.support import Translations
from jinja2 import Environment, FileSystemLoader, select_autoescape

from portal.config import Text
from portal.metrics import count_email_failure
from portal.settings import Settings
from portal.translations import TRANSLATIONS_DIR, compile_catalogs

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


HELO_NAME = "acceso.localhost"
"""Named once for EHLO and Message-IDs: otherwise each message asks DNS for this host's name."""

UTF8_QP = email_charset.Charset("utf-8")
UTF8_QP.header_encoding = email_charset.QP
UTF8_QP.body_encoding = email_charset.QP
"""Quoted-printable UTF-8 for a part's body and an accented subject, as the default policy
chooses for these messages, named here so the global charset registry is left alone."""

IDLE_SECONDS = 30.0
"""A kept SMTP connection idle longer than this is closed, not reused: servers drop idle
clients (Postfix after 300 s), and a dropped one costs a failed command before the new one."""


def _dropped(error: Exception) -> bool:
    """How a kept connection the server closed meanwhile fails: disconnected, reset, or the
    "421 closing" a server sends before it hangs up (not a refusal of the message)."""
    if isinstance(error, (smtplib.SMTPServerDisconnected, ConnectionError)):
        return True
    return isinstance(error, smtplib.SMTPResponseException) and error.smtp_code == 421


@lru_cache(maxsize=8)
def _environment(locale: str) -> Environment:
    compile_catalogs()
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(
        Translations.load(str(TRANSLATIONS_DIR), [locale]), newstyle=True
    )
    return env


def one_line(value: str) -> str:
    """A header value as one line of visible text: a line break typed anywhere upstream (an
    organisation's name in a subject, say) can never start a header of its own."""
    visible = "".join(
        " " if unicodedata.category(character) in ("Cc", "Cf", "Zl", "Zp") else character
        for character in value
    )
    return " ".join(visible.split())


def checked_address(address: str) -> str:
    if address != one_line(address) or "," in address:
        raise ValueError("refusing a recipient address with control characters or a list")
    return address


class Mailer:
    """Keeps its SMTP connections open between messages, one per thread sending at that
    moment (activities run in threads): connecting, EHLO, STARTTLS, AUTH and QUIT cost more
    than the message itself. A kept connection the server closed meanwhile is replaced once;
    anything else fails the send, and the activity's retry sends again."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._idle: list[tuple[smtplib.SMTP, float]] = []
        self._lock = threading.Lock()

    def render(self, template: str, locale: str, context: dict) -> tuple[str, str, str]:
        locale = locale if locale in ("es", "en") else "es"
        env = _environment(locale)
        # Configured texts (portal names, labels) in the recipient's language.
        context = {k: v.get(locale) if isinstance(v, Text) else v for k, v in context.items()}
        text_template = env.get_template(f"{template}.txt")
        subject = str(text_template.make_module(context).subject).strip()
        text = text_template.render(context)
        html = env.get_template(f"{template}.html").render(context)
        return subject, text, html

    def send(self, to: str, template: str, locale: str, context: dict, key: str) -> None:
        subject, text, html = self.render(template, locale, context)
        headers = {
            "Subject": one_line(subject),
            "From": self.settings.mail_from,
            "To": checked_address(to),
            "Message-ID": make_msgid(idstring=key.replace("/", ".")[:60], domain=HELO_NAME),
            "X-Acceso-Key": key,
        }
        if headers["From"].isascii() and headers["To"].isascii():
            message = _plain_message(headers, text, html)
        else:
            message = _international_message(headers, text, html)
        try:
            self._deliver(message)
        except Exception:
            count_email_failure(template)
            raise

    def _deliver(self, message: Message) -> None:
        smtp, kept = self._take()
        try:
            try:
                smtp.send_message(message)
            except Exception as error:
                if not kept or not _dropped(error):
                    raise
                smtp.close()
                smtp = self._connect()
                smtp.send_message(message)
        except BaseException:
            _close(smtp)
            raise
        with self._lock:
            self._idle.append((smtp, time.monotonic()))

    def _take(self) -> tuple[smtplib.SMTP, bool]:
        """The most recently used kept connection, or a new one (False: not kept)."""
        stale = []
        found = None
        with self._lock:
            while self._idle:
                smtp, since = self._idle.pop()
                if time.monotonic() - since < IDLE_SECONDS:
                    found = smtp
                    break
                stale.append(smtp)
        for smtp in stale:
            # No QUIT: a server that dropped it silently would hold this send for the timeout.
            smtp.close()
        if found is not None:
            return found, True
        return self._connect(), False

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.smtp_tls == "ssl":
            smtp = smtplib.SMTP_SSL(
                s.smtp_host,
                s.smtp_port,
                local_hostname=HELO_NAME,
                timeout=10,
                context=ssl.create_default_context(),
            )
        else:
            smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, local_hostname=HELO_NAME, timeout=10)
        try:
            if s.smtp_tls == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if s.smtp_user:
                smtp.login(s.smtp_user, s.smtp_password)
        except BaseException:
            _close(smtp)
            raise
        return smtp


def _plain_message(headers: dict[str, str], text: str, html: str) -> Message:
    """The text + HTML pair built with `email.mime` (the compat32 policy): a quarter of the CPU
    of the default policy's header registry, for the same headers and quoted-printable UTF-8
    parts. Only for ASCII addresses: SMTPUTF8 needs the default policy."""
    message = MIMEMultipart("alternative")
    del message["Content-Type"], message["MIME-Version"]
    for name, value in headers.items():
        message[name] = value if value.isascii() else Header(value, UTF8_QP)
    message["MIME-Version"] = "1.0"
    message["Content-Type"] = f'multipart/alternative; boundary="{_boundary()}"'
    for body, subtype in ((text, "plain"), (html, "html")):
        part = MIMEText(body if body.endswith("\n") else body + "\n", subtype, UTF8_QP)
        del part["MIME-Version"]
        message.attach(part)
    return message


def _boundary() -> str:
    """A boundary of the standard library's form, chosen here: the generator would otherwise
    compile a regular expression per message to check it against the parts, and a boundary
    with "=" in it can never occur in quoted-printable parts (which write "=" as "=3D")."""
    return f"{'=' * 15}{random.randrange(sys.maxsize):019d}=="


def _international_message(headers: dict[str, str], text: str, html: str) -> EmailMessage:
    """The same message with the default policy, which encodes a non-ASCII display name in
    From and sends a non-ASCII address with SMTPUTF8."""
    message = EmailMessage()
    for name, value in headers.items():
        message[name] = value
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def _close(smtp: smtplib.SMTP) -> None:
    """QUIT if the server still listens; the socket is closed either way."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()
