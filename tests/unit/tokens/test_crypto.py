"""SecretBox: AES-256-GCM blobs that name their key, bind their context, survive rotation."""

from __future__ import annotations

import base64
import secrets

import pytest

from auth_service.config import SecretKey, load_settings
from auth_service.crypto import DecryptionError, SecretBox, key_id_of

K1 = SecretKey("k1", secrets.token_bytes(32))
K2 = SecretKey("k2", secrets.token_bytes(32))
ENV = {
    "AUTH_OIDC_ISSUER": "http://127.0.0.1:9/realms/acme",
    "AUTH_OIDC_CLIENT_SECRET": "x",
    "AUTH_PUBLIC_URL": "http://auth.test",
    "AUTH_DATABASE_URL": "postgresql://postgres@127.0.0.1/none",
    "AUTH_REDIS_URL": "redis://127.0.0.1:6379/0",
    "AUTH_POLICY_FILE": "policy.toml",
}


class TestRoundTrip:
    def test_decrypts_what_it_encrypted(self) -> None:
        """A blob opens with the same box and aad, and does not contain the plaintext."""
        box = SecretBox([K1])
        blob = box.encrypt(b"totp secret JBSWY3DPEHPK3PXP", aad=b"totp:user-1")
        assert box.decrypt(blob, aad=b"totp:user-1") == b"totp secret JBSWY3DPEHPK3PXP"
        assert b"JBSWY3DPEHPK3PXP" not in blob

    def test_blob_layout_is_self_describing(self) -> None:
        """Version 1, key id length and id, a 12-byte nonce, then ciphertext and 16-byte tag."""
        blob = SecretBox([K1]).encrypt(b"abc", aad=b"")
        assert blob[0] == 1
        assert blob[1] == 2 and blob[2:4] == b"k1"
        assert len(blob) == 4 + 12 + 3 + 16
        assert key_id_of(blob) == "k1"

    def test_each_encryption_uses_a_fresh_nonce(self) -> None:
        """Encrypting the same plaintext twice gives different blobs."""
        box = SecretBox([K1])
        assert box.encrypt(b"same", aad=b"a") != box.encrypt(b"same", aad=b"a")

    def test_empty_plaintext(self) -> None:
        """Empty secrets round-trip too."""
        box = SecretBox([K1])
        assert box.decrypt(box.encrypt(b"", aad=b"x"), aad=b"x") == b""


class TestRotation:
    def test_old_key_still_decrypts_after_reordering(self) -> None:
        """With ``AUTH_SECRET_KEYS=k2,k1``, blobs made under k1 still open."""
        old = SecretBox([K1]).encrypt(b"secret", aad=b"ctx")
        rotated = SecretBox([K2, K1])
        assert rotated.decrypt(old, aad=b"ctx") == b"secret"
        assert key_id_of(old) != rotated.primary_key_id

    def test_new_blobs_carry_the_first_key(self) -> None:
        """The first key encrypts: new blobs name k2, and a k1-only box cannot open them."""
        rotated = SecretBox([K2, K1])
        blob = rotated.encrypt(b"secret", aad=b"ctx")
        assert key_id_of(blob) == "k2" and rotated.primary_key_id == "k2"
        assert key_id_of(blob) == rotated.primary_key_id
        with pytest.raises(DecryptionError, match="unknown key id 'k2'"):
            SecretBox([K1]).decrypt(blob, aad=b"ctx")

    def test_works_with_keys_from_settings(self) -> None:
        """``Settings.secret_keys`` from ``k2:...,k1:...`` build a box that opens k1 blobs."""
        k1_b64, k2_b64 = (base64.b64encode(secrets.token_bytes(32)).decode() for _ in "12")
        before = load_settings({**ENV, "AUTH_SECRET_KEYS": f"k1:{k1_b64}"}, env_file=False)
        after = load_settings(
            {**ENV, "AUTH_SECRET_KEYS": f"k2:{k2_b64},k1:{k1_b64}"}, env_file=False
        )
        blob = SecretBox(before.secret_keys).encrypt(b"s", aad=b"a")
        box = SecretBox(after.secret_keys)
        assert box.decrypt(blob, aad=b"a") == b"s"
        assert key_id_of(box.encrypt(b"s", aad=b"a")) == "k2"


class TestFailures:
    def test_wrong_aad_fails(self) -> None:
        """A blob moved to another context (different aad) does not open."""
        box = SecretBox([K1])
        blob = box.encrypt(b"secret", aad=b"totp:alice")
        with pytest.raises(DecryptionError, match="tampered or wrong aad"):
            box.decrypt(blob, aad=b"totp:mallory")

    @pytest.mark.parametrize("position", [0, 1, 2, 4, 10, 20, -1])
    def test_any_tampered_byte_fails(self, position: int) -> None:
        """Flipping any byte (header, nonce, ciphertext or tag) makes decryption fail."""
        box = SecretBox([K1])
        blob = bytearray(box.encrypt(b"a secret of some length", aad=b"ctx"))
        blob[position] ^= 0x01
        with pytest.raises(DecryptionError):
            box.decrypt(bytes(blob), aad=b"ctx")

    def test_relabelled_key_id_fails(self) -> None:
        """Rewriting the key id to another known key fails: the header is authenticated."""
        blob = SecretBox([K1]).encrypt(b"secret", aad=b"ctx")
        forged = blob[:2] + b"k2" + blob[4:]
        with pytest.raises(DecryptionError):
            SecretBox([K1, K2]).decrypt(forged, aad=b"ctx")

    def test_unknown_key_id_fails(self) -> None:
        """A blob under a key the box does not hold is refused by name, without trying keys."""
        blob = SecretBox([K2]).encrypt(b"secret", aad=b"ctx")
        with pytest.raises(DecryptionError, match="unknown key id"):
            SecretBox([K1]).decrypt(blob, aad=b"ctx")

    @pytest.mark.parametrize("blob", [b"", b"\x01", b"\x02\x02k1" + bytes(28), b"\x01\x02k1short"])
    def test_malformed_blobs_fail(self, blob: bytes) -> None:
        """Empty, truncated or unknown-version blobs raise DecryptionError, not IndexError."""
        with pytest.raises(DecryptionError):
            SecretBox([K1]).decrypt(blob, aad=b"")
        with pytest.raises(DecryptionError):
            key_id_of(blob)

    def test_repr_hides_keys(self) -> None:
        """The box's repr names key ids only."""
        assert repr(SecretBox([K1, K2])) == "SecretBox(key_ids=['k1', 'k2'])"
        assert K1.key.hex() not in repr(SecretBox([K1]))


class TestConfiguration:
    @pytest.mark.parametrize(
        "keys",
        [[], [SecretKey("k1", b"short")], [K1, SecretKey("k1", secrets.token_bytes(32))]],
        ids=["none", "short-key", "duplicate-id"],
    )
    def test_bad_key_sets_are_refused(self, keys: list[SecretKey]) -> None:
        """No key, a key that is not 32 bytes, or a repeated id: ValueError at construction."""
        with pytest.raises(ValueError):
            SecretBox(keys)
