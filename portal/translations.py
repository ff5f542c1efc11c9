"""The gettext catalogs shared by web pages and e-mails (Spanish source strings, English catalog),
kept in portal/locale/ so a worker renders e-mails without the web folder."""

from __future__ import annotations

import os
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

TRANSLATIONS_DIR = Path(__file__).resolve().parent / "locale"


def compile_catalogs() -> None:
    """Compile any .po newer than its .mo, so a fresh clone runs without a build step."""
    for po_path in TRANSLATIONS_DIR.glob("*/LC_MESSAGES/messages.po"):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        with open(po_path, "rb") as po_file:
            catalog = read_po(po_file)
        temporary = mo_path.with_suffix(f".mo.{os.getpid()}")
        with open(temporary, "wb") as mo_file:
            write_mo(mo_file, catalog)
        temporary.replace(mo_path)
