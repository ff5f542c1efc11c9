"""Screenshots of each portal's main pages at 1280 and 375 px, for a person to review.

`make screenshots` sets ACCESO_SCREENSHOTS to a folder (var/screenshots, not in git) and takes
them all; in the ordinary suite this takes one page, so the machinery cannot silently break."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from tests.fixtures.browser import chromium, serving
from tests.fixtures.showcase import (
    PASSWORD,
    STAFF_PASSWORD,
    second_step_in_browser,
    seed_showcase,
)
from web import create_app

pytestmark = pytest.mark.browser

WIDTHS = (1280, 375)
ANONYMOUS = [
    "/",
    "/patient/login",
    "/patient/register",
    "/patient/recover/password",
    "/patient/register/done/R00000001",
    "/member/login",
    "/member/register",
    "/member/faq",
    "/provider/login",
    "/provider/register",
    "/provider/recover/username",
]
SIGNED_IN = {
    ("/patient/login", "ana.perez", PASSWORD): ["/patient/", "/patient/account/password"],
    ("/provider/login", "dr.ruiz", PASSWORD): ["/provider/", "/provider/account/employees"],
    ("/staff/login", "marta.admin", STAFF_PASSWORD): [
        "/staff/",
        "/staff/reviews",
        "/staff/reviews/PSHOW0001",
        "/staff/cases",
        "/staff/cases/1",
        "/staff/audit",
    ],
}


def png_width(path: Path) -> int:
    return struct.unpack(">I", path.read_bytes()[16:20])[0]


def shoot(page, base: str, path: str, folder: Path, lang: str) -> list[Path]:
    taken = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"{base}{path}?lang={lang}")
        name = path.strip("/").replace("/", "_") or "index"
        target = folder / f"{name}.{lang}.{width}.png"
        page.screenshot(path=str(target), full_page=True)
        taken.append(target)
    return taken


def test_screenshots_of_the_main_pages_at_desktop_and_phone_widths(
    settings, session_factory, tmp_path
):
    wanted = os.environ.get("ACCESO_SCREENSHOTS")
    folder = Path(wanted) if wanted else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    seed_showcase(session_factory)
    app = create_app({"SETTINGS": settings, "TESTING": True})
    taken: list[Path] = []
    with serving(app) as base, chromium() as browser:
        languages = ("es", "en") if wanted else ("es",)
        for lang in languages:
            page = browser.new_page()
            for path in ANONYMOUS if wanted else ANONYMOUS[1:2]:
                taken += shoot(page, base, path, folder, lang)
            page.close()
            if not wanted:
                continue
            for (login, username, password), paths in SIGNED_IN.items():
                page = browser.new_page()
                page.goto(f"{base}{login}")
                page.fill("#username", username)
                page.fill("#password", password)
                page.click("form button[type=submit]")
                page.wait_for_load_state()
                second_step_in_browser(page, username)
                for path in paths:
                    taken += shoot(page, base, path, folder, lang)
                page.close()
    app.extensions["acceso.temporal"].close()

    assert taken
    for path in taken:
        assert path.stat().st_size > 1000, path
        assert png_width(path) == int(path.stem.rsplit(".", 1)[1]), path
