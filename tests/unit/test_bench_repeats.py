"""Several benchmark runs reported as one: the median of every figure and its range."""

from __future__ import annotations

import math

import pytest

from pacer_stream.bench.repeats import median_of, range_of


def _run(rate: float, ratio: float, p99: float | None, skipped: str | None = None) -> dict:
    return {
        "n_events": 20_000,
        "worker": {"events_per_s": rate, "lag": {"p99_ms": p99}},
        "ratio": ratio,
        "round_trips": [{"rate": 250, "p99_ms": p99}, {"rate": 1_000, "timeouts": 0}],
        "peer": {"skipped": skipped} if skipped else {"events_per_s": rate * 2},
    }


def test_every_number_is_the_median_over_the_runs_ratios_included() -> None:
    runs = [_run(9_000.0, 0.9, 40.0), _run(12_000.0, 1.4, 300.0), _run(10_000.0, 1.1, 60.0)]
    med = median_of(runs)
    assert med["worker"]["events_per_s"] == 10_000.0
    assert med["worker"]["lag"]["p99_ms"] == 60.0
    # The ratio is each run's own, then the median: not the ratio of two medians.
    assert med["ratio"] == 1.1
    assert med["round_trips"] == [{"rate": 250, "p99_ms": 60.0}, {"rate": 1_000, "timeouts": 0}]
    assert med["n_events"] == 20_000 and isinstance(med["n_events"], int)


def test_an_even_count_of_runs_reads_between_the_middle_two() -> None:
    med = median_of([{"x": 1}, {"x": 4}])
    assert med["x"] == 2.5
    assert median_of([{"x": 2}, {"x": 4}])["x"] == 3 and isinstance(median_of([2, 4]), int)


def test_a_figure_one_run_could_not_measure_has_no_median() -> None:
    runs = [_run(9_000.0, 0.9, 40.0), _run(12_000.0, 1.4, None)]
    med = median_of(runs)
    assert med["worker"]["lag"]["p99_ms"] is None
    assert math.isnan(median_of([1.0, math.nan, 3.0]))
    assert range_of(runs, ("worker", "lag", "p99_ms")) is None


def test_words_are_kept_only_when_every_run_says_the_same() -> None:
    same = median_of([_run(1.0, 1.0, 1.0, "not installed"), _run(2.0, 1.0, 1.0, "not installed")])
    assert same["peer"] == {"skipped": "not installed"}
    mixed = median_of([_run(1.0, 1.0, 1.0, "not installed"), _run(2.0, 1.0, 1.0)])
    # One run measured the peer, the other skipped it: no figure, no reason.
    assert mixed["peer"] == {"skipped": None, "events_per_s": None}


def test_the_range_is_the_lowest_and_highest_run() -> None:
    runs = [_run(9_000.0, 0.9, 40.0), _run(12_000.0, 1.4, 300.0), _run(10_000.0, 1.1, 60.0)]
    assert range_of(runs, ("worker", "events_per_s")) == (9_000.0, 12_000.0)
    assert range_of(runs, ("round_trips", 0, "p99_ms")) == (40.0, 300.0)
    assert range_of(runs, ("round_trips", 5, "p99_ms")) is None
    assert range_of(runs, ("nowhere",)) is None


def test_no_runs_is_an_error() -> None:
    with pytest.raises(ValueError):
        median_of([])
