"""What a new user meets first: the demo policy's front page and the /metrics media type."""

from __future__ import annotations

from pathlib import Path

from litestar import Litestar
from litestar.testing import AsyncTestClient

from auth_service.app import create_app
from auth_service.config import load_settings
from tests.integration.forward_auth.conftest import auth_request
from tests.support.ready import until_ready

ROOT = Path(__file__).resolve().parents[2]


async def test_metrics_has_exactly_one_charset(service: AsyncTestClient[Litestar]) -> None:
    """Prometheus text format 0.0.4, with one charset parameter."""
    r = await service.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"


async def test_demo_policy_sends_a_browser_at_the_front_page_to_the_login(
    idp_env: dict[str, str],
) -> None:
    """With deploy/policy.toml (what `make dev` and compose use), `/` needs a login: a browser
    without a session gets the login redirect, as the README says; /public stays open."""
    env = {**idp_env, "AUTH_POLICY_FILE": str(ROOT / "deploy" / "policy.toml")}
    app = create_app(load_settings(env, env_file=False), configure_logs=False)
    async with AsyncTestClient(app, base_url="http://auth.test") as client:
        await until_ready(client)
        browser = {"Accept": "text/html"}
        front = await auth_request(client, url="http://localhost:8080/", headers=browser)
        assert front.status_code == 401
        assert front.headers["x-auth-redirect"].startswith("http://auth.test/auth/login?rd=")
        public = await auth_request(client, url="http://localhost:8080/public/x", headers=browser)
        assert public.status_code == 200
