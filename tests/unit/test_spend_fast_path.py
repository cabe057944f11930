"""The spend hot paths (msgspec straight from bytes) decide exactly as the strict path.

``records.decode`` reads a well-formed spend record, single or batch, in one typed
msgspec pass, and a record that pass cannot vouch for with one untyped msgspec pass;
anything else goes to the strict path (stdlib JSON with duplicate-key, NaN and range
hooks, then the typed layer). These tests generate records with wrong values, missing,
unknown, null and repeated keys and varied formatting, and require the same record or
the same stable code from every path, so no fast path can accept what the contract
refuses.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pacer_stream.errors import InvalidRecord
from pacer_stream.wire import records, topics

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)
BASE: dict[str, Any] = {
    "schema_version": 1,
    "event_id": "evt-1",
    "campaign_id": "camp-1",
    "channel": "google_ads",
    "amount_micros": 1_500_000,
    "event_time": "2026-03-02T10:00:00Z",
    "clicks": 1,
    "conversions": 0,
    "impressions": 10,
    "revenue_micros": None,
    "reservation_id": None,
    "source": "gads",
}
ODD_VALUES = st.sampled_from(
    [
        0, -1, 1.0, 1.5, 2**53, 2**53 - 1, 10**30, True, None, "", " ", "1", [], {},
        "a{b}", "a\u00a0b", "é" * 200, "x" * 129, "tab\there", "2026-03-02 10:00:00Z",
        "2026-03-02T10:00:00.1234567Z", "2026-03-02T10:00:60Z", "2026-03-02",
        "2026-03-02T10:00:00+01:00", "2000-01-01T00:00:00Z", "2999-01-01T00:00:00Z",
        "video", "tv", 2, "google_ads",
    ]
)  # fmt: skip


def strict(payload: bytes) -> object:
    """The strict path alone (what decode did before the fast paths)."""
    data = records._load(payload, records.MAX_BATCH_BYTES)
    return records._decode_obj(topics.SPEND, data, records._context(NOW, 28, 300))


def typed(payload: bytes) -> object:
    """The typed pass alone: a record, or None (left to the other paths)."""
    return records._typed_spend(payload, records._context(NOW, 28, 300))


def outcome(decode: Any, payload: bytes) -> object:
    try:
        return decode(payload)
    except InvalidRecord as exc:
        return exc.code


def fast(payload: bytes) -> object:
    return records.decode(topics.SPEND, payload, now=NOW)


def assert_paths_agree(payload: bytes) -> None:
    """``decode`` (every path) gives the strict path's record or code; the typed pass
    alone gives the same record or leaves the payload to the others."""
    expected = outcome(strict, payload)
    assert outcome(fast, payload) == expected
    assert typed(payload) in (None, expected)


def with_repeated_key(text: str, name: str, value: object) -> str:
    """A JSON object's text with ``name`` written once more, as ``value``, at its end."""
    return text[:-1] + f', "{name}": {json.dumps(value)}' + "}"


def without_nulls(record: dict[str, Any]) -> dict[str, Any]:
    """The record with its optional fields absent instead of null (the typed pass
    takes only such records; the others take the paths after it)."""
    return {k: v for k, v in record.items() if v is not None}


@st.composite
def spend_payloads(draw: st.DrawFn) -> bytes:
    record = dict(BASE) if draw(st.booleans()) else without_nulls(BASE)
    for name in draw(st.lists(st.sampled_from(sorted(BASE)), max_size=3)):
        record[name] = draw(ODD_VALUES)
    for name in draw(st.lists(st.sampled_from(sorted(BASE)), max_size=2)):
        record.pop(name, None)
    if draw(st.booleans()):
        record[draw(st.sampled_from(["extra", "Clicks", "amount"]))] = 1
    separators = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,", " : ")]))
    text = json.dumps(record, separators=separators, ensure_ascii=draw(st.booleans()))
    if draw(st.booleans()) and len(record) > 1:
        text = with_repeated_key(text, draw(st.sampled_from(sorted(record))), draw(ODD_VALUES))
    return text.encode("utf-8")


@settings(max_examples=400, deadline=None)
@given(spend_payloads())
def test_fast_path_decides_as_the_strict_path(payload: bytes) -> None:
    assert_paths_agree(payload)


EVENT: dict[str, Any] = {
    k: v for k, v in BASE.items() if k not in ("schema_version", "campaign_id")
}
ENVELOPE: dict[str, Any] = {"schema_version": 1, "campaign_id": "camp-1", "source": "conn"}


@st.composite
def batch_payloads(draw: st.DrawFn) -> bytes:
    """A batch whose envelope and events may each carry the faults above, plus events
    that repeat the batch's campaign id (allowed) or name another (refused)."""
    envelope = dict(ENVELOPE)
    if draw(st.booleans()):
        envelope[draw(st.sampled_from(sorted(ENVELOPE)))] = draw(ODD_VALUES)
    if draw(st.booleans()):
        envelope.pop(draw(st.sampled_from(sorted(ENVELOPE))), None)
    events = []
    nulls = draw(st.booleans())
    for i in range(draw(st.integers(1, 4))):
        event = {**(EVENT if nulls else without_nulls(EVENT)), "event_id": f"evt-{i}"}
        for name in draw(st.lists(st.sampled_from(sorted(EVENT)), max_size=2)):
            event[name] = draw(ODD_VALUES)
        if draw(st.booleans()):
            event.pop(draw(st.sampled_from(sorted(EVENT))), None)
        if draw(st.integers(0, 5)) == 0:
            event["campaign_id"] = draw(st.sampled_from(["camp-1", "camp-2", None]))
        if draw(st.integers(0, 7)) == 0:
            event[draw(st.sampled_from(["extra", "schema_version"]))] = 1
        events.append(event)
    separators = draw(st.sampled_from([(",", ":"), (", ", ": ")]))
    text = json.dumps({**envelope, "events": events}, separators=separators)
    if draw(st.integers(0, 4)) == 0:
        name = draw(st.sampled_from(["campaign_id", "source", "events"]))
        text = with_repeated_key(text, name, draw(ODD_VALUES))
    return text.encode("utf-8")


@settings(max_examples=400, deadline=None)
@given(batch_payloads())
def test_batches_decide_as_the_strict_path(payload: bytes) -> None:
    assert_paths_agree(payload)


def test_a_clean_record_takes_the_typed_pass() -> None:
    payload = json.dumps(without_nulls(BASE)).encode()
    assert typed(payload) is not None
    assert records._fast_load(payload) is not None
    assert outcome(fast, payload) == outcome(strict, payload)
    event = without_nulls(EVENT)
    batch = json.dumps({**ENVELOPE, "events": [event, event | {"event_id": "e2"}]}).encode()
    assert typed(batch) == outcome(strict, batch)


def test_a_null_or_absent_version_is_left_to_the_other_paths() -> None:
    with_null = json.dumps(BASE).encode()  # revenue_micros and reservation_id: null
    assert typed(with_null) is None
    assert outcome(fast, with_null) == outcome(strict, with_null)
    # One key short (no schema_version) and one null: the count alone would balance.
    unversioned = json.dumps({k: v for k, v in BASE.items() if k != "reservation_id"})
    unversioned = unversioned.replace('"schema_version": 1, ', "")
    assert typed(unversioned.encode()) is None
    assert outcome(fast, unversioned.encode()) == "missing_field"


def test_a_repeated_key_is_left_to_the_strict_path() -> None:
    payload = with_repeated_key(json.dumps(BASE), "clicks", 2).encode()
    assert records._fast_load(payload) is None
    assert typed(payload) is None
    assert outcome(fast, payload) == "duplicate_key"


def test_an_escaped_key_is_left_to_the_strict_path() -> None:
    payload = json.dumps(BASE).encode()[:-1] + b', "\\u0063licks": 2}'
    assert records._fast_load(payload) is None
    assert typed(payload) is None
    assert outcome(fast, payload) == "duplicate_key"


VALID_TIMES = st.sampled_from(
    [
        "2026-03-02T10:00:00Z", "2026-03-02t10:00:00z", "2026-03-02T10:00:00.5Z",
        "2026-03-02T10:00:00.123456789Z", "2026-03-02T11:30:00+01:30",
        "2026-03-02T05:00:00-05:00", "2026-03-02T10:00:00.000001-00:00",
    ]
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    VALID_TIMES,
    st.text(
        st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters='\\"{}'),
        min_size=1,
        max_size=40,
    ).filter(str.strip),
    st.integers(0, 2**53 - 1),
    st.booleans(),
)
def test_the_typed_pass_reads_valid_records_as_the_strict_path(
    time: str, event_id: str, amount: int, as_batch: bool
) -> None:
    event = without_nulls(EVENT) | {"event_id": event_id, "event_time": time}
    event["amount_micros"] = amount
    record = {**ENVELOPE, "events": [event]} if as_batch else BASE | event
    payload = json.dumps(without_nulls(record), ensure_ascii=False).encode()
    expected = outcome(strict, payload)
    got = typed(payload)
    assert got in (None, expected)
    if not isinstance(expected, str) and not getattr(expected, "rejected", ()):
        assert got == expected  # valid throughout: the typed pass must take it
