"""The spend hot path (msgspec straight from bytes) decides exactly as the strict path.

``records.decode`` reads a well-formed spend record with msgspec and hands anything
else to the strict path (stdlib JSON with duplicate-key, NaN and range hooks, then the
typed layer). These tests generate records with wrong values, missing, unknown and
repeated keys and varied formatting, and require the same record or the same stable
code from both paths, so the fast path can never accept what the contract refuses.
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
    """The strict path alone (what decode did before the fast path)."""
    data = records._load(payload, records.DEFAULT_MAX_PAYLOAD_BYTES)
    return records._decode_obj(topics.SPEND, data, records._context(NOW, 28, 300))


def outcome(decode: Any, payload: bytes) -> object:
    try:
        return decode(payload)
    except InvalidRecord as exc:
        return exc.code


def fast(payload: bytes) -> object:
    return records.decode(topics.SPEND, payload, now=NOW)


@st.composite
def spend_payloads(draw: st.DrawFn) -> bytes:
    record = dict(BASE)
    for name in draw(st.lists(st.sampled_from(sorted(BASE)), max_size=3)):
        record[name] = draw(ODD_VALUES)
    for name in draw(st.lists(st.sampled_from(sorted(BASE)), max_size=2)):
        record.pop(name, None)
    if draw(st.booleans()):
        record[draw(st.sampled_from(["extra", "Clicks", "amount"]))] = 1
    separators = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,", " : ")]))
    text = json.dumps(record, separators=separators, ensure_ascii=draw(st.booleans()))
    if draw(st.booleans()) and len(record) > 1:
        name = draw(st.sampled_from(sorted(record)))
        text = text[:-1] + f', "{name}": {json.dumps(draw(ODD_VALUES))}' + "}"
    return text.encode("utf-8")


@settings(max_examples=400, deadline=None)
@given(spend_payloads())
def test_fast_path_decides_as_the_strict_path(payload: bytes) -> None:
    assert outcome(fast, payload) == outcome(strict, payload)


def test_a_clean_record_takes_the_fast_path() -> None:
    payload = json.dumps(BASE).encode()
    assert records._fast_load(payload) is not None
    assert outcome(fast, payload) == outcome(strict, payload)


def test_a_repeated_key_is_left_to_the_strict_path() -> None:
    payload = json.dumps(BASE).encode()[:-1] + b', "clicks": 2}'
    assert records._fast_load(payload) is None
    assert outcome(fast, payload) == "duplicate_key"


def test_an_escaped_key_is_left_to_the_strict_path() -> None:
    payload = json.dumps(BASE).encode()[:-1] + b', "\\u0063licks": 2}'
    assert records._fast_load(payload) is None
    assert outcome(fast, payload) == "duplicate_key"
