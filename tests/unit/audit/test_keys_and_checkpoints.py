"""Keyed sealing, key derivation, and reading published checkpoints back (pure parts)."""

from __future__ import annotations

import json

import msgspec
import pytest

from auth_service.audit.chain import ChainKeys, verify_records
from auth_service.audit.checkpoints import (
    CHECKPOINT_INTERVAL,
    Checkpoint,
    CheckpointList,
    InvalidCheckpoints,
    by_chain,
    parse_checkpoints,
)
from auth_service.config import SecretKey
from auth_service.crypto import derive_key
from tests.support.audit import KEY_1, KEY_2
from tests.unit.audit.test_chain_and_scrub import chain


class TestKeys:
    def test_subkeys_differ_by_purpose_and_key_and_never_equal_the_key(self) -> None:
        """HKDF subkeys: one per (key, purpose), none equal to the configured key."""
        a = derive_key(KEY_1, "audit-chain-mac-v1")
        assert a == derive_key(KEY_1, "audit-chain-mac-v1")
        assert a != derive_key(KEY_1, "other") and a != derive_key(KEY_2, "audit-chain-mac-v1")
        assert a != KEY_1.key and len(a) == 32

    def test_same_bytes_under_another_id_is_another_key(self) -> None:
        """The key id is bound into the derivation."""
        assert derive_key(SecretKey("x", KEY_1.key), "p") != derive_key(KEY_1, "p")

    def test_first_key_seals_and_every_key_verifies(self) -> None:
        """A chain sealed under a1 verifies with [a2, a1], not with [a2] alone."""
        records = chain(3)
        assert {r.key_id for r in records} == {"a1"}
        (ok,) = verify_records(records, ChainKeys([KEY_2, KEY_1]))
        assert ok.broken is None
        (bad,) = verify_records(records, ChainKeys([KEY_2]))
        assert bad.broken is not None and bad.broken.event_id == "e1"
        assert "'a1'" in bad.broken.problem

    def test_repr_shows_no_key_material(self) -> None:
        """A logged ChainKeys names ids only."""
        assert repr(ChainKeys([KEY_1])) == "ChainKeys(key_ids=['a1'])"


CP = Checkpoint(chain_id="c1", seq=3, mac="ab" * 32, key_id="a1", at="2026-12-06T20:00:00+00:00")


class TestParseCheckpoints:
    def test_json_log_lines_among_other_lines(self) -> None:
        """Structured log lines: only ``audit_checkpoint`` events are taken."""
        logged = {"event": "audit_checkpoint", "level": "info", **msgspec.to_builtins(CP)}
        text = "\n".join(
            [
                json.dumps({"event": "audit", "chain_id": "zz", "seq": 9, "mac": "00"}),
                "plain text line",
                json.dumps(logged),
                "{broken json",
            ]
        )
        assert parse_checkpoints(text) == [CP]

    def test_the_endpoints_json(self) -> None:
        """The body of ``GET /admin/audit-checkpoints``."""
        body = msgspec.json.encode(CheckpointList(checkpoints=[CP])).decode()
        assert parse_checkpoints(body) == [CP]

    @pytest.mark.parametrize("text", ["", "nothing here", '{"checkpoints": []}', '{"a": 1}'])
    def test_a_file_without_checkpoints_is_refused(self, text: str) -> None:
        """No checkpoint at all is an error, never a silent pass."""
        with pytest.raises(InvalidCheckpoints):
            parse_checkpoints(text)

    def test_by_chain_keeps_every_seq(self) -> None:
        """Several checkpoints of one chain are all checked."""
        later = msgspec.structs.replace(CP, seq=5, mac="cd" * 32)
        assert by_chain([CP, later]) == {"c1": {3: b"\xab" * 32, 5: b"\xcd" * 32}}

    def test_checkpoint_beyond_the_chain_names_the_missing_range(self) -> None:
        """A chain of 3 events checked against a checkpoint at seq 5: seq 4..5 missing."""
        records = chain(3)
        marks = {"c1": {5: b"\x00" * 32}}
        (report,) = verify_records(records, ChainKeys([KEY_1]), checkpoints=marks)
        assert report.broken is not None and "seq 4..5 missing" in report.broken.problem
        assert report.broken.event_id == "e3"

    def test_checkpoint_mac_must_match(self) -> None:
        """A checkpoint whose MAC differs from the stored event's is a break at that event."""
        records = chain(3)
        marks = {"c1": {2: b"\x00" * 32}}
        (report,) = verify_records(records, ChainKeys([KEY_1]), checkpoints=marks)
        assert report.broken is not None and report.broken.event_id == "e2"
        good = {"c1": {3: records[2].hash}}
        (ok,) = verify_records(records, ChainKeys([KEY_1]), checkpoints=good)
        assert ok.broken is None and ok.checkpoint_seq == 3


def test_writers_checkpoint_at_least_every_minute() -> None:
    """The default publication interval keeps the contract's "at least every minute"."""
    assert 0 < CHECKPOINT_INTERVAL <= 60
