"""The state-bytes measurement reads the real codecs: its sections are the table value's
own parts, the value does not grow with the campaign's events, and an event's changelog
cost is its id record, its tombstone and its share of the value."""

from __future__ import annotations

from pacer_stream.bench import state_bytes
from pacer_stream.core import serde
from pacer_stream.streams import stored as stored_codec
from pacer_stream.streams.stored import Stored


def test_sections_are_parts_of_the_value() -> None:
    state = state_bytes.campaign(50)
    parts = state_bytes.breakdown(state)
    whole = len(serde.dumps(state))
    assert sum(parts.values()) <= whole
    assert {"a", "o", "ch.sp", "ch.pa"} <= set(parts)
    assert "d" not in parts  # the ids are records of their own


def test_the_value_does_not_grow_with_the_events() -> None:
    small, large = state_bytes.campaign(1_000), state_bytes.campaign(20_000)
    assert len(small.dedupe.expiry) == 1_000 and len(large.dedupe.expiry) == 20_000
    small_value = len(stored_codec.dumps(Stored(small, 0)))
    large_value = len(stored_codec.dumps(Stored(large, 0)))
    # Longer numbers in counters and rings; nothing per event (the ids alone would be
    # ~29 bytes each).
    assert abs(large_value - small_value) < 200


def test_measure_reports_the_encoded_value_and_the_id_records() -> None:
    res = state_bytes.measure(10, batch=10)
    value = len(stored_codec.dumps(Stored(state_bytes.campaign(10), 0)))
    assert res["value_bytes"] == value
    single = res["id_record_bytes_batch_1"] + res["id_deletion_bytes_batch_1"]
    assert 0 < res["id_deletion_bytes_batch_1"] < res["id_record_bytes_batch_1"]
    # one record holds a batch's ids: a shared key, so fewer bytes per event
    assert res["id_record_bytes_batch_10"] < res["id_record_bytes_batch_1"]
    assert res["changelog_bytes_per_event_batch_1"] == round(value + single, 1)
    assert res["changelog_bytes_per_event_batch_10"] > value / 10
