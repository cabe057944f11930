"""The stream benchmark's arithmetic: how records become events/s and which request
rate counts as held (the figures themselves come from ``pacer-stream bench``)."""

from __future__ import annotations

from pacer_stream.bench.stream_bench import _highest_rate_held, _weighted_throughput


def _trip(rate: float, achieved: float, p99: float | None, timeouts: int = 0) -> dict[str, object]:
    return {
        "target_rate_per_s": rate,
        "achieved_rate_per_s": achieved,
        "p99_ms": p99,
        "timeouts": timeouts,
    }


def test_each_record_counts_the_events_it_carries() -> None:
    applied = {(0, 1, b"a"): 1_000, (0, 2, b"a"): 1_500, (1, 7, b"b"): 2_000}
    sizes = {(0, 1, b"a"): 100, (0, 2, b"a"): 300, (1, 7, b"b"): 600}
    assert _weighted_throughput(applied, sizes) == 1_000.0  # 1,000 events over 1 s


def test_the_highest_rate_held_needs_no_timeout_the_p99_and_the_rate_itself() -> None:
    trips = [
        _trip(250, 250, 12.0),
        _trip(1_000, 998, 41.0),
        _trip(2_000, 1_990, 48.0, timeouts=1),  # a timeout: not held
        _trip(3_000, 2_100, 30.0),  # the client could not even send at that rate
    ]
    assert _highest_rate_held(trips, 50.0) == 998
    assert _highest_rate_held(trips, 20.0) == 250
    assert _highest_rate_held([_trip(250, 250, 80.0)], 50.0) is None
    assert _highest_rate_held([_trip(250, 250, None)], 50.0) is None
