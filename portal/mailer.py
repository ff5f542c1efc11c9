"""Renders the e-mail templates (text + HTML pair, in the recipient's language) and sends them."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid
from functools import lru_cache
from pathlib import Path

from babel.support import Translations
from jinja2 import Environment, FileSystemLoader, select_autoescape

from portal.config import Text
from portal.settings import Settings
from portal.translations import TRANSLATIONS_DIR, compile_catalogs

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
TEMPLATES_DIR = WEB_DIR / "templates" / "email"


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
        message["Subject"] = subject
        message["From"] = self.settings.mail_from
        message["To"] = to
        message["Message-ID"] = make_msgid(idstring=key.replace("/", ".")[:60], domain=HELO_NAME)
        message["X-Acceso-Key"] = key
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        self._deliver(message)

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
