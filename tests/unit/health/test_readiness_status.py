"""`overall_status`: only missing keys or never-synced revocations make a worker ``down``."""

from __future__ import annotations

import itertools

from auth_service.health.readiness import overall_status


def test_every_combination_maps_as_the_contract_says() -> None:
    for pg, redis, oidc, keys, revocations, signing in itertools.product(
        ("ok", "down"),
        ("ok", "down"),
        ("ok", "down"),
        ("fresh", "stale", "none"),
        ("synced", "stale", "never"),
        ("ok", "down"),
    ):
        status = overall_status(
            postgres=pg,  # type: ignore[arg-type]
            redis=redis,  # type: ignore[arg-type]
            oidc=oidc,  # type: ignore[arg-type]
            keys=keys,  # type: ignore[arg-type]
            revocations=revocations,  # type: ignore[arg-type]
            assertion_keys=signing,  # type: ignore[arg-type]
        )
        if keys == "none" or revocations == "never":
            expected = "down"
        elif (pg, redis, oidc, keys, revocations, signing) == (
            "ok",
            "ok",
            "ok",
            "fresh",
            "synced",
            "ok",
        ):
            expected = "ok"
        else:
            expected = "degraded"
        assert status == expected, (pg, redis, oidc, keys, revocations, signing)


def test_postgres_or_idp_outage_alone_is_degraded_not_down() -> None:
    both = overall_status(
        postgres="down", redis="ok", oidc="down", keys="stale", revocations="synced"
    )
    assert both == "degraded"
