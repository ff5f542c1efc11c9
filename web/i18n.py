"""Spanish first (the source strings are Spanish), English available; choice kept in a cookie."""

from __future__ import annotations

from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import request

LANGUAGES = ("es", "en")
LANG_COOKIE = "acceso_lang"
TRANSLATIONS = Path(__file__).resolve().parent / "translations"


def select_locale() -> str:
    choice = request.args.get("lang") or request.cookies.get(LANG_COOKIE)
    return choice if choice in LANGUAGES else "es"


def compile_catalogs() -> None:
    """Compile any .po newer than its .mo, so a fresh clone runs without a build step."""
    for po_path in TRANSLATIONS.glob("*/LC_MESSAGES/messages.po"):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        with open(po_path, "rb") as po_file:
            catalog = read_po(po_file)
        with open(mo_path, "wb") as mo_file:
            write_mo(mo_file, catalog)
