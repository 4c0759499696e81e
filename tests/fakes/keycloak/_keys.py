"""The realm's key ring: published signing keys, the encryption key and the internal HMAC key.

Mirrors a fresh Keycloak realm (KEYCLOAK.md §1.3): ``rsa-generated`` (RS256, ``use: sig``),
``rsa-enc-generated`` (RSA-OAEP, ``use: enc``) and ``hmac-generated-hs512`` (HS512, never
published, signs refresh tokens). RSA/EC kids are the 43-character base64url SHA-256 JWK
thumbprint; the HMAC kid is a UUID. All JWS work goes through joserfc.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OctKey, RSAKey

__all__ = ("SIGNING_ALGS", "KeyRing", "RingKey")

KeyStatus = Literal["active", "passive", "retired"]
SigningKey = RSAKey | ECKey

SIGNING_ALGS = ("RS256", "PS256", "ES256")
"""Asymmetric algorithms the stand-in can sign access, ID and logout tokens with."""

_ALL_ALGS = [*SIGNING_ALGS, "HS512"]


@dataclass
class RingKey:
    """One asymmetric key of the realm and its lifecycle state."""

    kid: str
    alg: str
    key: SigningKey
    status: KeyStatus
    """``active`` signs and is published, ``passive`` is only published, ``retired`` neither."""

    def public_jwk(self) -> dict[str, Any]:
        """The JWKS entry, shaped like Keycloak's (``kid, kty, alg, use`` + key material)."""
        material = self.key.as_dict(private=False)
        entry: dict[str, Any] = {"kid": self.kid, "kty": material["kty"], "alg": self.alg}
        entry["use"] = "enc" if self.alg == "RSA-OAEP" else "sig"
        for name in ("n", "e", "crv", "x", "y"):
            if name in material:
                entry[name] = material[name]
        return entry


def _generate(alg: str) -> SigningKey:
    params: dict[str, Any] = {"alg": alg, "use": "enc" if alg == "RSA-OAEP" else "sig"}
    if alg == "ES256":
        return ECKey.generate_key("P-256", parameters=params, auto_kid=True)  # type: ignore[arg-type]
    return RSAKey.generate_key(2048, parameters=params, auto_kid=True)  # type: ignore[arg-type]


class KeyRing:
    """Keys of one realm; the first active key of an algorithm is the one that signs."""

    def __init__(self) -> None:
        self.keys: dict[str, RingKey] = {}
        self.hmac_kid = str(uuid.uuid4())
        self.hmac_key = OctKey.generate_key(1024)  # 128 bytes, like hmac-generated-hs512
        self.enc_key = self._new("RSA-OAEP", "passive")
        self.active_kid = self.add("RS256", active=True)

    def _new(self, alg: str, status: KeyStatus) -> RingKey:
        key = _generate(alg)
        entry = RingKey(kid=str(key.kid), alg=alg, key=key, status=status)
        self.keys[entry.kid] = entry
        return entry

    def add(self, alg: str = "RS256", *, active: bool = False) -> str:
        """Add a published key; ``active`` makes it the signer for its algorithm (and, for RS256,
        the realm's default signer). Returns its kid."""
        if alg not in SIGNING_ALGS:
            raise ValueError(f"unsupported signing algorithm {alg!r}; use one of {SIGNING_ALGS}")
        if active:
            for other in self.keys.values():
                if other.alg == alg and other.status == "active":
                    other.status = "passive"
        entry = self._new(alg, "active" if active else "passive")
        if active and alg == "RS256":
            self.active_kid = entry.kid
        return entry.kid

    def retire(self, kid: str) -> None:
        """Stop publishing a key (it can still be used deliberately to mint stale tokens)."""
        entry = self.keys[kid]
        entry.status = "retired"
        if kid == self.active_kid:
            fallback = [k for k in self.signing_keys() if k.alg == "RS256"]
            if fallback:
                fallback[-1].status = "active"
                self.active_kid = fallback[-1].kid

    def signing_keys(self) -> list[RingKey]:
        """Published ``use: sig`` keys, oldest first."""
        return [k for k in self.keys.values() if k.status != "retired" and k.alg != "RSA-OAEP"]

    def jwks(self) -> dict[str, Any]:
        """The document served at ``/protocol/openid-connect/certs``."""
        published = [*self.signing_keys(), self.enc_key]
        return {"keys": [k.public_jwk() for k in published]}

    def pick(self, *, kid: str | None = None, alg: str | None = None) -> RingKey:
        """The key to sign with: by kid, else the active key of ``alg``, else the realm default."""
        if kid is not None:
            return self.keys[kid]
        if alg is None or alg == "RS256":
            return self.keys[self.active_kid]
        candidates = [k for k in self.keys.values() if k.alg == alg and k.status != "retired"]
        candidates.sort(key=lambda k: k.status != "active")
        if not candidates:
            raise KeyError(f"no {alg} key in the ring; call add_key({alg!r}) first")
        return candidates[0]

    def public_key_b64(self) -> str:
        """Base64 DER SubjectPublicKeyInfo of the active key (``GET /realms/{realm}``)."""
        der = self.keys[self.active_kid].key.as_der(private=False)
        return base64.b64encode(der).decode()

    def sign(
        self,
        claims: dict[str, Any],
        *,
        kid: str | None = None,
        alg: str | None = None,
        typ: str = "JWT",
        header_overrides: dict[str, Any] | None = None,
    ) -> str:
        """Sign ``claims`` with a ring key; header ``{"alg","typ","kid"}`` like Keycloak's."""
        entry = self.pick(kid=kid, alg=alg)
        header: dict[str, Any] = {"alg": entry.alg, "typ": typ, "kid": entry.kid}
        header.update(header_overrides or {})
        return jwt.encode(header, claims, entry.key, algorithms=_ALL_ALGS, default_type=None)

    def sign_internal(self, claims: dict[str, Any]) -> str:
        """Sign an internal (refresh) token: HS512 with the realm HMAC key, UUID kid."""
        header = {"alg": "HS512", "typ": "JWT", "kid": self.hmac_kid}
        return jwt.encode(header, claims, self.hmac_key, algorithms=["HS512"], default_type=None)

    def verify(self, token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """Verify a token signed by any ring key that is still published, or by the HMAC key.

        Returns ``(header, claims)`` or ``None``; does not check ``exp`` (callers do, against the
        stand-in's clock).
        """
        try:
            header = jws.extract_compact(token.encode()).protected
            kid = header.get("kid")
            if header.get("alg") == "HS512" and kid == self.hmac_kid:
                key: Any = self.hmac_key
            else:
                entry = self.keys.get(str(kid))
                if entry is None or entry.status == "retired" or entry.alg != header.get("alg"):
                    return None
                key = entry.key
            decoded = jwt.decode(token, key, algorithms=_ALL_ALGS)
        except (JoseError, ValueError, TypeError, UnicodeError):
            return None
        return dict(decoded.header), dict(decoded.claims)
