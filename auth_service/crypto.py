"""Encryption of secrets at rest: AES-256-GCM under ``AUTH_SECRET_KEYS``, with key rotation.

Every secret this service stores (signing keys in PostgreSQL, IdP tokens of
sessions in Redis, TOTP secrets) goes through one :class:`SecretBox`. The first
configured key encrypts; every configured key decrypts. To rotate, put a new key
first (``AUTH_SECRET_KEYS=k2:...,k1:...``): new blobs carry ``k2``, old ones still
open with ``k1`` until they are re-encrypted or expire, after which ``k1`` can go.

A blob describes itself, so it can be opened without knowing which key made it::

    0      1      2 ........ 2+n      2+n+12 ............ end
    | 0x01 |  n   | key id   | nonce  | ciphertext + 16-byte GCM tag |

The header (version, key id) is authenticated along with the caller's ``aad``,
so neither can be altered without :class:`DecryptionError`. ``aad`` ("additional
authenticated data") binds a blob to its context and is not stored: pass what
the secret belongs to (the kid of a signing key, the subject of a TOTP secret, the
session id of IdP tokens), so a blob copied into another row or key fails to
open. Prefix it with the kind of secret (``b"totp:" + sub``) when two kinds could
share identifiers. Nonces are 96 random bits, which NIST SP 800-38D allows
for up to 2**32 encryptions per key: rotate the key long before that.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from auth_service.config import SecretKey

__all__ = ("DecryptionError", "SecretBox", "derive_key", "key_id_of")

_VERSION = 1
_NONCE_BYTES = 12
_TAG_BYTES = 16


class DecryptionError(Exception):
    """A blob cannot be opened: malformed, unknown key id, tampered with, or wrong ``aad``.

    The message never contains key material or plaintext.
    """


def _split(blob: bytes) -> tuple[bytes, str, bytes, bytes]:
    """``(header, key id, nonce, ciphertext)``; `DecryptionError` if malformed."""
    if len(blob) < 2 or blob[0] != _VERSION:
        raise DecryptionError("not a secret blob of a known version")
    end = 2 + blob[1]
    if len(blob) < end + _NONCE_BYTES + _TAG_BYTES:
        raise DecryptionError("secret blob is truncated")
    try:
        key_id = blob[2:end].decode("ascii")
    except UnicodeDecodeError:
        raise DecryptionError("secret blob has an invalid key id") from None
    return blob[:end], key_id, blob[end : end + _NONCE_BYTES], blob[end + _NONCE_BYTES :]


def derive_key(key: SecretKey, purpose: str, length: int = 32) -> bytes:
    """A subkey of one ``AUTH_SECRET_KEYS`` entry for ``purpose`` (HKDF-SHA-256, RFC 5869).

    Each use of the configured keys other than `SecretBox` encryption (say, the
    audit chain's MAC key) gets its own subkey, so no key is used by two
    algorithms and no subkey reveals the key it came from. ``purpose`` is the
    HKDF ``info``; the key id is bound in as well.
    """
    if len(key.key) != 32:
        raise ValueError(f"secret key {key.id!r} must be 32 bytes")
    info = f"auth-service/{purpose}/{key.id}".encode()
    hkdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=b"auth-service hkdf v1", info=info)
    return hkdf.derive(key.key)


def key_id_of(blob: bytes) -> str:
    """The id of the key that encrypted ``blob`` (to find blobs still under an old key).

    Raises:
        DecryptionError: if ``blob`` is not a secret blob.
    """
    return _split(blob)[1]


class SecretBox:
    """Encrypts with the first key, decrypts with any; see the module docstring.

    Args:
        keys: ``Settings.secret_keys``: at least one, 32 bytes each, unique ids.

    Raises:
        ValueError: if ``keys`` is empty or a key is malformed.
    """

    __slots__ = ("_ciphers", "_primary")

    def __init__(self, keys: Sequence[SecretKey]) -> None:
        if not keys:
            raise ValueError("SecretBox needs at least one key")
        ciphers: dict[str, AESGCM] = {}
        for key in keys:
            if len(key.key) != 32:
                raise ValueError(f"secret key {key.id!r} must be 32 bytes")
            if not key.id or len(key.id) > 255 or not key.id.isascii() or key.id in ciphers:
                raise ValueError(f"secret key id {key.id!r} is empty, too long or repeated")
            ciphers[key.id] = AESGCM(key.key)
        self._ciphers = ciphers
        self._primary = keys[0].id

    def __repr__(self) -> str:
        return f"SecretBox(key_ids={list(self._ciphers)!r})"

    @property
    def primary_key_id(self) -> str:
        """Id of the key new blobs are encrypted with."""
        return self._primary

    def encrypt(self, plaintext: bytes, *, aad: bytes) -> bytes:
        """Encrypt ``plaintext`` bound to ``aad`` under the first key; a fresh nonce each call."""
        kid = self._primary.encode("ascii")
        header = bytes((_VERSION, len(kid))) + kid
        nonce = os.urandom(_NONCE_BYTES)
        return header + nonce + self._ciphers[self._primary].encrypt(nonce, plaintext, header + aad)

    def decrypt(self, blob: bytes, *, aad: bytes) -> bytes:
        """Open a blob made by `encrypt` with the same ``aad``.

        Raises:
            DecryptionError: unknown key id, malformed or tampered blob, or wrong ``aad``.
        """
        header, key_id, nonce, ciphertext = _split(blob)
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise DecryptionError(f"secret blob was encrypted with unknown key id {key_id!r}")
        try:
            return cipher.decrypt(nonce, ciphertext, header + aad)
        except InvalidTag:
            raise DecryptionError(
                "secret blob fails authentication (tampered or wrong aad)"
            ) from None
