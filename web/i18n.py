"""Spanish first (the source strings are Spanish), English available; choice kept in a cookie."""

from __future__ import annotations

from flask import request

LANGUAGES = ("es", "en")
LANG_COOKIE = "acceso_lang"


def select_locale() -> str:
    choice = request.args.get("lang") or request.cookies.get(LANG_COOKIE)
    return choice if choice in LANGUAGES else "es"
