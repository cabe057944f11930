"""Batch spend records on ``pacer.spend.v1``: the envelope is judged whole, each event on
its own (records.decode -> SpendBatchRecord)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from pacer_stream.core.types import ChannelType, SpendEvent
from pacer_stream.errors import InvalidRecord
from pacer_stream.wire import records, topics
from pacer_stream.wire.records import (
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    DlqRecord,
    SpendBatchRecord,
    SpendRecord,
    decode,
    encode_spend_batch,
)

from . import NOW

T = NOW - timedelta(hours=1)


def _event(i: int = 1, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "event_id": f"evt-{i}",
        "channel": "google_ads",
        "amount_micros": 1_000 * i,
        "event_time": "2026-03-02T11:00:00Z",
        "clicks": 1,
        "conversions": 0,
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not ...}


def _batch(events: list[Any], **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"schema_version": 1, "campaign_id": "cmp-1", "events": events}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not ...}


def _payload(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def _decode(payload: bytes, **kw: Any) -> SpendBatchRecord:
    record = decode(topics.SPEND, payload, now=NOW, **kw)
    assert isinstance(record, SpendBatchRecord)
    return record


def _code(payload: bytes, **kw: Any) -> str:
    with pytest.raises(InvalidRecord) as info:
        decode(topics.SPEND, payload, now=NOW, **kw)
    return info.value.code


def _core(i: int, campaign_id: str = "cmp-1", **changes: Any) -> SpendEvent:
    fields: dict[str, Any] = {
        "event_id": f"evt-{i}",
        "campaign_id": campaign_id,
        "channel": ChannelType.SEARCH,
        "amount_micros": 500 * i,
        "event_time": T + timedelta(seconds=i, microseconds=7),
        "clicks": i % 3,
        "conversions": i % 2,
    }
    fields.update(changes)
    return SpendEvent(**fields)


# ------------------------------------------------------------------------ round trip


def test_round_trip_keeps_every_event_in_order() -> None:
    events = [_core(1, impressions=10, revenue_micros=5, reservation_id="rsv-1"),
              _core(2), _core(3)]
    batch = _decode(encode_spend_batch("cmp-1", events, source="connector"))
    assert batch.campaign_id == "cmp-1"
    assert batch.source == "connector"
    assert batch.indexes == (0, 1, 2)
    assert batch.rejected == ()
    assert batch.events == tuple(SpendRecord.from_core(e, source="connector") for e in events)
    assert [e.to_core() for e in batch.events] == events


def test_batch_source_is_given_to_events_without_their_own() -> None:
    payload = _payload(_batch([_event(1), _event(2, source="own")], source="connector"))
    assert [e.source for e in _decode(payload).events] == ["connector", "own"]
    assert [e.source for e in _decode(_payload(_batch([_event(1)]))).events] == [None]


def test_encoded_batch_omits_what_the_batch_already_says() -> None:
    data = json.loads(encode_spend_batch("cmp-1", [_core(1)], source="connector"))
    assert list(data) == ["schema_version", "campaign_id", "events", "source"]
    assert "campaign_id" not in data["events"][0]
    assert "schema_version" not in data["events"][0]
    assert "source" not in data["events"][0]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(0, 10**6), min_size=1, max_size=20),
    st.sampled_from([None, "connector"]),
    st.booleans(),
)
def test_the_batch_from_encoded_events_is_what_the_generic_encoder_writes(
    ids: list[int], source: str | None, repeat_campaign: bool
) -> None:
    """``encode_spend_batch`` joins events encoded one by one (as ``SpendPublisher``
    does on publish); the bytes are those ``encode`` writes for the whole record."""
    events = [_core(i, reservation_id=f"r-{i}" if i % 2 else None) for i in ids]
    record = SpendBatchRecord(
        "cmp-1",
        tuple(SpendRecord.from_core(e) for e in events),
        tuple(range(len(events))),
        source=source,
    )
    assert encode_spend_batch("cmp-1", events, source=source) == records.encode(record)
    parts = [records.encode_batch_event(e, "cmp-1") for e in events]
    assert records.encode_batch("cmp-1", parts, source=source) == records.encode(record)


def test_a_refused_event_is_named_by_its_index() -> None:
    with pytest.raises(InvalidRecord) as info:
        encode_spend_batch("cmp-1", [_core(1), _core(2, event_id=" ")])
    assert info.value.code == "empty_id"
    assert info.value.message.startswith("events[1].event_id")


def test_batch_of_the_maximum_size_round_trips() -> None:
    events = [_core(i) for i in range(MAX_BATCH_EVENTS)]
    payload = encode_spend_batch("cmp-1", events)
    assert len(payload) <= MAX_BATCH_BYTES
    batch = _decode(payload)
    assert len(batch.events) == MAX_BATCH_EVENTS
    assert batch.indexes == tuple(range(MAX_BATCH_EVENTS))


def test_large_batch_is_decoded_without_the_stdlib_json_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A well-formed batch takes one msgspec pass: the strict stdlib parser is not run."""
    payload = encode_spend_batch("cmp-1", [_core(i) for i in range(MAX_BATCH_EVENTS)])

    def refuse(_: str) -> object:
        raise AssertionError("stdlib json pass on a well-formed batch")

    monkeypatch.setattr(records._JSON, "decode", refuse)
    assert len(_decode(payload).events) == MAX_BATCH_EVENTS


def test_duplicates_within_a_batch_are_kept() -> None:
    batch = _decode(_payload(_batch([_event(1), _event(1), _event(2)])))
    assert [e.event_id for e in batch.events] == ["evt-1", "evt-1", "evt-2"]
    assert batch.indexes == (0, 1, 2)


def test_event_may_repeat_the_batch_campaign() -> None:
    batch = _decode(_payload(_batch([_event(1, campaign_id="cmp-1"),
                                     _event(2, campaign_id=None)])))
    assert [e.campaign_id for e in batch.events] == ["cmp-1", "cmp-1"]
    assert batch.rejected == ()


def test_from_dict_reads_a_batch() -> None:
    record = records.from_dict(topics.SPEND, _batch([_event(1)]), now=NOW)
    assert isinstance(record, SpendBatchRecord)
    assert record.events[0].event_id == "evt-1"


def test_single_record_is_still_a_spend_record() -> None:
    single = {"schema_version": 1, "campaign_id": "cmp-1", **_event(1)}
    assert isinstance(decode(topics.SPEND, _payload(single), now=NOW), SpendRecord)


# ------------------------------------------------------------------- envelope errors


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ([_batch([_event()])], "invalid_json"),
        (_batch([_event()], campaign_id=...), "missing_field"),
        (_batch([_event()], campaign_id=7), "wrong_type"),
        (_batch([_event()], campaign_id=" "), "empty_id"),
        (_batch([_event()], campaign_id="cmp-{1}"), "invalid_id"),
        (_batch({"0": _event()}), "wrong_type"),
        (_batch("x"), "wrong_type"),
        (_batch([]), "empty_batch"),
        (_batch([_event(i) for i in range(MAX_BATCH_EVENTS + 1)]), "too_many_events"),
        (_batch([_event()], extra=1), "unknown_field"),
        (_batch([_event()], schema_version=2), "unknown_schema_version"),
        (_batch([_event()], schema_version="1"), "unknown_schema_version"),
        (_batch([_event()], schema_version=...), "missing_field"),
        (_batch([_event()], source=""), "empty_id"),
    ],
)
def test_envelope_error_refuses_the_whole_record(data: Any, code: str) -> None:
    assert _code(_payload(data)) == code


def test_document_level_faults_refuse_the_whole_record() -> None:
    good = _payload(_batch([_event(1), _event(2)])).decode()
    repeated = good.replace('"clicks":1,', '"clicks":1,"clicks":2,', 1)
    assert _code(repeated.encode()) == "duplicate_key"
    huge = good.replace('"clicks":1,', f'"clicks":{2**60},', 1)
    assert _code(huge.encode()) == "number_out_of_range"
    assert _code(good.replace("1000", "NaN", 1).encode()) == "non_finite_number"
    assert _code(good[:-2].encode()) == "invalid_json"


def test_batch_size_limit_is_its_own() -> None:
    events = [_event(i, source="s" * 100) for i in range(MAX_BATCH_EVENTS)]
    big = _payload(_batch(events))
    assert 64 * 1024 < len(big) <= MAX_BATCH_BYTES
    assert len(_decode(big).events) == MAX_BATCH_EVENTS
    assert _code(big, max_batch_bytes=len(big) - 1) == "payload_too_large"
    assert _code(big.ljust(MAX_BATCH_BYTES + 1)) == "payload_too_large"
    # max_bytes keeps limiting single records
    single = _payload({"schema_version": 1, "campaign_id": "cmp-1", **_event(1)})
    assert _code(single.ljust(64 * 1024 + 1)) == "payload_too_large"
    assert _code(single, max_bytes=len(single) - 1) == "payload_too_large"
    small_batch = _payload(_batch([_event(1)]))
    assert _decode(small_batch, max_bytes=10).events[0].event_id == "evt-1"


# ------------------------------------------------------------------- per-event errors


@pytest.mark.parametrize(
    ("event", "code"),
    [
        ("evt-1", "wrong_type"),
        (None, "wrong_type"),
        ([_event()], "wrong_type"),
        (_event(amount_micros=1.0), "float_not_allowed"),
        (_event(amount_micros=-1), "number_out_of_range"),
        (_event(amount_micros="1"), "wrong_type"),
        (_event(event_id=...), "missing_field"),
        (_event(clicks=...), "missing_field"),
        (_event(colour="red"), "unknown_field"),
        (_event(schema_version=1), "unknown_field"),
        (_event(channel="radio"), "unknown_channel"),
        (_event(event_time="2026-03-02 11:00:00"), "invalid_time"),
        (_event(event_time="2026-03-02T11:00:00"), "invalid_time"),
        (_event(event_id=" "), "empty_id"),
        (_event(event_id="a\u0007b"), "invalid_id"),
        (_event(campaign_id="cmp-2"), "key_mismatch"),
        (_event(campaign_id=7), "key_mismatch"),
        (_event(event_time="2000-01-01T00:00:00Z"), "time_too_old"),
        (_event(event_time="2999-01-01T00:00:00Z"), "time_in_future"),
    ],
)
def test_malformed_event_is_rejected_with_its_index(event: Any, code: str) -> None:
    batch = _decode(_payload(_batch([_event(1), event, _event(3)])))
    assert batch.indexes == (0, 2)
    assert [e.event_id for e in batch.events] == ["evt-1", "evt-3"]
    [rejected] = batch.rejected
    assert (rejected.index, rejected.code) == (1, code)
    assert rejected.message.startswith("events[1]")
    assert json.loads(rejected.payload) == event
    # the same event alone, as a single record, gets the same code
    if isinstance(event, dict) and "schema_version" not in event and "campaign_id" not in event:
        single = _payload({"schema_version": 1, "campaign_id": "cmp-1", **event})
        assert _code(single) == code


def test_mixed_batch_keeps_good_events_in_batch_order() -> None:
    events = [_event(1, channel="radio"), _event(2), _event(3, clicks=-1), _event(4),
              _event(5, campaign_id="cmp-9")]
    batch = _decode(_payload(_batch(events)))
    assert batch.indexes == (1, 3)
    assert [e.event_id for e in batch.events] == ["evt-2", "evt-4"]
    assert [(r.index, r.code) for r in batch.rejected] == [
        (0, "unknown_channel"), (2, "number_out_of_range"), (4, "key_mismatch")]


def test_strict_path_judges_events_like_the_fast_path() -> None:
    """A backslash escape sends the batch through the strict parser: same result."""
    events = [_event(1), _event(2, amount_micros=1.5), _event(3, channel="radio")]
    fast = _decode(_payload(_batch(events)))
    escaped = _payload(_batch(events)).replace(b'"evt-1"', b'"evt\\u002d1"')
    assert b"\\" in escaped
    strict = _decode(escaped)
    assert strict.events == fast.events
    assert strict.indexes == fast.indexes
    assert [(r.index, r.code) for r in strict.rejected] == [
        (r.index, r.code) for r in fast.rejected]


# ---------------------------------------------------------------- keys, encode, DLQ


def test_check_key_names_the_batch_campaign() -> None:
    batch = _decode(_payload(_batch([_event(1)])))
    records.check_key(batch, b"cmp-1")
    assert records.record_key(batch) == b"cmp-1"
    with pytest.raises(InvalidRecord) as info:
        records.check_key(batch, b"cmp-2")
    assert info.value.code == "key_mismatch"


@pytest.mark.parametrize(
    ("events", "code"),
    [
        ([], "empty_batch"),
        ([_core(1), _core(2, campaign_id="cmp-2")], "key_mismatch"),
        ([_core(i) for i in range(MAX_BATCH_EVENTS + 1)], "too_many_events"),
        ([_core(i, reservation_id="r" * 300) for i in range(MAX_BATCH_EVENTS)],
         "payload_too_large"),
    ],
)
def test_encode_refuses_what_decode_would(events: list[SpendEvent], code: str) -> None:
    with pytest.raises(InvalidRecord) as info:
        encode_spend_batch("cmp-1", events)
    assert info.value.code == code


def test_decode_as_refuses_the_other_shape() -> None:
    batch = encode_spend_batch("cmp-1", [_core(1)])
    single = records.encode_spend(_core(1))
    assert records.decode_as(SpendBatchRecord, batch).campaign_id == "cmp-1"
    for cls, payload in ((SpendRecord, batch), (SpendBatchRecord, single)):
        with pytest.raises(InvalidRecord) as info:
            records.decode_as(cls, payload)
        assert info.value.code == "wrong_type"


def test_rejected_event_goes_to_the_dlq_with_its_index() -> None:
    batch = _decode(_payload(_batch([_event(1), _event(2, clicks=1.5)])))
    [bad] = batch.rejected
    dlq = records.encode_dlq(topics.SPEND, 1, 40, b"cmp-1", bad.payload, bad.code,
                             bad.message, NOW, batch_index=bad.index)
    entry = decode(topics.DLQ, dlq)
    assert isinstance(entry, DlqRecord)
    assert (entry.batch_index, entry.error_code) == (1, "float_not_allowed")
    assert json.loads(entry.payload) == _event(2, clicks=1.5)
    whole = decode(topics.DLQ, records.encode_dlq(topics.SPEND, 1, 41, None, b"x",
                                                  "invalid_json", "x", NOW))
    assert isinstance(whole, DlqRecord) and whole.batch_index is None
    assert "batch_index" not in json.loads(records.encode(whole))
    with pytest.raises(InvalidRecord) as info:
        records.encode_dlq(topics.SPEND, 1, 42, None, b"x", "x", "x", NOW,
                           batch_index=MAX_BATCH_EVENTS)
    assert info.value.code == "number_out_of_range"


# ---------------------------------------------------------------------------- schema


def test_schema_accepts_encoded_batches_and_rejects_malformed_ones() -> None:
    validator = Draft202012Validator(topics.load_schema(topics.SPEND))
    good = json.loads(encode_spend_batch("cmp-1", [_core(1), _core(2)], source="c"))
    assert list(validator.iter_errors(good)) == []
    for bad in (
        _batch([]),
        _batch([_event(colour="red")]),
        _batch([_event(schema_version=1)]),
        _batch([_event()], extra=1),
        _batch([_event(i) for i in range(MAX_BATCH_EVENTS + 1)]),
    ):
        assert list(validator.iter_errors(bad)), bad


# ------------------------------------------------------- batch event == single record
# (document-level faults such as an integer beyond 2**53 - 1 refuse the whole batch:
# see test_document_level_faults_refuse_the_whole_record)

_ODD = st.sampled_from(
    [0, -1, 1.0, 1.5, True, None, "", " ", "1", [], {}, "a{b}", "x" * 129,
     "2026-03-02 10:00:00Z", "2026-03-02T10:00:60Z", "2000-01-01T00:00:00Z", "radio",
     "search"]
)  # fmt: skip
_FIELDS = sorted(_event(1, impressions=3, revenue_micros=1, reservation_id="r", source="s"))


@settings(max_examples=300, deadline=None)
@given(
    changed=st.dictionaries(st.sampled_from([*_FIELDS, "colour"]), _ODD, max_size=3),
    dropped=st.lists(st.sampled_from(_FIELDS), max_size=2),
)
def test_an_event_in_a_batch_is_judged_as_the_same_single_record(
    changed: dict[str, Any], dropped: list[str]
) -> None:
    event = {**_event(1, impressions=3, revenue_micros=1, reservation_id="r", source="s"),
             **changed}
    for name in dropped:
        event.pop(name, None)
    try:
        single: object = decode(topics.SPEND, _payload(
            {"schema_version": 1, "campaign_id": "cmp-1", **event}), now=NOW)
    except InvalidRecord as exc:
        single = exc.code
    batch = _decode(_payload(_batch([_event(0), event])))
    assert batch.indexes[0] == 0
    if isinstance(single, str):
        assert [(r.index, r.code) for r in batch.rejected] == [(1, single)]
    else:
        assert batch.rejected == ()
        assert batch.events[1] == single
