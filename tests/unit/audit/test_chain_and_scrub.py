"""Pure parts of the audit trail: chain sealing/verification, scrubbing, aggregation, cursors."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec
import pytest

from auth_service.audit.aggregate import MAX_PATHS, DenialAggregator
from auth_service.audit.chain import GENESIS, AuditRecord, EventFields, seal, verify_records
from auth_service.audit.events import AuditLog, scrub
from auth_service.audit.store import InvalidCursor, decode_cursor, encode_cursor
from tests.support.audit import KEYS

JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"


def chain(n: int, chain_id: str = "c1") -> list[AuditRecord]:
    prev, out = GENESIS, []
    for seq in range(1, n + 1):
        fields = EventFields(
            id=f"e{seq}",
            occurred_at=seq,
            type="logout",
            outcome="success",
            actor_sub="a",
            subject_sub=None,
            client_id=None,
            source_ip=None,
            user_agent=None,
            request_id=None,
            trace_id=None,
            reason=None,
            details={"k": seq},
            count=1,
        )
        r = seal(fields, chain_id=chain_id, seq=seq, prev_hash=prev, keys=KEYS)
        prev = r.hash
        out.append(r)
    return out


class TestChain:
    def test_intact_chains_verify(self) -> None:
        """Two intact chains produce two reports without a break."""
        reports = list(verify_records(chain(5, "a") + chain(3, "b"), KEYS))
        assert [(r.chain_id, r.events, r.broken) for r in reports] == [
            ("a", 5, None),
            ("b", 3, None),
        ]

    def test_modified_field_is_a_break_naming_the_event(self) -> None:
        """Changing any hashed field breaks the chain at that event."""
        records = chain(5)
        records[2] = msgspec.structs.replace(records[2], actor_sub="mallory")
        (report,) = verify_records(records, KEYS)
        assert report.broken is not None and report.broken.event_id == "e3"

    def test_gap_is_a_break(self) -> None:
        """A missing seq (deleted row) breaks the chain at the next event."""
        records = chain(5)
        del records[1]
        (report,) = verify_records(records, KEYS)
        assert report.broken is not None and report.broken.event_id == "e3"
        assert "missing" in report.broken.problem

    def test_chain_starting_after_retention_is_not_a_break(self) -> None:
        """A chain whose first months were dropped starts above seq 1 and still verifies."""
        (report,) = verify_records(chain(6)[3:], KEYS)
        assert report.broken is None and "starts at seq 4" in report.describe()

    def test_hash_survives_a_jsonb_round_trip(self) -> None:
        """Scrubbed details re-encode identically after a JSON decode (as read from jsonb)."""
        details = scrub({"f": 1.5, "big": 2**60, "s": "x", "l": [True, None]})
        first = chain(1)[0]
        fields = msgspec.structs.replace(first, details=details)
        r = seal(
            fields, chain_id=first.chain_id, seq=first.seq, prev_hash=first.prev_hash, keys=KEYS
        )
        decoded = msgspec.json.decode(msgspec.json.encode(r.details))
        again = msgspec.structs.replace(r, details=decoded)
        (report,) = verify_records([again], KEYS)
        assert report.broken is None


class Secret(msgspec.Struct):
    """Details with a secret hidden in several places."""

    refresh_token: str
    totp_code: str
    client_secret: str
    comment: str
    items: list[str]
    ok: str


class TestScrub:
    def test_secret_keys_and_token_values_are_redacted(self) -> None:
        """Keys naming credentials and JWT/bearer values never survive."""
        out = scrub(
            Secret(
                refresh_token="r",
                totp_code="123456",
                client_secret="s",
                comment=f"Bearer {JWT}",
                items=[JWT, "fine"],
                ok="visible",
            )
        )
        assert out == {
            "refresh_token": "[REDACTED]",
            "totp_code": "[REDACTED]",
            "client_secret": "[REDACTED]",
            "comment": "Bearer [REDACTED]",
            "items": ["[REDACTED]", "fine"],
            "ok": "visible",
        }

    def test_floats_and_huge_ints_become_strings(self) -> None:
        """Numbers that jsonb would not give back identically are stored as strings."""
        assert scrub({"a": 0.1, "b": 2**60, "c": 7}) == {"a": "0.1", "b": str(2**60), "c": 7}


class Sink:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def submit(self, fields: EventFields) -> bool:
        self.events.append(msgspec.structs.asdict(fields))
        return True


class Details(msgspec.Struct):
    """What forward-auth puts in a decision event."""

    rule: str
    method: str
    host: str
    path: str


class TestAggregation:
    def test_window_counts_repeats_and_summarises(self) -> None:
        """Same type/reason/source inside the window: first written, rest summarised once."""
        now = [0.0]
        sink = Sink()
        log = AuditLog(sink, aggregate_window=10, clock=lambda: now[0])
        for _ in range(5):
            log.emit("access.denied", outcome="denied", reason="missing_role", source_ip="10.0.0.1")
        log.emit("access.denied", outcome="denied", reason="missing_role", source_ip="10.0.0.2")
        assert len(sink.events) == 2
        now[0] = 11
        assert log.tick() == 1
        summary = sink.events[-1]
        assert summary["count"] == 4 and summary["details"]["aggregated"] is True

    def test_other_types_are_never_aggregated(self) -> None:
        """Login failures are each written."""
        sink = Sink()
        log = AuditLog(sink, aggregate_window=10)
        for _ in range(3):
            log.emit("login.failure", outcome="failure", reason="bad", source_ip="10.0.0.1")
        assert len(sink.events) == 3

    def test_key_limit_bounds_memory(self) -> None:
        """Beyond max_keys new keys are written individually instead of tracked."""
        agg = DenialAggregator(10, max_keys=1)
        assert agg.admit(("t", "r", None, None, None, "a"), 0, 0, {})[0]
        assert agg.admit(("t", "r", None, None, None, "b"), 0, 0, {})[0]
        assert agg.admit(("t", "r", None, None, None, "b"), 0, 0, {})[0]

    def test_only_equal_rule_caller_and_source_merge(self) -> None:
        """Different rule, actor, subject or source: separate windows, each first event written;
        the summary keeps the caller, the rule and the distinct paths."""
        now = [0.0]
        sink = Sink()
        log = AuditLog(sink, aggregate_window=10, clock=lambda: now[0])

        def deny(sub: str | None, rule: str, path: str, ip: str = "10.0.0.1") -> None:
            log.emit(
                "access.denied", outcome="denied", reason="missing_role", actor_sub=sub,
                subject_sub=sub, source_ip=ip,
                details=Details(rule=rule, method="GET", host="app.test", path=path),
            )  # fmt: skip

        deny(None, "admin", "/admin/x")
        deny("bob", "admin", "/admin/a")
        deny("carol", "admin", "/admin/a")
        deny("bob", "other", "/admin/a")
        deny("bob", "admin", "/admin/a", ip="10.0.0.2")
        assert len(sink.events) == 5
        for p in ("/admin/b", "/admin/c", "/admin/b"):
            deny("bob", "admin", p)
        assert len(sink.events) == 5
        now[0] = 11
        assert log.tick() == 1
        summary = sink.events[-1]
        assert (summary["actor_sub"], summary["subject_sub"], summary["count"]) == ("bob", "bob", 3)
        assert summary["details"]["rule"] == "admin"
        assert summary["details"]["paths"] == ["/admin/b", "/admin/c"]
        assert summary["details"]["paths_truncated"] is False

    def test_paths_are_bounded_with_a_truncated_flag(self) -> None:
        """Beyond MAX_PATHS distinct paths the list stops growing and says so; the count does not
        stop."""
        now = [0.0]
        sink = Sink()
        log = AuditLog(sink, aggregate_window=10, clock=lambda: now[0])
        for i in range(MAX_PATHS + 6):
            log.emit(
                "access.denied", outcome="denied", reason="missing_role", actor_sub="bob",
                details=Details(rule="r", method="GET", host="h", path=f"/p/{i}"),
            )  # fmt: skip
        log.tick(everything=True)
        summary = sink.events[-1]
        assert summary["count"] == MAX_PATHS + 5
        assert len(summary["details"]["paths"]) == MAX_PATHS
        assert summary["details"]["paths"][0] == "/p/1"
        assert summary["details"]["paths_truncated"] is True

    def test_emit_never_raises(self) -> None:
        """An unknown type is logged and counted, not raised into the request."""
        log = AuditLog(Sink())
        assert log.emit("nope", outcome="success") is None  # type: ignore[arg-type]
        assert log.failures == 1


class TestCursor:
    def test_round_trip(self) -> None:
        """A cursor decodes to the position it encodes."""
        at = dt.datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)
        ident = uuid.uuid4()
        assert decode_cursor(encode_cursor(at, ident)) == (at, ident)

    @pytest.mark.parametrize("bad", ["", "!!", "AAAA", "x" * 40])
    def test_garbage_is_refused(self, bad: str) -> None:
        """Anything else raises InvalidCursor."""
        with pytest.raises(InvalidCursor):
            decode_cursor(bad)


def test_a_summary_keeps_long_paths_methods_and_hosts_cut_short() -> None:
    """An open window holds at most MAX_PATHS values of at most MAX_VALUE_LENGTH each, so
    hostile 8 KiB paths from many source addresses cannot grow a worker's memory."""
    from auth_service.audit.aggregate import MAX_PATHS, MAX_VALUE_LENGTH, Window

    window = Window(key=("access.denied", "no_matching_rule", None, None, None, "::1"), opened=0.0)  # type: ignore[arg-type]
    for i in range(MAX_PATHS * 3):
        window.note(f"/{i}/" + "a" * 8000, f"{i}" + "X" * 5000, f"{i}" + "h" * 3000)
    assert len(window.paths) == len(window.methods) == len(window.hosts) == MAX_PATHS
    for values in (window.paths, window.methods, window.hosts):
        assert all(len(v) <= MAX_VALUE_LENGTH + 1 and v.endswith("…") for v in values)
    assert window.truncated
