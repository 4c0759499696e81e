"""RFC 6238 matching: parameters, window, format checks, injectable clock."""

from __future__ import annotations

import urllib.parse

import pyotp
import pytest

from auth_service.mfa.totp import SECRET_BYTES, TotpCodes, new_secret, otpauth_uri

# RFC 6238 appendix B, SHA-1: the ASCII seed "12345678901234567890", 8 digits there.
RFC_SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_matches_rfc6238_vectors_truncated_to_six_digits() -> None:
    """At T=59 the RFC's SHA-1 code is 94287082; six digits are its last six."""
    codes = TotpCodes(window=0, clock=Clock(59))
    assert codes.match(RFC_SECRET, "287082") == 1
    assert TotpCodes(clock=Clock(1111111109)).match(RFC_SECRET, "081804") is not None


def test_secrets_have_160_bits_and_are_random() -> None:
    """Base32 without padding, 20 random bytes, never repeating."""
    s = new_secret()
    assert len(s) == 32 and SECRET_BYTES * 8 >= 160
    assert len(pyotp.TOTP(s).byte_secret()) == 20
    assert len({new_secret() for _ in range(100)}) == 100


@pytest.mark.parametrize(
    ("offset", "window", "ok"),
    [
        (0, 1, True),
        (-1, 1, True),
        (1, 1, True),
        (-2, 1, False),
        (2, 1, False),
        (1, 0, False),
        (2, 2, True),
        (-3, 2, False),
    ],
)
def test_window(offset: int, window: int, ok: bool) -> None:
    """A code ``offset`` steps from now matches iff ``|offset| <= window``; the step is returned."""
    secret, clock = new_secret(), Clock(1_700_000_015.0)
    codes = TotpCodes(window=window, clock=clock)
    code = pyotp.TOTP(secret).at(clock() + 30 * offset)
    step = codes.match(secret, code)
    if ok:
        assert step == codes.step() + offset
    else:
        # Unless by chance the same code also belongs to an accepted step.
        assert step is None or codes.code_at(secret, step) == code


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "12 34 5", "١٢٣٤٥٦"])
def test_malformed_codes_never_match(code: str) -> None:
    """Wrong length, letters and non-ASCII digits are refused before any comparison."""
    assert TotpCodes(clock=Clock(0)).match(new_secret(), code) is None


def test_spaces_are_ignored() -> None:
    """Users may type "123 456"."""
    secret, clock = new_secret(), Clock(1_700_000_015.0)
    code = pyotp.TOTP(secret).at(clock())
    assert TotpCodes(clock=clock).match(secret, f" {code[:3]} {code[3:]} ") is not None


def test_otpauth_uri_carries_the_parameters() -> None:
    """The URI names issuer and account and the RFC 6238 parameters pyotp also reads."""
    secret = new_secret()
    uri = otpauth_uri(secret, account="alice@example.com", issuer="ACME Auth")
    parsed = pyotp.parse_uri(uri)
    assert isinstance(parsed, pyotp.TOTP)
    assert parsed.secret == secret and parsed.issuer == "ACME Auth"
    assert parsed.name == "alice@example.com" and parsed.digits == 6 and parsed.interval == 30
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)
    assert query["algorithm"] == ["SHA1"]


def test_window_is_bounded() -> None:
    """A negative or huge window is a configuration error."""
    with pytest.raises(ValueError):
        TotpCodes(window=-1)
    with pytest.raises(ValueError):
        TotpCodes(window=11)
