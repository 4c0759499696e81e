"""Property tests: arbitrary input and mutated tokens never verify and only raise TokenError."""

from __future__ import annotations

import json
import string
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from auth_service.verifier import JWKSCache, TokenError
from auth_service.verifier import tokens as tokens_module

from .support import (
    JWKS_URI,
    FakeClock,
    JWKSEndpoint,
    access_claims,
    b64,
    ec_key,
    forge,
    make_verifier,
    rsa_key,
    sign,
)

# Built once: Hypothesis runs each test body many times and function fixtures do not reset.
ENDPOINT = JWKSEndpoint()
ENDPOINT.serve(rsa_key(), ec_key())
CACHE = JWKSCache(JWKS_URI, ENDPOINT.client(), clock=FakeClock())
VERIFIER = make_verifier(CACHE, FakeClock())
VALID = [sign(access_claims(), rsa_key()), sign(access_claims(), ec_key())]
TOKEN_CHARS = string.ascii_letters + string.digits + "-_.=+/ "

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


async def refused(token: str) -> str:
    """Verify ``token``; return the TokenError reason. Any other outcome fails the test."""
    if CACHE.get("rsa-1") is None:
        await CACHE.refresh(force=True)
    try:
        await VERIFIER.verify(token)
    except TokenError as error:
        return error.reason
    raise AssertionError(f"verified: {token!r}")


async def test_the_unmutated_tokens_verify() -> None:
    """Sanity check for the properties below: the seed tokens are valid."""
    if CACHE.get("rsa-1") is None:
        await CACHE.refresh(force=True)
    for token in VALID:
        assert (await VERIFIER.verify(token)).username == "alice"


@FUZZ
@given(st.text(max_size=400))
async def test_random_text(text: str) -> None:
    """Any Unicode string is refused with a TokenError."""
    await refused(text)


@FUZZ
@given(st.binary(max_size=400))
async def test_random_bytes_as_latin1(data: bytes) -> None:
    """Arbitrary bytes, as a header would deliver them (latin-1), are refused."""
    await refused(data.decode("latin-1"))


@FUZZ
@given(st.lists(st.text(alphabet=TOKEN_CHARS, max_size=60), min_size=1, max_size=5))
async def test_random_token_shaped_strings(parts: list[str]) -> None:
    """Dot-joined base64url-ish noise is refused."""
    await refused(".".join(parts))


@st.composite
def mutations(draw: st.DrawFn) -> str:
    token = draw(st.sampled_from(VALID))
    kind = draw(st.sampled_from(["replace", "insert", "delete", "truncate", "swap", "dup"]))
    i = draw(st.integers(0, len(token) - 1))
    char = draw(st.sampled_from(TOKEN_CHARS))
    if kind == "replace":
        mutated = token[:i] + char + token[i + 1 :]
    elif kind == "insert":
        mutated = token[:i] + char + token[i:]
    elif kind == "delete":
        mutated = token[:i] + token[i + 1 :]
    elif kind == "truncate":
        mutated = token[:i]
    elif kind == "swap":
        j = draw(st.integers(0, len(token) - 1))
        chars = list(token)
        chars[i], chars[j] = chars[j], chars[i]
        mutated = "".join(chars)
    else:
        head, payload, signature = token.split(".")
        mutated = ".".join(draw(st.permutations([head, payload, signature, payload]))[:3])
    assume(mutated != token)
    return mutated


@FUZZ
@given(mutations())
async def test_mutated_tokens_never_verify(token: str) -> None:
    """One-character edits, truncations, swaps and reordered parts of a valid token fail."""
    await refused(token)


@FUZZ
@given(
    st.sampled_from(VALID),
    st.lists(st.sampled_from(["header", "payload", "signature"]), min_size=1, unique=True),
    st.data(),
)
async def test_reencoded_segments(token: str, targets: list[str], data: st.DataObject) -> None:
    """Replacing whole segments with other valid base64url data never verifies."""
    segments = dict(zip(["header", "payload", "signature"], token.split(".")))
    for name in targets:
        segments[name] = b64(data.draw(st.binary(max_size=300)))
    assume(".".join(segments.values()) != token)
    await refused(".".join(segments.values()))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=10,
)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["alg", "kid", "typ", "cty", "x5t", "zip", "b64", "crit", "x"]),
        JSON,
    ),
    st.dictionaries(st.sampled_from(list(access_claims())), JSON),
)
async def test_signed_random_headers_and_claims(
    header: dict[str, Any], changes: dict[str, Any]
) -> None:
    """Correctly signed tokens with random header members and claim values raise TokenError only.

    ``iss``/``typ``/``aud`` are replaced, so none of these tokens is valid.
    """
    header = {"alg": "RS256", "kid": "rsa-1", **header}
    claims = {**access_claims(), **changes, "iss": "https://other"}
    try:
        token = forge(header, json.dumps(claims).encode(), rsa_key())
    except Exception:  # joserfc cannot sign with this alg: send it unsigned
        token = forge(header, json.dumps(claims).encode(), None)
    await refused(token)


@FUZZ
@given(st.sampled_from(VALID), st.integers(1, 3))
async def test_non_canonical_signature_spellings_never_verify(token: str, bits: int) -> None:
    """Setting unused bits of the signature's last character keeps its bytes, not its validity."""
    head, _, signature = token.rpartition(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    unused = {2: 0b1111, 3: 0b11}.get(len(signature) % 4)
    assume(unused is not None and bits & unused)
    last = alphabet[alphabet.index(signature[-1]) | (bits & unused)]
    assume(last != signature[-1])
    await refused(f"{head}.{signature[:-1]}{last}")


def reference_b64url(segment: str) -> bytes | None:
    """Strict unpadded base64url the slow, obvious way; ``None``: refused."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    if any(c not in alphabet for c in segment) or len(segment) % 4 == 1:
        return None
    bits = "".join(f"{alphabet.index(c):06b}" for c in segment)
    whole = len(bits) // 8
    if "1" in bits[whole * 8 :]:  # unused bits of the last character must be zero
        return None
    return bytes(int(bits[i : i + 8], 2) for i in range(0, whole * 8, 8))


@FUZZ
@given(st.text(alphabet=TOKEN_CHARS + "\n\x00é", max_size=64) | st.binary(max_size=48).map(b64))
def test_both_base64url_decoders_match_the_definition(segment: str) -> None:
    """pybase64 (the service's) and binascii (a downstream's without it) decode and refuse alike."""
    assert tokens_module._decode_padded is not tokens_module._binascii_decode  # pybase64 in use
    expected = reference_b64url(segment)
    for decoder in (tokens_module._decode_padded, tokens_module._binascii_decode):
        try:
            got: bytes | None = tokens_module._b64url_decode(segment, decoder)
        except ValueError:
            got = None
        assert got == expected, decoder.__name__
