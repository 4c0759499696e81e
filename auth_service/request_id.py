"""Request ids (CONTRACT §2).

An incoming ``X-Request-ID`` matching ``^[A-Za-z0-9._:-]{1,128}$`` is kept,
anything else is replaced by a new random id. The id is computed once per ASGI
scope and cached in ``scope["state"]``, so the lean forward-auth path, the
Litestar middleware and the ``before_send`` hook (which also sees routing
failures such as 404/405) all agree on it.
"""

from __future__ import annotations

import os
import random
import re
from typing import Any

__all__ = (
    "REQUEST_ID_HEADER",
    "is_valid_request_id",
    "new_request_id",
    "request_id",
    "request_id_from",
)

REQUEST_ID_HEADER = "x-request-id"
_random = random.Random()
_pid = os.getpid()
_VALID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def is_valid_request_id(value: str) -> bool:
    """Whether ``value`` may be kept as a request id (``fullmatch``: no trailing newline)."""
    return _VALID.fullmatch(value) is not None


def new_request_id() -> str:
    """A fresh random request id (32 hex characters)."""
    # Request ids correlate, they do not authorise: a fast PRNG is enough
    # (os.urandom costs a syscall per request on the hot path).
    global _pid
    if os.getpid() != _pid:  # a forked worker must not repeat its parent's sequence
        _pid = os.getpid()
        _random.seed()
    return f"{_random.getrandbits(128):032x}"


def request_id_from(header: bytes | None) -> str:
    """The request id for an incoming ``X-Request-ID`` value (``None``: absent)."""
    if header is not None:
        rid = header.decode("latin-1")
        if _VALID.fullmatch(rid) is not None:
            return rid
    return new_request_id()


def request_id(scope: Any) -> str:
    """The request id of an ASGI scope, computed on first use and cached in its state."""
    state = scope.setdefault("state", {})
    rid: str | None = state.get("request_id")
    if rid is None:
        header = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                header = value
                break
        rid = state["request_id"] = request_id_from(header)
    return rid
