"""Every page the service renders, screenshotted by headless Chromium (Debian ``chromium``).

The pages come from the app built by `create_app` (MFA setup with its QR code,
recovery codes, the MFA prompt with an error, sign-out, the sign-in error and
the gateway's "access denied" page). Their HTML is saved next to the served
stylesheet and rendered with ``chromium --headless --screenshot``; each PNG
must not be blank (pixel variance), must show the stylesheet's background (the
CSS was applied), and the key text must be in the HTML.

``UPDATE_SCREENSHOTS=1`` also copies the PNGs to ``docs/screenshots/`` (the
README's "Pages" section shows them).
"""

from __future__ import annotations

import html
import os
import re
import shutil
import statistics
import subprocess
from collections.abc import Callable
from pathlib import Path

from auth_service.web import STYLESHEET_PATH
from tests.integration.mfa.conftest import MfaApp, User
from tests.integration.mfa.qr import png_to_grey

DOCS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
BACKGROUND_RED = 0xF3  # red channel of the page background (--bg: #f3f5f8)


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None
    return html.unescape(found[1])


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "chromium missing: apt-get install -y chromium (deploy/system-packages.txt)"
    return exe


def _screenshot(exe: str, page: Path, png: Path, profile: Path) -> None:
    subprocess.run(
        [
            exe,
            "--headless",
            "--no-sandbox",  # CI containers run as root
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-extensions",
            f"--user-data-dir={profile}",
            "--window-size=720,820",
            f"--screenshot={png}",
            page.as_uri(),
        ],
        capture_output=True,
        check=True,
        timeout=60,
    )


async def test_every_page_renders_styled_in_chromium(
    svc: MfaApp, make_user: Callable[..., User], tmp_path: Path
) -> None:
    """Six pages, each non-blank with the stylesheet applied and its key text present."""
    c, user = svc.client, make_user()
    headers = {**user.headers(), **BROWSER}
    pages: dict[str, tuple[str, list[str]]] = {}

    setup = await c.get("/auth/mfa/setup", headers=headers)
    assert setup.status_code == 200, setup.text
    pages["mfa-setup"] = (setup.text, ["<svg", 'id="manual-key"', "Confirm"])
    key = re.search(r'id="manual-key">([^<]+)<', setup.text)
    assert key is not None
    user.secret = key[1].replace(" ", "")

    codes = await c.post(
        "/auth/mfa/setup",
        data={"csrf_token": _csrf(setup.text), "code": user.code(svc.clock)},
        headers=headers,
    )
    assert codes.status_code == 200, codes.text
    assert len(re.findall(r"<li><code>[^<]+</code></li>", codes.text)) == 10
    pages["recovery-codes"] = (codes.text, ['id="recovery-codes"', "Print this page"])

    prompt = await c.get("/auth/mfa", headers=headers)
    wrong = await c.post(
        "/auth/mfa",
        data={"csrf_token": _csrf(prompt.text), "code": "000000", "rd": "/"},
        headers=headers,
    )
    assert wrong.status_code == 400, wrong.text
    pages["mfa-error"] = (wrong.text, ['role="alert"', "That code is not valid.", "Verify"])

    logout = await c.get("/auth/logout/confirm", headers=BROWSER)
    assert logout.status_code == 200
    pages["sign-out"] = (logout.text, ["Sign out", 'type="submit"'])

    failed = await c.get(
        "/auth/callback",
        params={"code": "x", "state": "bogus"},
        headers={**BROWSER, "X-Request-ID": "rid-screenshot-1"},
    )
    assert failed.status_code == 400, failed.text
    pages["sign-in-error"] = (failed.text, ["Sign-in failed", "rid-screenshot-1"])

    denied = await c.get("/auth/denied", headers={**BROWSER, "X-Request-ID": "rid-screenshot-2"})
    assert denied.status_code == 403
    pages["access-denied"] = (denied.text, ["Access denied", "rid-screenshot-2"])

    signed_out = await c.get("/auth/signed-out", headers=BROWSER)
    assert signed_out.status_code == 200
    pages["signed-out"] = (signed_out.text, ["You are signed out", "Sign in again"])

    css = await c.get(STYLESHEET_PATH)
    assert css.status_code == 200
    (tmp_path / "style.css").write_text(css.text)

    exe, shots = _chromium(), {}
    for name, (text, markers) in pages.items():
        for marker in markers:
            assert marker in text, (name, marker)
        assert f'href="{STYLESHEET_PATH}"' in text, name
        assert "<script" not in text.lower(), name
        page = tmp_path / f"{name}.html"
        page.write_text(text.replace(f'href="{STYLESHEET_PATH}"', 'href="style.css"'))
        png = tmp_path / f"{name}.png"
        _screenshot(exe, page, png, tmp_path / "profile")
        grey, width, height = png_to_grey(png.read_bytes())
        assert (width, height) == (720, 820), (name, width, height)
        assert statistics.pstdev(grey) > 10, f"{name}: the screenshot is blank"
        assert abs(grey[0] - BACKGROUND_RED) <= 3, f"{name}: the stylesheet was not applied"
        shots[name] = png

    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        for name, png in shots.items():
            shutil.copyfile(png, DOCS / f"{name}.png")
