"""Renders the e-mail templates (text + HTML pair, in the recipient's language) and sends them."""

from __future__ import annotations

import smtplib
import ssl
import unicodedata
from email.message import EmailMessage
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
    """One SMTP connection per message: activities run in threads and retry on failure."""

    def __init__(self, settings: Settings):
        self.settings = settings

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
        message = EmailMessage()
        message["Subject"] = one_line(subject)
        message["From"] = self.settings.mail_from
        message["To"] = checked_address(to)
        message["Message-ID"] = make_msgid(idstring=key.replace("/", ".")[:60], domain=HELO_NAME)
        message["X-Acceso-Key"] = key
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        try:
            self._deliver(message)
        except Exception:
            count_email_failure(template)
            raise

    def _deliver(self, message: EmailMessage) -> None:
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
        with smtp:
            if s.smtp_tls == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if s.smtp_user:
                smtp.login(s.smtp_user, s.smtp_password)
            smtp.send_message(message)
