"""The state-bytes measurement reads the real codec: its sections are the serialised
value's own parts, and the dedupe window is where an applied event's bytes go."""

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
    assert {"d", "a", "o", "ch.sp", "ch.pa"} <= set(parts)


def test_each_applied_event_grows_the_dedupe_window_and_nothing_else_much() -> None:
    small, large = state_bytes.campaign(100), state_bytes.campaign(200)
    assert len(small.dedupe.expiry) == 100 and len(large.dedupe.expiry) == 200
    grown = state_bytes.breakdown(large)["d"] - state_bytes.breakdown(small)["d"]
    total = len(stored_codec.dumps(Stored(large, 0))) - len(stored_codec.dumps(Stored(small, 0)))
    assert 0 < grown <= total
    assert grown >= total * 0.8  # the window is most of what an event adds


def test_measure_reports_the_encoded_value() -> None:
    res = state_bytes.measure(10, batch=10)
    assert res["value_bytes"] == len(stored_codec.dumps(Stored(state_bytes.campaign(10), 0)))
    assert res["changelog_bytes_per_event_batch_10"] == round(res["value_bytes"] / 10, 1)
