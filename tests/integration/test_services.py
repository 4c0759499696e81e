"""The composition root as `create_app` runs it: one typed, frozen `Services` per worker."""

from __future__ import annotations

import dataclasses

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from auth_service.services import Services


async def test_forward_auth_gets_the_workers_own_collaborators(
    service: AsyncTestClient[Litestar],
) -> None:
    """The lean path uses the same MFA state, session resolver and authenticator as the
    rest of the worker, even while the MFA state is empty (the ``mfa or _NoMfa()`` bug)."""
    services: Services = service.app.state.services
    endpoint = services.forward_auth
    assert endpoint.mfa is services.mfa_state
    assert endpoint.sessions is services.sessions
    assert endpoint.authenticator is services.authenticator
    assert services.sessions.authenticator is services.authenticator
    assert services.login.idp is services.logout.idp is services.authenticator.idp


async def test_services_cannot_be_replaced(service: AsyncTestClient[Litestar]) -> None:
    """`Services` is frozen: nothing (a test included) swaps a service of a built app."""
    services: Services = service.app.state.services
    with pytest.raises(dataclasses.FrozenInstanceError):
        services.mfa_state = None  # type: ignore[misc,assignment]
