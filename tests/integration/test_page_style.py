"""The pages' one stylesheet and the gateway's "access denied" page, served by the app."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from auth_service.app import create_app
from auth_service.config import Settings
from auth_service.web import STYLESHEET_PATH


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """An in-process client of the app built by the factory, lifespan running."""
    async with AsyncTestClient(create_app(settings, configure_logs=False)) as c:
        yield c


async def test_stylesheet_is_cacheable_css_and_revalidates(
    client: AsyncTestClient[Litestar],
) -> None:
    """CSS with a day of caching and an ETag; a matching If-None-Match gets 304, no body."""
    r = await client.get(STYLESHEET_PATH)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/css")
    assert "max-age=86400" in r.headers["cache-control"]
    assert ":focus-visible" in r.text and "@media print" in r.text
    assert "url(" not in r.text and "@import" not in r.text  # nothing loaded from elsewhere
    again = await client.get(STYLESHEET_PATH, headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


async def test_denied_page_is_a_styled_403_quoting_the_request_id(
    client: AsyncTestClient[Litestar],
) -> None:
    """``/auth/denied`` answers 403 HTML naming the forwarded request id, with the CSP."""
    r = await client.get(
        "/auth/denied?rid=<script>", headers={"X-Request-ID": "gw-denied-1", "Accept": "text/html"}
    )
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("text/html")
    assert '<code id="request-id">gw-denied-1</code>' in r.text
    assert "<script" not in r.text
    assert f'<link rel="stylesheet" href="{STYLESHEET_PATH}">' in r.text
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "style-src 'self'" in csp
    assert "unsafe-inline" not in csp and "script-src" not in csp
    assert r.headers["cache-control"] == "no-store"


async def test_logout_confirm_page_links_the_stylesheet_and_labels_nothing_unlabelled(
    client: AsyncTestClient[Litestar],
) -> None:
    """The sign-out page uses the shared shell; it has no visible input without a label."""
    r = await client.get("/auth/logout/confirm")
    assert r.status_code == 200
    assert f'href="{STYLESHEET_PATH}"' in r.text
    visible = re.findall(r"<input(?![^>]*type=\"hidden\")[^>]*>", r.text)
    assert visible == []
    assert "style-src 'self'" in r.headers["content-security-policy"]


async def test_denied_route_keeps_problem_json_for_api_clients(
    client: AsyncTestClient[Litestar],
) -> None:
    """Without ``text/html`` in Accept, ``/auth/denied`` is the contract's problem+json 403."""
    r = await client.get("/auth/denied", headers={"Accept": "application/json"})
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["status"] == 403 and r.json()["request_id"] == r.headers["x-request-id"]
