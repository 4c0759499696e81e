"""Request ids, problem+json errors, JSON logs, trace continuation and secret redaction."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest
from litestar import Litestar, get
from litestar.testing import AsyncTestClient

from auth_service.app import create_app
from auth_service.config import Settings
from auth_service.observability.logging import configure_logging

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def log_buffer() -> io.StringIO:
    """Captured log output of the app under test."""
    buf = io.StringIO()
    configure_logging(fmt="json", level="info", stream=buf, cache=False)
    return buf


@pytest.fixture
async def app(settings: Settings, log_buffer: io.StringIO) -> Litestar:
    """The app with a route that fails, for 500 tests."""
    application = create_app(settings, configure_logs=False)

    @get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaboom with secret-ish detail")

    application.register(boom)
    return application


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """An in-process client with the lifespan running."""
    async with AsyncTestClient(app) as c:
        yield c


def log_lines(buf: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.startswith("{")]


async def test_valid_request_id_is_echoed(client: AsyncTestClient[Litestar]) -> None:
    """A well-formed X-Request-ID comes back unchanged."""
    r = await client.get("/health/live", headers={"X-Request-ID": "abc.DEF_1:2-3"})
    assert r.headers["x-request-id"] == "abc.DEF_1:2-3"


@pytest.mark.parametrize(
    "bad",
    [b"a\r\nSet-Cookie: x=1", b"x" * 129, "caf\u00e9".encode(), b"", b"has space", b"a\nb"],
)
async def test_invalid_request_id_is_replaced(
    client: AsyncTestClient[Litestar], bad: bytes
) -> None:
    """CR/LF, 129 characters, non-ASCII or empty ids are replaced by a generated one."""
    r = await client.get("/health/live", headers=[(b"X-Request-ID", bad)])
    rid = r.headers["x-request-id"]
    assert rid.encode() != bad
    assert len(rid) == 32 and all(c in "0123456789abcdef" for c in rid)


async def test_128_character_id_is_kept(client: AsyncTestClient[Litestar]) -> None:
    """The upper bound itself is valid."""
    rid = "a" * 128
    r = await client.get("/health/live", headers={"X-Request-ID": rid})
    assert r.headers["x-request-id"] == rid


async def test_404_is_problem_json_with_request_id(client: AsyncTestClient[Litestar]) -> None:
    """Routing failures carry the id in header and body."""
    r = await client.get("/does-not-exist", headers={"X-Request-ID": "rid-404"})
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["x-request-id"] == "rid-404"
    body = r.json()
    assert body["request_id"] == "rid-404"
    assert {"type", "title", "status", "detail"} <= body.keys()


async def test_405_is_problem_json_with_request_id(client: AsyncTestClient[Litestar]) -> None:
    """A wrong method is a problem+json 405 with the id."""
    r = await client.post("/health/live", headers={"X-Request-ID": "rid-405"})
    assert r.status_code == 405
    assert r.headers["x-request-id"] == "rid-405"
    assert r.json()["status"] == 405


async def test_500_hides_detail_and_logs_traceback_once(
    client: AsyncTestClient[Litestar], log_buffer: io.StringIO
) -> None:
    """An unexpected error answers a generic 500 with the id; the traceback is logged once."""
    r = await client.get("/boom", headers={"X-Request-ID": "rid-500"})
    assert r.status_code == 500
    assert r.headers["x-request-id"] == "rid-500"
    assert r.headers["content-type"] == "application/problem+json"
    assert "kaboom" not in r.text and "Traceback" not in r.text
    errors = [e for e in log_lines(log_buffer) if e.get("event") == "unhandled_error"]
    assert len(errors) == 1
    assert "kaboom" in str(errors[0]["exception"])
    assert errors[0]["request_id"] == "rid-500"


async def test_request_log_line_carries_request_id(
    client: AsyncTestClient[Litestar], log_buffer: io.StringIO
) -> None:
    """The per-request JSON log line names the request id."""
    await client.get("/health/live", headers={"X-Request-ID": "rid-log"})
    lines = [e for e in log_lines(log_buffer) if e.get("event") == "request"]
    assert any(e["request_id"] == "rid-log" and e["status"] == 200 for e in lines)


async def test_traceparent_is_continued(
    client: AsyncTestClient[Litestar], log_buffer: io.StringIO
) -> None:
    """An incoming W3C traceparent's trace id appears in the request's log line."""
    await client.get("/health/live", headers={"traceparent": TRACEPARENT, "X-Request-ID": "rid-tp"})
    line = next(e for e in log_lines(log_buffer) if e.get("request_id") == "rid-tp")
    assert line["trace_id"] == TRACE_ID


async def test_credentials_never_reach_the_logs(
    client: AsyncTestClient[Litestar], log_buffer: io.StringIO
) -> None:
    """Bearer tokens, cookies and client secrets sent in a request are not in the log output."""
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNlY3JldA"
    await client.get(
        "/does-not-exist?client_secret=topsecret-client&code=authcode-123",
        headers={"Authorization": f"Bearer {token}", "Cookie": "auth_session=cookie-secret-value"},
    )
    await client.get("/boom", headers={"Authorization": "Bearer opaque-bearer-value"})
    import structlog

    structlog.get_logger("t").info(
        "probe",
        headers={"Authorization": "Bearer opaque-2"},
        note=f"got {token}",
        client_secret="cs-1",
        url="https://x/cb?code=abc123&state=s",
    )
    out = log_buffer.getvalue()
    for secret in (
        token,
        "topsecret-client",
        "authcode-123",
        "cookie-secret-value",
        "opaque-bearer-value",
        "opaque-2",
        "cs-1",
        "abc123",
    ):
        assert secret not in out


async def _ask(
    client: AsyncTestClient[Litestar], path: str, rid: str, **headers: str
) -> httpx.Response:
    """A forward-auth check (``auth-request``) of ``http://app.test{path}``."""
    original = {"X-Original-URL": f"http://app.test{path}", "X-Request-ID": rid}
    return await client.get("/authz/auth-request", headers={**original, **headers})


async def _check(client: AsyncTestClient[Litestar], path: str, rid: str) -> int:
    return (await _ask(client, path, rid)).status_code


async def test_allowed_forward_auth_checks_leave_the_line_to_the_gateway(
    client: AsyncTestClient[Litestar], log_buffer: io.StringIO
) -> None:
    """By default (AUTH_ACCESS_LOG_CHECKS=refusals) an allowed check writes no access line
    (the gateway logs the request with the same id); every refusal does."""
    assert await _check(client, "/public/x", "rid-allowed") == 200
    assert await _check(client, "/orders/1", "rid-refused") == 401
    lines = {e["request_id"]: e for e in log_lines(log_buffer) if e.get("event") == "request"}
    assert "rid-allowed" not in lines
    assert lines["rid-refused"]["status"] == 401
    assert lines["rid-refused"]["route"] == "/authz/auth-request"


async def test_every_forward_auth_check_is_logged_when_asked(
    settings: Settings, log_buffer: io.StringIO
) -> None:
    """AUTH_ACCESS_LOG_CHECKS=all: allowed checks get their line too."""
    app = create_app(
        msgspec.structs.replace(settings, access_log_checks="all"), configure_logs=False
    )
    async with AsyncTestClient(app) as client:
        assert await _check(client, "/public/x", "rid-allowed-all") == 200
        # the general (traced) path follows the same setting
        r = await _ask(client, "/public/y", "rid-traced", traceparent=TRACEPARENT)
        assert r.status_code == 200
    lines = {e["request_id"]: e for e in log_lines(log_buffer) if e.get("event") == "request"}
    assert lines["rid-allowed-all"]["status"] == 200
    assert lines["rid-traced"]["trace_id"] == TRACE_ID


async def test_a_traced_allowed_check_follows_the_default_too(
    client: AsyncTestClient[Litestar], log_buffer: io.StringIO
) -> None:
    """A check with a traceparent takes the general path, and writes no line when allowed."""
    r = await _ask(client, "/public/y", "rid-traced-default", traceparent=TRACEPARENT)
    assert r.status_code == 200 and r.headers["x-request-id"] == "rid-traced-default"
    lines = [e for e in log_lines(log_buffer) if e.get("event") == "request"]
    assert not any(e["request_id"] == "rid-traced-default" for e in lines)
