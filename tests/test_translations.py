"""Every Spanish string the code and templates show has its English translation in the catalog,
so an English reader never meets a Spanish sentence that nobody noticed was missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "portal/locale/en/LC_MESSAGES/messages.po"


def test_every_string_shown_has_an_english_translation(tmp_path):
    extracted = tmp_path / "messages.pot"
    subprocess.run(
        [
            str(Path(sys.executable).parent / "pybabel"),
            "-q",
            "extract",
            "-F",
            "babel.cfg",
            "-k",
            "_l",
            "-k",
            "lazy_gettext",
            "-o",
            str(extracted),
            "--no-location",
            "--ignore-dirs=.venv var tests bench build docs",
            ".",
        ],
        cwd=ROOT,
        check=True,
    )
    with extracted.open("rb") as source:
        wanted = [m.id for m in read_po(source) if m.id]
    with CATALOG.open("rb") as source:
        catalog = read_po(source)
    missing = [
        msgid
        for msgid in wanted
        if not (found := catalog.get(msgid))
        or not found.string
        or found.fuzzy
        or (isinstance(found.string, tuple) and not all(found.string))
    ]
    assert not missing, f"{len(missing)} strings without English: {missing[:10]}"
