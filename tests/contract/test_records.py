"""Strict decoding/encoding of every topic (pacer_stream.wire.records)."""

from __future__ import annotations

import base64
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from pacer_stream.core.ids import id_problem
from pacer_stream.core.money import MAX_MICROS
from pacer_stream.core.types import (
    Alert,
    AlertType,
    BreakerCause,
    BreakerTransition,
    CampaignConfig,
    ChannelConfig,
    ChannelType,
    CircuitBreakerState,
    Code,
    Decision,
    PaceSnapshot,
    PacingStrategy,
    Severity,
    SpendEvent,
    Thresholds,
)
from pacer_stream.errors import InvalidRecord
from pacer_stream.wire import records, topics
from pacer_stream.wire.records import (
    AlertRecord,
    BreakerRecord,
    BudgetRecord,
    CanSpendReply,
    CanSpendRequest,
    CommandRecord,
    CommandType,
    DlqRecord,
    ErrorCode,
    PaceRecord,
    SpendRecord,
    decode,
    encode,
)

from . import NOW, full_samples, load_corpus, minimal_samples

CORPUS = load_corpus()
ALL_SAMPLES = full_samples() + minimal_samples()


def _ids(samples: list[Any]) -> list[str]:
    return [f"{type(s).__name__}-{i}" for i, s in enumerate(samples)]


def _code(topic: str, payload: bytes | None, **kw: Any) -> str:
    with pytest.raises(InvalidRecord) as info:
        decode(topic, payload, **kw)
    return info.value.code


def _spend(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "schema_version": 1,
        "event_id": "evt-1",
        "campaign_id": "cmp-1",
        "channel": "google_ads",
        "amount_micros": 1_500_000,
        "event_time": "2026-03-02T10:00:00Z",
        "clicks": 3,
        "conversions": 1,
    }
    data.update(changes)
    return data


def _b(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


# ---------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("record", ALL_SAMPLES, ids=_ids(ALL_SAMPLES))
def test_round_trip(record: records.Record) -> None:
    payload = encode(record)
    decoded = decode(record.topic, payload, now=NOW)
    assert decoded == record
    assert type(decoded) is type(record)
    # canonical: encoding the decoded record gives the same bytes
    assert encode(decoded) == payload


@pytest.mark.parametrize("record", ALL_SAMPLES, ids=_ids(ALL_SAMPLES))
def test_encoding_shape(record: records.Record) -> None:
    payload = encode(record)
    data = json.loads(payload)
    compact = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    assert payload == compact
    assert next(iter(data)) == "schema_version"
    assert data["schema_version"] == 1
    assert "__faust" not in data
    assert None not in data.values(), "optional fields are omitted, not null"
    for name, value in data.items():
        if name.endswith("_micros"):
            assert type(value) is int
    assert records.record_key(record) is not None or isinstance(record, DlqRecord)


def test_decoded_types_are_precise() -> None:
    rec = records.decode_as(SpendRecord, _b(_spend(event_time="2026-03-02T11:00:00.5+01:00")))
    assert rec.channel is ChannelType.GOOGLE_ADS
    assert rec.event_time == datetime(2026, 3, 2, 10, 0, 0, 500000, tzinfo=UTC)
    assert rec.event_time.tzinfo is UTC
    assert rec.impressions is None and rec.source is None
    with pytest.raises(AttributeError):
        mutable: Any = rec
        mutable.amount_micros = 1


def test_times_accept_rfc3339_variants() -> None:
    cases = {
        "2026-03-02T10:00:00Z": datetime(2026, 3, 2, 10, tzinfo=UTC),
        "2026-03-02t10:00:00z": datetime(2026, 3, 2, 10, tzinfo=UTC),
        "2026-03-02T05:30:00-04:30": datetime(2026, 3, 2, 10, tzinfo=UTC),
        "2026-03-02T10:00:00-00:00": datetime(2026, 3, 2, 10, tzinfo=UTC),
        "2026-03-02T10:00:00.123456789Z": datetime(2026, 3, 2, 10, 0, 0, 123456, tzinfo=UTC),
        "2026-03-02T10:00:00.1Z": datetime(2026, 3, 2, 10, 0, 0, 100000, tzinfo=UTC),
    }
    for text, expected in cases.items():
        assert records.parse_time(text) == expected, text
    for bad in ["2026-03-02T10:00Z", "2026-3-2T10:00:00Z", "20260302T100000Z",
                "2026-03-02T10:00:00+0100", "2026-03-02T10:00:00.Z", "0000-01-01T00:00:00Z",
                "2026-03-02T24:00:00Z", "2026-03-02T10:00:00+01:60",
                "\u0662026-03-02T10:00:00Z"]:
        with pytest.raises(InvalidRecord) as info:
            records.parse_time(bad)
        assert info.value.code == "invalid_time", bad


def test_format_time() -> None:
    assert records.format_time(datetime(2026, 3, 2, 11, tzinfo=timezone(timedelta(hours=1)))) == (
        "2026-03-02T10:00:00Z"
    )
    assert records.format_time(datetime(5, 1, 1, microsecond=7, tzinfo=UTC)) == (
        "0005-01-01T00:00:00.000007Z"
    )
    with pytest.raises(InvalidRecord):
        records.format_time(datetime(2026, 3, 2))


def test_optional_fields_may_be_null() -> None:
    rec = decode(topics.SPEND, _b(_spend(impressions=None, reservation_id=None, source=None)))
    assert isinstance(rec, SpendRecord) and rec.impressions is None


def test_output_topics_ignore_unknown_fields_inputs_reject_them() -> None:
    for record in full_samples():
        data = json.loads(encode(record))
        data["added_in_a_later_v1"] = {"x": 1}
        if record.topic in topics.INPUT_TOPICS:
            assert _code(record.topic, _b(data)) == "unknown_field"
        else:
            assert decode(record.topic, _b(data)) == record


def test_unknown_topic() -> None:
    assert _code("pacer.nope.v1", _b(_spend())) == "unknown_topic"


def test_input_topics_reject_unknown_fields_in_nested_channel() -> None:
    data = json.loads(encode(full_samples()[1]))
    data["channels"]["google_ads"]["paused"] = True
    assert _code(topics.BUDGETS, _b(data)) == "unknown_field"


# ------------------------------------------------------------------------ bad-input corpus


def test_corpus_is_complete() -> None:
    """docs/targets.md names these kinds of bad input; each is in the corpus."""
    codes = {case.code for case in CORPUS}
    for code in ["invalid_json", "non_finite_number", "number_out_of_range",
                 "float_not_allowed", "unknown_channel", "duplicate_key", "missing_field",
                 "wrong_type", "payload_too_large", "unknown_schema_version",
                 "time_in_future", "time_too_old", "invalid_time"]:
        assert code in codes
    names = {case.name for case in CORPUS}
    for name in ["nan_amount", "infinity_amount", "huge_amount_2_53", "float_amount",
                 "negative_amount", "non_utf8", "top_level_array", "naive_time",
                 "far_future", "far_past", "oversized"]:
        assert name in names
    assert len(names) == len(CORPUS)
    assert {case.code for case in CORPUS} <= {c.value for c in ErrorCode}
    assert {case.topic for case in CORPUS} <= set(topics.ALL_TOPICS)


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_corpus_rejected_with_stable_code(case: Any) -> None:
    with pytest.raises(InvalidRecord) as info:
        decode(case.topic, case.payload, now=NOW)
    assert info.value.code == case.code, info.value.message
    assert isinstance(info.value, ValueError)
    assert info.value.message


@pytest.mark.parametrize(
    "case",
    [c for c in CORPUS if c.code not in {"time_in_future", "time_too_old"}],
    ids=[c.name for c in CORPUS if c.code not in {"time_in_future", "time_too_old"}],
)
def test_corpus_code_does_not_depend_on_the_clock(case: Any) -> None:
    for now in (None, NOW, NOW + timedelta(days=400), NOW - timedelta(days=400)):
        with pytest.raises(InvalidRecord) as info:
            decode(case.topic, case.payload, now=now)
        assert info.value.code == case.code


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_corpus_goes_to_dlq_intact(case: Any) -> None:
    with pytest.raises(InvalidRecord) as info:
        decode(case.topic, case.payload, now=NOW)
    dlq = records.encode_dlq(
        case.topic, 2, 77, b"cmp-1", case.payload, info.value.code, info.value.message, NOW
    )
    entry = decode(topics.DLQ, dlq)
    assert isinstance(entry, DlqRecord)
    assert entry.payload == case.payload
    assert entry.error_code == case.code
    assert entry.payload_size == len(case.payload)
    assert (entry.source_topic, entry.partition, entry.offset) == (case.topic, 2, 77)


# ------------------------------------------------------------------------- specific checks


def test_time_window_boundaries() -> None:
    horizon = NOW - timedelta(days=28)
    ok = [horizon, NOW + timedelta(seconds=300)]
    for t in ok:
        decode(topics.SPEND, _b(_spend(event_time=records.format_time(t))), now=NOW)
    too_old = records.format_time(horizon - timedelta(microseconds=1))
    too_new = records.format_time(NOW + timedelta(seconds=300, microseconds=1))
    assert _code(topics.SPEND, _b(_spend(event_time=too_old)), now=NOW) == "time_too_old"
    assert _code(topics.SPEND, _b(_spend(event_time=too_new)), now=NOW) == "time_in_future"
    # parameters
    decode(topics.SPEND, _b(_spend(event_time=too_old)), now=NOW, history_days=29)
    decode(topics.SPEND, _b(_spend(event_time=too_new)), now=NOW, max_future_skew_s=301)
    # no clock, no window
    decode(topics.SPEND, _b(_spend(event_time="1999-01-01T00:00:00Z")))
    # budgets are compacted: old configurations stay valid
    old_budget = json.loads(encode(minimal_samples()[1]))
    old_budget["updated_at"] = "2001-01-01T00:00:00Z"
    decode(topics.BUDGETS, _b(old_budget), now=NOW)


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError):
        decode(topics.SPEND, _b(_spend()), now=datetime(2026, 3, 2))


def test_payload_limit_parameter_and_types() -> None:
    payload = _b(_spend())
    decode(topics.SPEND, payload, max_bytes=len(payload))
    assert _code(topics.SPEND, payload, max_bytes=len(payload) - 1) == "payload_too_large"
    decode(topics.SPEND, bytearray(payload))
    decode(topics.SPEND, memoryview(payload))
    assert _code(topics.SPEND, None) == "empty_payload"
    bad: Any = payload.decode()
    assert _code(topics.SPEND, bad) == "wrong_type"
    # the DLQ topic accepts larger entries (a wrapped 64 KiB payload)
    big = records.encode_dlq(topics.SPEND, 0, 0, None, b"x" * 70_000, "payload_too_large",
                             "too big", NOW)
    assert len(big) > records.DEFAULT_MAX_PAYLOAD_BYTES
    assert isinstance(decode(topics.DLQ, big), DlqRecord)


def test_nesting_limit() -> None:
    ok: dict[str, Any] = {"schema_version": 1}
    inner: Any = 1
    for _ in range(records.MAX_DEPTH - 1):
        inner = [inner]
    ok["x"] = inner
    assert _code(topics.SPEND, _b(ok)) == "unknown_field"  # parsed, then refused
    ok["x"] = [inner]
    assert _code(topics.SPEND, _b(ok)) == "invalid_json"
    assert _code(topics.SPEND, b"[" * 60_000) == "invalid_json"
    # brackets inside strings do not count
    text = _spend(source="{[" * 50 + '\\"' + "]}" * 3)
    assert isinstance(decode(topics.SPEND, _b(text)), SpendRecord)


def test_integer_limits() -> None:
    top = MAX_MICROS
    rec = decode(topics.SPEND, _b(_spend(amount_micros=top, clicks=top)))
    assert isinstance(rec, SpendRecord) and rec.amount_micros == top
    assert _code(topics.SPEND, _b(_spend(amount_micros=top + 1))) == "number_out_of_range"
    assert _code(topics.SPEND, _b(_spend(amount_micros=-top - 1))) == "number_out_of_range"
    assert _code(topics.SPEND, b'{"schema_version":1,"x":1e-400}') == "unknown_field"
    assert _code(topics.SPEND, _b(_spend(amount_micros=-0.0))) == "float_not_allowed"
    rec = decode(topics.SPEND, _spend_text_with("amount_micros", "-0"))
    assert isinstance(rec, SpendRecord) and rec.amount_micros == 0


def _spend_text_with(name: str, literal: str) -> bytes:
    data = _spend(**{name: "@@"})
    return json.dumps(data).replace('"@@"', literal).encode()


def test_ids() -> None:
    decode(topics.SPEND, _b(_spend(event_id="e" * 128, campaign_id="Ünïcødé ✓ 広告")))
    assert _code(topics.SPEND, _b(_spend(event_id="e" * 129))) == "invalid_id"
    assert _code(topics.SPEND, _b(_spend(event_id="a\u0085b"))) == "invalid_id"
    assert _code(topics.SPEND, _b(_spend(event_id="\ud800"))) == "invalid_id"
    assert _code(topics.SPEND, _b(_spend(source=""))) == "empty_id"


@pytest.mark.parametrize(
    "campaign_id",
    ["a{b}", "non\u00a0breaking", "é" * 200, "zero\u200bwidth", "line\u2028sep"],
)
def test_one_id_rule_for_the_wire_the_engine_and_redis(campaign_id: str) -> None:
    """An id the Redis keys refuse is refused on the wire and by the engine too, with
    the same code (before, such a campaign was accepted and never got an allowance)."""
    from pacer_stream.adapters import keys
    from pacer_stream.core.engine import PacingEngine
    from pacer_stream.errors import InvalidArgument

    assert _code(topics.SPEND, _b(_spend(campaign_id=campaign_id))) == "invalid_id"
    with pytest.raises(InvalidArgument) as engine_error:
        PacingEngine().new_campaign(campaign_id)
    with pytest.raises(InvalidArgument) as keys_error:
        keys.check_campaign_id(campaign_id)
    assert engine_error.value.code == keys_error.value.code == "invalid_id"
    assert "{" not in campaign_id or keys.check_id(campaign_id, "request_id")


def test_budget_to_core() -> None:
    rec = full_samples()[1]
    assert isinstance(rec, BudgetRecord)
    config = rec.to_core()
    assert config.channels[ChannelType.SEARCH] == ChannelConfig(
        50_000_000, PacingStrategy.PERFORMANCE_WEIGHTED
    )
    assert config.thresholds.max_hourly_spend_pct == 0.2
    assert config.thresholds.breaker_cooldown_s == 120
    assert config.thresholds.pace_warning_threshold == Thresholds().pace_warning_threshold
    assert config.timezone == "America/New_York"
    back = BudgetRecord.from_core(config, updated_at=rec.updated_at)
    # only values that differ from the defaults are written (target_roas None is default)
    assert back.overrides() == {k: v for k, v in rec.overrides().items() if k != "target_roas"}
    assert back.to_core() == config
    assert records.encode_budget(config, updated_at=rec.updated_at)


def test_budget_thresholds_types() -> None:
    data = json.loads(encode(minimal_samples()[1]))
    data["thresholds"] = {"pace_warning_threshold": 2, "frontload_protection_hours": 0}
    rec = decode(topics.BUDGETS, _b(data))
    assert isinstance(rec, BudgetRecord)
    assert rec.overrides() == {"pace_warning_threshold": 2.0, "frontload_protection_hours": 0}
    assert type(rec.overrides()["pace_warning_threshold"]) is float
    assert rec.to_core().thresholds.pace_critical_threshold == 2.0
    data["thresholds"] = {"pace_warning_threshold": True}
    assert _code(topics.BUDGETS, _b(data)) == "wrong_type"
    data["thresholds"] = []
    assert _code(topics.BUDGETS, _b(data)) == "wrong_type"
    sample = minimal_samples()[1]
    assert isinstance(sample, BudgetRecord)
    with pytest.raises(InvalidRecord) as info:
        replace(sample, thresholds=records.threshold_overrides({"nope": 1}))
    assert info.value.code == "unknown_threshold"


def test_spend_conversion() -> None:
    event = SpendEvent("e", "c", ChannelType.VIDEO, 5, NOW, 1, 0, 10, 7, "r")
    rec = SpendRecord.from_core(event, source="sim")
    assert rec.to_core() == event
    assert decode(topics.SPEND, records.encode_spend(event, source="sim")) == rec


def test_command_rules_and_signing() -> None:
    cmd = full_samples()[2]
    assert isinstance(cmd, CommandRecord)
    signed = cmd.signing_bytes()
    assert b"signature" not in signed
    data = json.loads(signed)
    assert list(data) == sorted(data)
    assert replace(cmd, signature="other").signing_bytes() == signed
    assert replace(cmd, nonce="n-3").signing_bytes() != signed
    for command in CommandType:
        base = {"schema_version": 1, "command_id": "c", "campaign_id": "x",
                "command": command.value, "reason": "", "issued_at": "2026-03-02T11:00:00Z"}
        if command is CommandType.FORCE_BREAKER:
            assert _code(topics.COMMANDS, _b(base)) == "missing_field"
            base.update(channel="search", state="half_open")
        rec = decode(topics.COMMANDS, _b(base), now=NOW)
        assert isinstance(rec, CommandRecord) and rec.command is command
    # an old command is still decodable (verification decides about expiry)
    base["issued_at"] = "2020-01-01T00:00:00Z"
    decode(topics.COMMANDS, _b(base), now=NOW)


def test_request_helpers_and_reply() -> None:
    req = full_samples()[3]
    assert isinstance(req, CanSpendRequest)
    assert req.deadline == req.requested_at + timedelta(milliseconds=50)
    assert req.reply_topic == "bidder-7.replies"
    assert replace(req, reply_to=None).reply_topic == topics.CAN_SPEND_REPLIES
    decision = Decision(False, Code.HOURLY_CAP, "hourly cap reached", 1234,
                        pacing_multiplier=0.5)
    reply = decode(topics.CAN_SPEND_REPLIES, records.encode_reply(req, decision, decided_at=NOW))
    assert isinstance(reply, CanSpendReply)
    assert (reply.request_id, reply.allowed, reply.code, reply.remaining_micros) == (
        "req-1", False, Code.HOURLY_CAP, 1234)
    assert reply.to_core() == decision


def test_core_output_encoders() -> None:
    alert = Alert(
        "a1", "c1", ChannelType.SEARCH, AlertType.WARNING_OVERPACING, Severity.MEDIUM, 1.6,
        10, 100, 0.1, 0.05, 0, "slow down", NOW, {"pace_warning_threshold": 1.5},
    )
    got = decode(topics.ALERTS, records.encode_alert(alert))
    assert isinstance(got, AlertRecord) and got.to_core() == alert
    transition = BreakerTransition(
        "c1", ChannelType.SEARCH, CircuitBreakerState.CLOSED, CircuitBreakerState.OPEN,
        BreakerCause.EMERGENCY_STOP, NOW, None, True,
    )
    got_b = decode(topics.BREAKERS, records.encode_breaker(transition))
    assert isinstance(got_b, BreakerRecord) and got_b.to_core() == transition
    assert records.record_key(got_b) == b"c1:search"
    snap = PaceSnapshot(
        campaign_id="c1", channel=ChannelType.SEARCH, at=NOW, budget_micros=100,
        spent_micros=50, reserved_micros=1, planned_micros=60, pace_ratio=50 / 60,
        time_elapsed_pct=0.5, hour_allowance_micros=8, hour_spent_micros=2,
        breaker=CircuitBreakerState.CLOSED, clicks=9, conversions=1,
    )
    got_p = decode(topics.PACE, records.encode_pace(snap))
    assert isinstance(got_p, PaceRecord) and got_p.to_core() == snap


def test_absent_optional_output_fields_convert_to_the_core_defaults() -> None:
    """Output readers are tolerant: a record without its optional fields (an older
    producer) still converts to the core's types, absent numbers as 0, a flag as False."""
    samples = {type(r): r for r in minimal_samples()}
    pace = decode(topics.PACE, encode(samples[PaceRecord]))
    assert isinstance(pace, PaceRecord) and pace.impressions is None
    core = pace.to_core()
    assert (core.impressions, core.revenue_micros, core.pacing_multiplier) == (0, 0, 0.0)
    assert core.performance == {}
    breaker = decode(topics.BREAKERS, encode(samples[BreakerRecord]))
    assert isinstance(breaker, BreakerRecord)
    assert breaker.to_core().forced is False
    assert breaker.to_core().previous is breaker.state
    reply = decode(topics.CAN_SPEND_REPLIES, encode(samples[CanSpendReply]))
    assert isinstance(reply, CanSpendReply) and reply.to_core().pacing_multiplier == 0.0
    alert = decode(topics.ALERTS, encode(samples[AlertRecord]))
    assert isinstance(alert, AlertRecord)
    assert (alert.to_core().budget_micros, alert.to_core().projected_overspend_micros) == (0, 0)


def test_encode_refuses_what_decode_would_refuse() -> None:
    alert = full_samples()[5]
    assert isinstance(alert, AlertRecord)
    for bad, code in [
        (replace(alert, pace_ratio=math.inf), "non_finite_number"),
        (replace(alert, pace_ratio=math.nan), "non_finite_number"),
        (replace(alert, at=datetime(2026, 3, 2)), "invalid_time"),
        (replace(alert, current_spend_micros=-1), "number_out_of_range"),
        (replace(alert, current_spend_micros=2**70), "number_out_of_range"),
        (replace(alert, alert_id=""), "empty_id"),
    ]:
        with pytest.raises(InvalidRecord) as info:
            encode(bad)
        assert info.value.code == code
    # without validation the cheap guards remain: no NaN-as-null, no naive times
    with pytest.raises(InvalidRecord):
        encode(replace(alert, pace_ratio=math.nan), validate=False)
    with pytest.raises(InvalidRecord):
        encode(replace(alert, at=datetime(2026, 3, 2)), validate=False)
    # ... nested too: a pace snapshot's performance figures are taken as they are only
    # when finite
    pace = next(r for r in full_samples() if isinstance(r, PaceRecord))
    for figure in (math.nan, math.inf):
        with pytest.raises(InvalidRecord) as info:
            encode(replace(pace, performance={"today": {"roas": figure}}), validate=False)
        assert info.value.code == "non_finite_number"
    assert b'"roas":2.5' in encode(replace(pace, performance={"today": {"roas": 2.5}}))
    spend = full_samples()[0]
    wrong: Any = replace(spend, channel="myspace")  # type: ignore[arg-type]
    with pytest.raises(InvalidRecord) as info:
        encode(wrong)
    assert info.value.code == "unknown_channel"
    with pytest.raises(InvalidRecord) as info:
        encode(replace(spend, amount_micros=1.5))  # type: ignore[arg-type]
    assert info.value.code == "float_not_allowed"
    with pytest.raises(InvalidRecord):
        encode(object())  # type: ignore[arg-type]


def test_encode_dlq_truncates_and_sanitises() -> None:
    payload = b"\x00" * (records.DLQ_KEEP_BYTES + 10)
    raw = records.encode_dlq("weird.topic", -1, -1, None, payload, "bad\x00code",
                             "boom \x00\x1b[31m \ud800" + "x" * 10_000, NOW)
    entry = decode(topics.DLQ, raw)
    assert isinstance(entry, DlqRecord)
    assert entry.payload == payload[: records.DLQ_KEEP_BYTES]
    assert entry.payload_truncated and entry.payload_size == len(payload)
    assert entry.key is None and "key_b64" not in json.loads(raw)
    assert entry.error_code == "bad?code"
    assert len(entry.error) == records.MAX_TEXT_LENGTH and "\x00" not in entry.error
    tombstone = decode(topics.DLQ, records.encode_dlq(topics.BUDGETS, 1, 2, b"k", None,
                                                      "empty_payload", "tombstone", NOW))
    assert isinstance(tombstone, DlqRecord)
    assert tombstone.payload == b"" and tombstone.key == b"k"
    wire = json.loads(records.encode_dlq(topics.SPEND, 0, 1, b"\xff", b"\x00\xff", "x", "y", NOW))
    assert base64.b64decode(wire["payload_b64"]) == b"\x00\xff"
    assert base64.b64decode(wire["key_b64"]) == b"\xff"


def test_keys() -> None:
    for record in full_samples():
        records.check_key(record, records.record_key(record))
    spend = full_samples()[0]
    with pytest.raises(InvalidRecord) as info:
        records.check_key(spend, b"cmp-2")
    assert info.value.code == "key_mismatch"
    with pytest.raises(InvalidRecord):
        records.check_key(spend, None)
    key = records.breaker_key("a:b", ChannelType.SEARCH)
    assert key == b"a:b:search"
    assert records.parse_breaker_key(key) == ("a:b", ChannelType.SEARCH)
    for bad in (b"nochannel", b"c:myspace", b":search", b"\xff:search"):
        with pytest.raises(InvalidRecord):
            records.parse_breaker_key(bad)


def test_from_dict_matches_decode() -> None:
    data = _spend()
    assert records.from_dict(topics.SPEND, data) == decode(topics.SPEND, _b(data))
    with pytest.raises(InvalidRecord) as info:
        records.from_dict(topics.SPEND, _spend(amount_micros=math.nan))
    assert info.value.code == "float_not_allowed"
    with pytest.raises(InvalidRecord) as info:
        records.from_dict(topics.ALERTS, {**json.loads(encode(full_samples()[5])),
                                          "pace_ratio": math.inf})
    assert info.value.code == "non_finite_number"
    with pytest.raises(InvalidRecord) as info:
        records.from_dict(topics.SPEND, [])  # type: ignore[arg-type]
    assert info.value.code == "invalid_json"
    assert records.to_dict(full_samples()[0]) == json.loads(encode(full_samples()[0]))


def test_record_types_cover_all_topics() -> None:
    assert set(records.RECORD_TYPES) == set(topics.ALL_TOPICS)
    for topic, cls in records.RECORD_TYPES.items():
        assert cls.topic == topic


def test_error_codes_are_stable_strings() -> None:
    # Renaming a code breaks DLQ consumers and dashboards: this list only grows.
    assert {c.value for c in ErrorCode} >= {
        "empty_payload", "payload_too_large", "invalid_json", "duplicate_key",
        "non_finite_number", "float_not_allowed", "number_out_of_range", "missing_field",
        "unknown_field", "wrong_type", "unknown_schema_version", "unknown_topic",
        "unknown_channel", "unknown_strategy", "unknown_command", "unknown_value",
        "invalid_time", "time_too_old", "time_in_future", "invalid_amount", "invalid_budget",
        "empty_id", "invalid_id", "invalid_text", "invalid_timezone", "unknown_threshold",
        "invalid_threshold", "invalid_command", "invalid_topic_name", "invalid_base64",
        "key_mismatch",
    }


def test_timezones() -> None:
    data = json.loads(encode(minimal_samples()[1]))
    for tz in ("UTC", "Europe/Berlin", "Asia/Kathmandu", "America/St_Johns"):
        data["timezone"] = tz
        decode(topics.BUDGETS, _b(data))
    for tz in ("", "utc/x", "../../etc/passwd", "/etc/localtime", "localtime", "Europe/berlin ",
               "+01:00"):
        data["timezone"] = tz
        assert _code(topics.BUDGETS, _b(data)) == "invalid_timezone", tz


# ------------------------------------------------------------------------------ properties

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
topic_names = st.sampled_from(topics.ALL_TOPICS)
PROPERTY_SETTINGS = settings(max_examples=300, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow])


def _decode_only_invalid_record(topic: str, payload: bytes) -> None:
    try:
        result = decode(topic, payload, now=NOW)
    except InvalidRecord as exc:
        assert exc.code in {c.value for c in ErrorCode}
    else:
        assert isinstance(result, tuple(records.RECORD_TYPES.values()))
        # whatever decodes re-encodes, and decodes again to the same record
        assert decode(topic, encode(result)) == result


@PROPERTY_SETTINGS
@given(topic=topic_names, payload=st.binary(max_size=300))
def test_arbitrary_bytes_only_raise_invalid_record(topic: str, payload: bytes) -> None:
    _decode_only_invalid_record(topic, payload)


@PROPERTY_SETTINGS
@given(topic=topic_names, value=json_values)
def test_arbitrary_json_only_raises_invalid_record(topic: str, value: Any) -> None:
    _decode_only_invalid_record(topic, json.dumps(value).encode())


@PROPERTY_SETTINGS
@given(
    sample=st.sampled_from(full_samples() + minimal_samples()),
    changes=st.dictionaries(
        st.sampled_from(["schema_version", "event_id", "campaign_id", "channel",
                         "amount_micros", "event_time", "clicks", "thresholds", "channels",
                         "command", "state", "deadline_ms", "allowed", "code", "payload_b64",
                         "pace_ratio", "at", "since", "timezone", "strategy", "reply_to",
                         "partition", "cause", "severity", "alert_type", "breaker"]),
        json_values | st.sampled_from(["2026-03-02T10:00:00Z", "search", "open", "UTC", 0, 1]),
        max_size=3,
    ),
    drops=st.sets(st.sampled_from(["schema_version", "campaign_id", "channel", "at"]),
                  max_size=1),
)
def test_mutated_records_only_raise_invalid_record(
    sample: records.Record, changes: dict[str, Any], drops: set[str]
) -> None:
    data = json.loads(encode(sample))
    data.update(changes)
    for name in drops:
        data.pop(name, None)
    _decode_only_invalid_record(sample.topic, json.dumps(data).encode())


@PROPERTY_SETTINGS
@given(payload=st.binary(max_size=200), key=st.none() | st.binary(max_size=20),
       error=st.text(max_size=50), code=st.text(max_size=10))
def test_any_failure_can_be_dead_lettered(
    payload: bytes, key: bytes | None, error: str, code: str
) -> None:
    raw = records.encode_dlq(topics.SPEND, 0, 0, key, payload, code, error, NOW)
    entry = decode(topics.DLQ, raw)
    assert isinstance(entry, DlqRecord) and entry.payload == payload and entry.key == key


ids = st.text(
    st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40
).filter(lambda s: id_problem(s, campaign=True) is None)
micros = st.integers(0, MAX_MICROS)
times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)),
                               timezone(-timedelta(hours=8))]),
)
spend_records = st.builds(
    SpendRecord,
    event_id=ids, campaign_id=ids, channel=st.sampled_from(ChannelType), amount_micros=micros,
    event_time=times, clicks=micros, conversions=micros,
    impressions=st.none() | micros, revenue_micros=st.none() | micros,
    reservation_id=st.none() | ids, source=st.none() | ids,
)


@PROPERTY_SETTINGS
@given(record=spend_records)
def test_spend_round_trip_property(record: SpendRecord) -> None:
    decoded = decode(topics.SPEND, encode(record))
    assert decoded == record
    assert isinstance(decoded, SpendRecord) and decoded.event_time.tzinfo is UTC


@PROPERTY_SETTINGS
@given(
    budgets=st.dictionaries(st.sampled_from(ChannelType),
                            st.builds(ChannelConfig, st.integers(1, MAX_MICROS),
                                      st.none() | st.sampled_from(PacingStrategy)),
                            min_size=1),
    strategy=st.sampled_from(PacingStrategy),
    warning=st.floats(0.1, 10.0),
    hours=st.integers(0, 24),
)
def test_budget_round_trip_property(
    budgets: dict[ChannelType, ChannelConfig], strategy: PacingStrategy, warning: float,
    hours: int,
) -> None:
    config = CampaignConfig(
        "cmp", budgets, strategy, "Europe/Paris",
        Thresholds(pace_warning_threshold=warning, pace_critical_threshold=warning * 2,
                   frontload_protection_hours=hours),
    )
    rec = decode(topics.BUDGETS, records.encode_budget(config, updated_at=NOW))
    assert isinstance(rec, BudgetRecord)
    assert rec.to_core() == config


def test_orjson_and_stdlib_agree_on_output() -> None:
    for record in ALL_SAMPLES:
        payload = encode(record)
        assert orjson.loads(payload) == json.loads(payload)


# ------------------------------------------------- msgspec errors -> stable codes (paths)


def _sample(index: int) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(encode(full_samples()[index]))
    return data


@pytest.mark.parametrize(
    ("index", "change", "code"),
    [
        (1, {"channels": {"search": {"daily_budget_micros": 0}}}, "invalid_budget"),
        (1, {"channels": {"search": {"daily_budget_micros": -1}}}, "number_out_of_range"),
        (1, {"channels": {"search": {"daily_budget_micros": 1, "strategy": "x"}}},
         "unknown_strategy"),
        (1, {"channels": {"radio": {"daily_budget_micros": 1}}}, "unknown_channel"),
        (1, {"channels": {}}, "invalid_budget"),
        (1, {"channels": {"search": {}}}, "missing_field"),
        (1, {"thresholds": {"max_hourly_spend_pct": 1.5}}, "invalid_threshold"),
        (1, {"thresholds": {"max_hourly_spend_pct": -0.5}}, "number_out_of_range"),
        (1, {"thresholds": {"breaker_cooldown_s": 1.5}}, "float_not_allowed"),
        (1, {"thresholds": {"no_such": 1}}, "unknown_threshold"),
        (1, {"timezone": ""}, "invalid_timezone"),
        (1, {"timezone": "Mars/Olympus"}, "invalid_timezone"),
        (2, {"reason": "a\x07b"}, "invalid_text"),
        (2, {"reason": "x" * 4097}, "invalid_text"),
        (2, {"command": "reboot"}, "unknown_command"),
        (3, {"amount_micros": 0}, "invalid_amount"),
        (3, {"deadline_ms": 0}, "number_out_of_range"),
        (3, {"reply_to": "bad topic"}, "invalid_topic_name"),
        (4, {"code": "maybe"}, "unknown_value"),
        (4, {"pacing_multiplier": -1}, "number_out_of_range"),
        (7, {"performance": {"today": {"x" * 65: 1}}}, "invalid_text"),
        (7, {"performance": {"today": {"roas": "high"}}}, "wrong_type"),
        (8, {"payload_b64": "not base64!"}, "invalid_base64"),
        (8, {"partition": -2}, "number_out_of_range"),
        (8, {"batch_index": 1000}, "number_out_of_range"),
    ],
)
def test_model_errors_map_to_stable_codes(index: int, change: dict[str, Any], code: str) -> None:
    data = {**_sample(index), **change}
    topic = full_samples()[index].topic
    assert _code(topic, json.dumps(data).encode()) == code
    with pytest.raises(InvalidRecord) as info:
        records.from_dict(topic, data)
    assert info.value.code == code
