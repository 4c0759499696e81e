"""Settings: one tree of msgspec Structs, loaded from the environment.

`load_settings()` is the only place in the service that reads the environment
(and an optional ``.env`` file, which never overrides a real variable). Every
setting is ``AUTH_<FIELD>`` in upper case; OpenTelemetry keeps its standard
``OTEL_*`` names. Secrets also accept ``<NAME>_FILE`` pointing at a file.

Problems are collected, not raised one by one: `SettingsError.problems` holds
one line per bad variable, so an operator fixes everything in one go.

An ``AUTH_*`` variable that is neither a setting, the ``_FILE`` variant of a
secret, nor one of `TOOLING_VARIABLES` (read by this repository's tooling, not
by the service) is a problem too: a typo must not silently leave a default in
force.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec
from dotenv import dotenv_values

__all__ = (
    "TOOLING_VARIABLES",
    "SecretKey",
    "Settings",
    "SettingsError",
    "known_variables",
    "load_secret_keys",
    "load_settings",
    "read_env_file",
)


class SecretKey(msgspec.Struct, frozen=True):
    """One entry of ``AUTH_SECRET_KEYS``: a key id and 32 key bytes."""

    id: str
    key: bytes

    def __repr__(self) -> str:
        return f"SecretKey(id={self.id!r}, key=<redacted>)"


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every setting of the service. Required ones have no default."""

    oidc_issuer: str
    """Realm issuer URL; discovery is read from ``<issuer>/.well-known/openid-configuration``."""
    oidc_client_secret: str
    """Secret of this service's confidential client (secret; ``_FILE`` accepted)."""
    public_url: str
    """Where browsers reach this service through the gateway; issuer of ``X-Auth-Assertion``."""
    database_url: str
    """PostgreSQL DSN (``_FILE`` accepted, as it may carry a password)."""
    redis_url: str
    """Redis URL (``_FILE`` accepted)."""
    policy_file: str
    """Access policy TOML file."""
    secret_keys: tuple[SecretKey, ...]
    """Encryption keys for secrets at rest, ``id:base64key,...``; first encrypts, all decrypt."""

    policy_watch_interval: float = 1.0
    """Seconds between policy file change checks; 0 turns watching off (SIGHUP still works)."""
    oidc_client_id: str = "auth-service"
    """This service's client id at the IdP."""
    oidc_audiences: tuple[str, ...] = ()
    """Accepted ``aud`` (or ``azp``) values of bearer tokens; empty means the client id."""
    oidc_algorithms: tuple[str, ...] = ("RS256", "PS256", "ES256")
    """Allowed JWS algorithms for IdP tokens (asymmetric only)."""
    oidc_leeway: int = 30
    """Clock leeway in seconds for ``exp``/``nbf``/``iat`` (0 to 30)."""
    jwks_min_refresh_interval: float = 10.0
    """An unknown ``kid`` triggers at most one JWKS refresh per this many seconds."""
    jwks_max_age: float = 300.0
    """The JWKS is refreshed in the background before it is this old."""
    idp_timeout: float = 5.0
    """Timeout in seconds for calls to the IdP."""
    introspection_timeout: float = 1.0
    """Longest wait in seconds for the IdP to complete a lightweight token (0.05 to 30)."""
    allowed_redirect_hosts: tuple[str, ...] = ()
    """Hosts that ``rd`` return URLs may point to (``*.example.com`` allowed)."""
    trusted_proxies: tuple[str, ...] = ("127.0.0.0/8", "::1")
    """Addresses/CIDRs whose ``X-Forwarded-For``/``Forwarded``/``X-Real-IP`` are believed."""
    claim_headers: tuple[str, ...] = ("tenant_id=X-Auth-Tenant",)
    """Custom attribute claims passed downstream, ``claim.path=Header-Name`` comma list."""
    token_cache_size: int = 100_000
    """Verified-token cache entries per worker."""
    assertion_ttl: int = 60
    """Lifetime in seconds of ``X-Auth-Assertion`` (at most 60)."""
    host: str = "127.0.0.1"
    """Interface `auth-service serve` binds to (``--host`` overrides)."""
    port: int = 8000
    """Port `auth-service serve` listens on (``--port`` overrides)."""
    workers: int = 1
    """Worker processes of `auth-service serve` (``--workers`` overrides)."""
    batch_scheduling: bool = True
    """Run `auth-service serve` under Linux ``SCHED_BATCH`` (see the README's choices)."""
    log_format: Literal["json", "console"] = "json"
    """Log renderer: JSON lines or a human console format."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Lowest level that is logged."""
    access_log: bool = True
    """Write one log line per request (forward-auth checks: see ``access_log_checks``)."""
    access_log_checks: Literal["refusals", "all"] = "refusals"
    """Which forward-auth checks get an access line: every answer but an allowed 200
    (the gateway logs each request with the same request id), or all of them."""
    redis_prefix: str = "auth:"
    """Prefix of every Redis key and channel this service uses."""
    migrate_database_url: str | None = None
    """Schema owner DSN of `auth-service migrate` (``_FILE`` accepted); unset: AUTH_DATABASE_URL."""
    db_pool_max: int = 10
    """Maximum PostgreSQL connections per worker."""
    ready_timeout: float = 1.0
    """Per-dependency timeout of ``/health/ready`` checks, in seconds."""
    audit_spool_dir: str = "var/audit-spool"
    """Local durable spool for audit events (a persistent volume in production)."""
    audit_spool_max_bytes: int = 1 << 30
    """Per-worker spool cap in bytes; a loud warning is logged from 80 %."""
    audit_spool_segment_bytes: int = 8 << 20
    """Spool segment rotation size in bytes."""
    audit_queue_size: int = 10_000
    """Audit events held in memory before the writer reads them back from the spool."""
    audit_batch_size: int = 1_000
    """Most audit events per INSERT."""
    audit_flush_interval: float = 0.05
    """Longest idle wait of the audit writer, in seconds."""
    audit_fsync_interval: float = 1.0
    """Seconds between fsyncs of the audit spool."""
    audit_write_timeout: float = 10.0
    """Bound on one audit batch insert, in seconds."""
    audit_aggregate_window: float = 10.0
    """Seconds in which repeats of one denial (type, reason, rule, caller, source) become one."""
    audit_shutdown_timeout: float = 10.0
    """How long shutdown keeps writing audit events before leaving the rest in the spool."""
    session_idle_timeout: int = 1800
    """Seconds without a request before a browser session ends."""
    session_absolute_timeout: int = 43_200
    """Seconds after login when a browser session ends, whatever the activity."""
    session_refresh_margin: float = 60.0
    """Refresh a session's access token when it has fewer than this many seconds left."""
    login_state_ttl: int = 600
    """Lifetime in seconds of a login attempt (state, nonce, PKCE verifier, rd) in Redis."""
    login_rate_limit: int = 30
    """Login attempts (``GET /auth/login``) per client address and window; more get 429."""
    login_rate_window: int = 60
    """Length in seconds of the login rate-limit window."""
    oidc_scopes: str = "openid profile email"
    """Scopes requested at browser login."""
    mfa_window: int = 1
    """TOTP steps accepted either side of the current one (0 to 10)."""
    mfa_max_failures: int = 5
    """Wrong codes per user within the failure window before a lockout."""
    mfa_failure_window: int = 900
    """Seconds the failure counts cover."""
    mfa_lockout_seconds: int = 900
    """Length of a user's lockout, in seconds."""
    mfa_ip_max_failures: int = 50
    """Wrong codes per source IP within the failure window before that IP is locked out."""
    mfa_ip_lockout_seconds: int = 900
    """Length of a source IP's lockout, in seconds."""
    mfa_verified_ttl: int = 36_000
    """Seconds a Keycloak session stays MFA-verified (logout ends it sooner)."""
    mfa_issuer: str = "auth-service"
    """Issuer label in the ``otpauth://`` URI shown to authenticator apps."""
    metrics_dir: str | None = None
    """Directory where each worker publishes its metrics, so ``/metrics`` covers the whole
    server; ``auth-service serve`` makes a private one when unset."""
    otel_exporter_otlp_endpoint: str | None = None
    """``OTEL_EXPORTER_OTLP_ENDPOINT``: base URL of the OTLP receiver; traces are exported
    when it (or the traces endpoint) is set."""
    otel_exporter_otlp_traces_endpoint: str | None = None
    """``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``: full URL for traces, overriding the base one."""
    otel_exporter_otlp_protocol: str = "http/protobuf"
    """``OTEL_EXPORTER_OTLP_PROTOCOL``: ``http/protobuf`` or ``grpc``."""
    otel_exporter_otlp_traces_protocol: str | None = None
    """``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``: the protocol for traces, overriding the other."""
    otel_service_name: str = "auth-service"
    """``OTEL_SERVICE_NAME``: the service name resource attribute."""

    @property
    def audiences(self) -> tuple[str, ...]:
        """Accepted audiences, defaulting to this service's client id."""
        return self.oidc_audiences or (self.oidc_client_id,)

    @property
    def claim_header_map(self) -> dict[str, str]:
        """Claim path → header name, parsed from ``claim_headers``."""
        return dict(_split_pair(item) for item in self.claim_headers)


class SettingsError(Exception):
    """Raised by `load_settings` with one line per invalid or missing variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


_SECRETS = frozenset(
    {"oidc_client_secret", "database_url", "migrate_database_url", "redis_url", "secret_keys"}
)
_OTEL = frozenset(
    {
        "otel_exporter_otlp_endpoint",
        "otel_exporter_otlp_traces_endpoint",
        "otel_exporter_otlp_protocol",
        "otel_exporter_otlp_traces_protocol",
        "otel_service_name",
    }
)
_OTLP_PROTOCOLS = ("http/protobuf", "grpc")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_CLAIM_PATH = re.compile(r"^[A-Za-z0-9_:-]+(\.[A-Za-z0-9_:-]+)*$")


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    return field.upper() if field in _OTEL else f"AUTH_{field.upper()}"


def _split_pair(item: str) -> tuple[str, str]:
    claim, _, header = item.partition("=")
    return claim.strip(), header.strip()


def _read_raw(env: Mapping[str, str], field: str, problems: list[str]) -> str | None:
    name = env_name(field)
    if field in _SECRETS and f"{name}_FILE" in env:
        path = env[f"{name}_FILE"]
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{name}_FILE: cannot read {path!r}: {exc.__class__.__name__}")
            return None
    value = env.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def _parse_secret_keys(raw: str) -> tuple[SecretKey, ...]:
    keys: list[SecretKey] = []
    for part in raw.split(","):
        kid, sep, b64 = part.strip().partition(":")
        if not sep or not kid or not re.fullmatch(r"[A-Za-z0-9._-]{1,32}", kid):
            raise ValueError("each entry must be id:base64key with a short id")
        try:
            padded = b64 + "=" * (-len(b64) % 4)
            alphabet_std = padded.replace("-", "+").replace("_", "/")
            key = base64.b64decode(alphabet_std, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"key {kid!r} is not valid base64") from None
        if len(key) != 32:
            raise ValueError(f"key {kid!r} must be 32 bytes, got {len(key)}")
        if any(k.id == kid for k in keys):
            raise ValueError(f"key id {kid!r} appears twice")
        keys.append(SecretKey(kid, key))
    return tuple(keys)


def _check_url(value: str, schemes: tuple[str, ...]) -> None:
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        raise ValueError(f"scheme must be one of {', '.join(schemes)}")
    if not parts.hostname and parts.scheme != "unix":
        raise ValueError("has no host")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError("has an invalid port") from None


_AT_LEAST_ONE = frozenset(
    {"workers", "db_pool_max", "token_cache_size", "login_rate_limit", "login_rate_window"}
)


def _check_field(field: str, value: Any) -> Any:
    """Field-specific checks beyond the type; returns the final value."""
    if field == "oidc_issuer":
        _check_url(value, ("http", "https"))
    if field == "public_url":
        _check_url(value, ("http", "https"))
        return value.rstrip("/")
    if field in ("database_url", "migrate_database_url"):
        _check_url(value, ("postgresql", "postgres"))
    elif field == "redis_url":
        _check_url(value, ("redis", "rediss", "unix"))
    elif field == "introspection_timeout" and not 0.05 <= value <= 30:
        raise ValueError("must be between 0.05 and 30 seconds")
    elif field == "mfa_window" and not 0 <= value <= 10:
        raise ValueError("must be between 0 and 10 steps")
    elif field == "oidc_leeway" and not 0 <= value <= 30:
        raise ValueError("must be between 0 and 30 seconds")
    elif field == "assertion_ttl" and not 5 <= value <= 60:
        raise ValueError("must be between 5 and 60 seconds")
    elif field == "port" and not 0 <= value <= 65535:
        raise ValueError("must be a TCP port number")
    elif field in _AT_LEAST_ONE and value < 1:
        raise ValueError("must be at least 1")
    elif field in ("otel_exporter_otlp_protocol", "otel_exporter_otlp_traces_protocol"):
        if value not in _OTLP_PROTOCOLS:
            raise ValueError(f"must be one of {', '.join(_OTLP_PROTOCOLS)}")
    elif field in ("otel_exporter_otlp_endpoint", "otel_exporter_otlp_traces_endpoint"):
        _check_url(value, ("http", "https"))
    elif field == "oidc_algorithms":
        bad = [a for a in value if a not in _ASYMMETRIC]
        if bad:
            raise ValueError(f"unsupported algorithms {bad}; allowed: {sorted(_ASYMMETRIC)}")
    elif field == "trusted_proxies":
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR network") from None
    elif field == "claim_headers":
        for item in value:
            claim, header = _split_pair(item)
            if not _CLAIM_PATH.match(claim) or not _HEADER_NAME.match(header):
                raise ValueError(f"{item!r} is not claim.path=Header-Name")
    return value


_ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


TOOLING_VARIABLES = frozenset(
    {
        # this module: the env file to read instead of ./.env
        "AUTH_ENV_FILE",
        # auth-service dev (auth_service/devstack.py)
        "AUTH_DEV_GATEWAY_PORT",
        "AUTH_DEV_AUTH_PORT",
        "AUTH_DEV_DEMO_PORT",
        "AUTH_DEV_IDP_PORT",
        "AUTH_DEV_RUNTIME_DIR",
        # the test suite (tests/conftest.py, tests/support/pgcluster.py)
        "AUTH_TEST_DATABASE_URL",
        "AUTH_TEST_REDIS_URL",
        "AUTH_TEST_PG_BIN",
        # make bench (bench/run.py)
        "AUTH_BENCH_ADMIN_DSN",
        "AUTH_BENCH_REDIS_URL",
    }
)
"""``AUTH_*`` variables that are not settings but are read by this repository's tooling."""


def known_variables() -> frozenset[str]:
    """Every ``AUTH_*`` name that may appear in the environment or ``.env``."""
    names = set(TOOLING_VARIABLES)
    for info in msgspec.structs.fields(Settings):
        name = env_name(info.name)
        if name.startswith("AUTH_"):
            names.add(name)
            if info.name in _SECRETS:
                names.add(f"{name}_FILE")
    return frozenset(names)


def _unknown_variables(source: Mapping[str, str], only_in_file: set[str]) -> list[str]:
    """One line per unknown ``AUTH_*`` name, with the closest known one when there is one."""
    known = known_variables()
    by_suffix = {name.removeprefix("AUTH_"): name for name in known}
    problems: list[str] = []
    for name in sorted(source):
        if not name.startswith("AUTH_") or name in known:
            continue
        close = difflib.get_close_matches(name.removeprefix("AUTH_"), by_suffix, n=1, cutoff=0.7)
        where = " (in the env file)" if name in only_in_file else ""
        hint = f"; did you mean {by_suffix[close[0]]}?" if close else ""
        problems.append(f"{name}{where}: unknown setting{hint}")
    return problems


def read_env_file(env: Mapping[str, str]) -> dict[str, str]:
    """Values of the env file: ``AUTH_ENV_FILE`` from ``env``, else ``./.env``; none if absent.

    Every command reads its settings the same way: the real environment, then
    this file for what the environment does not set. No other file is read.
    """
    path = env.get("AUTH_ENV_FILE", ".env")
    if not Path(path).is_file():
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def load_settings(env: Mapping[str, str] | None = None, *, env_file: bool = True) -> Settings:
    """Build `Settings` from ``env`` (default: the process environment plus ``.env``).

    Raises:
        SettingsError: with one line per missing or invalid variable.
    """
    real = dict(os.environ if env is None else env)
    from_file = read_env_file(real) if env_file else {}
    source = {**from_file, **real}
    problems: list[str] = _unknown_variables(source, set(from_file) - set(real))
    values: dict[str, Any] = {}
    for info in msgspec.structs.fields(Settings):
        name = env_name(info.name)
        raw = _read_raw(source, info.name, problems)
        if raw is None:
            if info.required and not any(p.startswith(f"{name}_FILE") for p in problems):
                problems.append(f"{name}: required but not set")
            continue
        try:
            if info.name == "secret_keys":
                value: Any = _parse_secret_keys(raw)
            elif info.type in (tuple[str, ...],):
                value = tuple(p.strip() for p in raw.split(",") if p.strip())
            else:
                value = msgspec.convert(raw, info.type, strict=False)
            values[info.name] = _check_field(info.name, value)
        except (msgspec.ValidationError, ValueError) as exc:
            shown = "<redacted>" if info.name in _SECRETS else repr(raw[:80])
            problems.append(f"{name}: invalid value {shown}: {exc}")
    if problems:
        raise SettingsError(problems)
    return Settings(**values)


def load_secret_keys(
    env: Mapping[str, str] | None = None, *, env_file: bool = True
) -> tuple[SecretKey, ...]:
    """Only ``AUTH_SECRET_KEYS`` (or ``_FILE``), for tools that need no other setting.

    Raises:
        SettingsError: with one line when it is missing or invalid.
    """
    source = dict(os.environ if env is None else env)
    if env_file:
        source = {**read_env_file(source), **source}
    problems: list[str] = []
    raw = _read_raw(source, "secret_keys", problems)
    if raw is None:
        raise SettingsError(problems or ["AUTH_SECRET_KEYS: required but not set"])
    try:
        return _parse_secret_keys(raw)
    except ValueError as exc:
        raise SettingsError([f"AUTH_SECRET_KEYS: invalid value <redacted>: {exc}"]) from None
