"""The encoding of the gateway's plain identity headers (``X-Auth-*``), both directions.

CONTRACT §4: a comma-separated identity header (``X-Auth-Roles`` and list-valued
claim headers) percent-encodes every item that contains ``,``, ``%``,
whitespace, control or non-ASCII characters, so a role named ``a,b`` can never
read as two roles. Exactly those characters are encoded (UTF-8, then ``%XX``);
every other character stays as it is, so ordinary role names read unchanged.

Single-valued headers (``X-Auth-Subject``, ``X-Auth-User``, ``X-Auth-Email``,
scalar claim headers) are percent-encoded too (``%``, ``,``, control and
non-ASCII characters; spaces and other printable ASCII stay), so *every*
identity header reads the same way: split on ``,`` and percent-decode each item
(`decode_items`); a single value is the one item.

The auth service renders headers with `encode_item`; a downstream service that
reads the plain headers (behind a gateway that strips client-sent ``X-Auth-*``)
uses `decode_items` or `read_identity`. Signed identity is in
``X-Auth-Assertion`` (`AssertionVerifier`), which needs no decoding.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, unquote_to_bytes

__all__ = (
    "IdentityHeaders",
    "decode_item",
    "decode_items",
    "encode_item",
    "encode_items",
    "encode_value",
    "read_identity",
)

_ITEM_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in ",%")
"""Printable ASCII except space, ``,`` and ``%``: left as is in list items."""
_ITEM_PLAIN = re.compile(r"[\x21-\x24\x26-\x2b\x2d-\x7e]*")
"""An item that needs no encoding (the common case, checked without building a string)."""
_VALUE_SAFE = " " + _ITEM_SAFE
"""Printable ASCII except ``,`` and ``%``: left as is in single values."""
_VALUE_PLAIN = re.compile(r"[\x20-\x24\x26-\x2b\x2d-\x7e]*")
_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
"""A ``%`` that does not start an escape: not something `encode_item` produced."""


def encode_item(text: str) -> str:
    """One item of a comma-separated identity header: ``,``, ``%``, whitespace, control
    and non-ASCII characters percent-encoded (UTF-8), everything else unchanged."""
    if _ITEM_PLAIN.fullmatch(text):
        return text
    return quote(text, safe=_ITEM_SAFE)


def encode_value(text: str) -> str:
    """A single-valued identity header: like `encode_item` but inner spaces stay as they are.

    Spaces at either end are encoded: HTTP drops them from header values, so ``"t-1 "``
    would otherwise arrive as ``t-1``.
    """
    if _VALUE_PLAIN.fullmatch(text) and not text.startswith(" ") and not text.endswith(" "):
        return text
    encoded = quote(text, safe=_VALUE_SAFE)
    inner = encoded.strip(" ")
    if not inner:
        return "%20" * len(encoded)
    lead = len(encoded) - len(encoded.lstrip(" "))
    trail = len(encoded) - len(encoded.rstrip(" "))
    return "%20" * lead + inner + "%20" * trail


def encode_items(items: Iterable[str]) -> str:
    """A comma-separated header value of ``items``, each `encode_item`-ed, in the given order.

    Empty items are left out: an empty string cannot be told apart from "no item".
    """
    return ",".join(encode_item(item) for item in items if item)


def decode_item(item: str) -> str:
    """The text of one percent-encoded item.

    Raises:
        ValueError: a ``%`` that is not followed by two hex digits, or escapes that are
            not UTF-8: the value was not written by the auth service.
    """
    if "%" not in item:
        return item
    if _ESCAPE.search(item):
        raise ValueError("invalid percent-encoding in an identity header item")
    try:
        return unquote_to_bytes(item).decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("identity header item is not UTF-8") from None


def decode_items(value: str) -> list[str]:
    """The items of a comma-separated identity header value (``""`` has none).

    Raises:
        ValueError: see `decode_item`.
    """
    if not value:
        return []
    return [decode_item(item) for item in value.split(",")]


_ASSERTION = "x-auth-assertion"
_NAMED = frozenset({"x-auth-subject", "x-auth-user", "x-auth-email", "x-auth-roles", "x-auth-mfa"})


@dataclass(frozen=True, slots=True)
class IdentityHeaders:
    """The plain identity headers of one request, decoded.

    ``attributes`` holds every other ``X-Auth-*`` header (custom claim headers such as
    ``x-auth-tenant``), lower-case name → its items (a single value is one item).
    """

    subject: str | None = None
    username: str | None = None
    email: str | None = None
    roles: tuple[str, ...] = ()
    mfa: str | None = None
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def read_identity(headers: Iterable[tuple[str | bytes, str | bytes]]) -> IdentityHeaders:
    """Decode the ``X-Auth-*`` headers among ``headers`` (ASGI pairs or ``dict.items()``).

    ``X-Auth-Assertion`` is left out: verify it with `AssertionVerifier`.

    Raises:
        ValueError: an identity header appears twice (a proxy appended instead of
            replacing) or is not validly encoded.
    """
    found: dict[str, str] = {}
    for raw_name, raw_value in headers:
        name = _text(raw_name).lower()
        if not name.startswith("x-auth-") or name == _ASSERTION:
            continue
        if name in found:
            raise ValueError(f"identity header {name} appears more than once")
        found[name] = _text(raw_value).strip()

    def single(name: str) -> str | None:
        if name not in found:
            return None
        items = decode_items(found[name])
        if len(items) > 1:
            raise ValueError(f"identity header {name} holds more than one value")
        return items[0] if items else ""

    return IdentityHeaders(
        subject=single("x-auth-subject"),
        username=single("x-auth-user"),
        email=single("x-auth-email"),
        roles=tuple(decode_items(found.get("x-auth-roles", ""))),
        mfa=single("x-auth-mfa"),
        attributes={
            name: tuple(decode_items(value))
            for name, value in sorted(found.items())
            if name not in _NAMED
        },
    )
