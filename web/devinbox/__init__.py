"""The dev inbox: mail captured by `acceso dev` shown in the browser, so no real mailbox is needed."""

from __future__ import annotations

import email
import re
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import parsedate_to_datetime
from pathlib import Path

from flask import Blueprint, abort, current_app, render_template
from markupsafe import Markup, escape

from web.security import allow_inline_styles

bp = Blueprint("devinbox", __name__, url_prefix="/dev/inbox")

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.eml$")
LINK_RE = re.compile(r"https?://[^\s<>\"']+")


@dataclass(frozen=True)
class Summary:
    name: str
    to: str
    subject: str
    sent: datetime | None


@bp.before_request
def dev_mode_only():
    if not current_app.config["SETTINGS"].dev_mode:
        abort(404)


def mail_dir() -> Path:
    return Path(current_app.config["SETTINGS"].mail_dir)


def read_message(path: Path, headers_only: bool = False) -> EmailMessage:
    with open(path, "rb") as handle:
        if headers_only:
            return email.parser.BytesHeaderParser(policy=default_policy).parse(handle)
        return email.message_from_binary_file(handle, policy=default_policy)


def sent_at(message: EmailMessage) -> datetime | None:
    try:
        return parsedate_to_datetime(str(message["Date"])) if message["Date"] else None
    except (TypeError, ValueError):
        return None


def recipients(message: EmailMessage) -> str:
    return str(message["To"] or message["X-Original-To"] or "")


def linkify(text: str) -> Markup:
    """Escaped text whose URLs are links, so a confirmation link is one click away."""
    parts: list[Markup] = []
    position = 0
    for match in LINK_RE.finditer(text):
        url = match.group(0).rstrip(".,;:)")
        parts.append(escape(text[position : match.start()]))
        parts.append(Markup('<a href="{0}">{0}</a>').format(url))
        position = match.start() + len(url)
    parts.append(escape(text[position:]))
    return Markup("").join(parts)


def part_content(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    if part is None:
        return None
    try:
        return part.get_content()
    except (LookupError, KeyError):
        return part.get_payload(decode=True).decode("utf-8", errors="replace")


@bp.get("/")
def index():
    directory = mail_dir()
    paths = sorted(directory.glob("*.eml"), reverse=True) if directory.is_dir() else []
    messages = []
    for path in paths:
        message = read_message(path, headers_only=True)
        messages.append(
            Summary(path.name, recipients(message), str(message["Subject"] or ""), sent_at(message))
        )
    return render_template("devinbox/index.html", messages=messages, directory=directory)


@bp.get("/<name>")
def message(name: str):
    if not NAME_RE.match(name):
        abort(404)
    path = mail_dir() / name
    if not path.is_file():
        abort(404)
    parsed = read_message(path)
    text = part_content(parsed, "plain")
    html = part_content(parsed, "html")
    if html is not None:
        allow_inline_styles()
    return render_template(
        "devinbox/message.html",
        name=name,
        to=recipients(parsed),
        sender=str(parsed["From"] or ""),
        subject=str(parsed["Subject"] or ""),
        sent=sent_at(parsed),
        text=linkify(text) if text is not None else None,
        html=html,
        raw=path.read_text(encoding="utf-8", errors="replace"),
    )
