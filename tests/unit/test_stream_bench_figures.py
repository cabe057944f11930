"""The stream benchmark's arithmetic: how records become events/s and which request
rate counts as held (the figures themselves come from ``pacer-stream bench``)."""

from __future__ import annotations

import os

import pytest

from pacer_stream.bench.stream_bench import (
    Applied,
    _cpu_us_per_event,
    _highest_rate_held,
    _pop_through,
    _sending_rate,
    _throughput,
)


def _trip(rate: float, achieved: float, p99: float | None, timeouts: int = 0) -> dict[str, object]:
    return {
        "target_rate_per_s": rate,
        "achieved_rate_per_s": achieved,
        "p99_ms": p99,
        "timeouts": timeouts,
    }


def test_each_record_counts_the_events_it_carries_from_the_start_on() -> None:
    applied = {(0, 1, b"a"): 1_500, (0, 2, b"a"): 1_500, (1, 7, b"b"): 2_000}
    sizes = {(0, 1, b"a"): 100, (0, 2, b"a"): 300, (1, 7, b"b"): 1_600}
    # 2,000 events from the start (1 s) to the last write (2 s): the time before the
    # first write (the first batch's work) counts.
    assert _throughput(applied, 1.0, sizes) == 2_000.0
    assert _throughput(applied, 1.0) == 3.0  # one event per record without sizes


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


def test_the_sending_rate_counts_the_span_of_the_sends_not_the_last_replies() -> None:
    # 15,000 requests at 3,000/s: the last is sent 14,999 / 3,000 s after the first.
    assert _sending_rate(15_000, 14_999 / 3_000) == pytest.approx(3_000.0)
    # A client that fell behind sent over a longer span: its rate reads lower.
    assert _sending_rate(15_000, 6.0) < 2_500
    assert _sending_rate(1, 0.0) == 1.0


def test_a_write_marks_every_earlier_record_of_its_campaign_applied_once() -> None:
    # An event-id record names the *last* record of its campaign in the applied batch:
    # the campaign's earlier records on the partition were applied by then, in the same
    # batch (their own id record is that one) or before; records after it are not.
    pending = {(0, b"a"): [9, 5, 3], (0, b"b"): [4], (1, b"a"): [2]}
    applied = Applied()
    _pop_through(pending, applied, 0, b"a", 5, 1_000)
    assert applied == {(0, 3, b"a"): 1_000, (0, 5, b"a"): 1_000}
    assert pending == {(0, b"a"): [9], (0, b"b"): [4], (1, b"a"): [2]}
    _pop_through(pending, applied, 0, b"a", 9, 2_000)  # a later write: only what is left
    _pop_through(pending, applied, 0, b"a", 9, 3_000)  # nothing left to mark
    assert applied[(0, 3, b"a")] == 1_000 and applied[(0, 9, b"a")] == 2_000
    assert (0, 4, b"b") not in applied and (1, 2, b"a") not in applied


def _bench_run(rate: float, p99: float, held: float | None) -> dict[str, object]:
    lag = {"p50_ms": p99 / 4, "p99_ms": p99}
    return {
        "n_campaigns": 200,
        "faust_worker": {
            "events_per_s": rate,
            "lag": lag,
            "live_rate_per_s": 1_000.0,
            "changelog_bytes_per_event": 30.0,
            "cpu_us_per_event": rate / 300,
        },
        "faust_worker_batched": {
            "events_per_s": rate * 2,
            "lag": lag,
            "live_rate_per_s": 5_000.0,
            "events_per_record": 1_000.0,
            "changelog_bytes_per_event": 31.0,
        },
        "plain_loop": {"events_per_s": rate},
        "peers": {"faust": {"events_per_s": rate}, "quix": {"events_per_s": rate * 2}},
        "faust_vs_trivial_agent": 1.0,
        "can_spend_round_trip": [_trip(1_000, 990, p99)],
        "can_spend_highest_rate_p99_50ms": held,
    }


def test_the_terminal_tables_give_the_median_and_the_range_of_several_runs() -> None:
    from rich.console import Console

    from pacer_stream.bench.repeats import median_of
    from pacer_stream.bench.stream_bench import show

    runs = [_bench_run(9_000.0, 40.0, 990.0), _bench_run(12_000.0, 300.0, None)]
    res = {**median_of(runs), "runs": 2, "per_run": runs}
    console = Console(record=True, width=250)
    show(res, console.print)
    text = console.export_text()
    assert "median of 2 runs" in text
    # Each rate's range on the line below it (narrow terminals fold, never cut a number).
    lines = text.splitlines()
    for median, spread in (("10,500", "(9,000-12,000)"), ("21,000", "(18,000-24,000)")):
        row = next(i for i, line in enumerate(lines) if median in line)
        assert spread in lines[row + 1]
    assert "170.0 (40.0-300.0)" in text  # the can-spend p99
    # The worker's CPU per event under its single-record rate; none measured, none shown.
    row = next(i for i, line in enumerate(lines) if "10,500" in line)
    assert "35 µs CPU/event" in lines[row + 2]
    assert text.count("µs CPU/event") == 1
    # One run held no rate at p99 <= 50 ms: no median, no range.
    assert "held with p99 <= 50 ms and no timeout: –/s (target" in text


def test_the_echo_floor_is_shown_per_server_and_rate_with_its_range() -> None:
    from rich.console import Console

    from pacer_stream.bench.repeats import median_of
    from pacer_stream.bench.stream_bench import show

    runs = []
    for p99 in (6.0, 10.0):
        run = _bench_run(9_000.0, 40.0, 990.0)
        run["can_spend_floor"] = {
            "faust-echo": [_trip(1_000, 1_000, p99), _trip(3_000, 3_000, p99 * 3)],
            "plain-echo": [_trip(1_000, 1_000, p99 / 2), _trip(3_000, 3_000, p99)],
        }
        runs.append(run)
    res = {**median_of(runs), "runs": 2, "per_run": runs}
    console = Console(record=True, width=250)
    show(res, console.print)
    text = console.export_text()
    assert (
        "faust echo agent (answers only), p99 8.0 (6.0-10.0) ms at 1,000/s, "
        "24.0 (18.0-30.0) ms at 3,000/s" in text
    )
    assert "plain aiokafka echo (answers only), p99 4.0 (3.0-5.0) ms at 1,000/s" in text
    # A result without the floor (an older JSON) shows none.
    console = Console(record=True, width=250)
    show({**median_of(runs[:1]), "can_spend_floor": {}, "per_run": runs[:1]}, console.print)
    assert "echo" not in console.export_text()


def test_a_narrow_terminal_folds_the_figures_and_cuts_none() -> None:
    from rich.console import Console

    from pacer_stream.bench.repeats import median_of
    from pacer_stream.bench.stream_bench import show

    runs = [_bench_run(10_300.0, 61.0, 1_980.0), _bench_run(11_701.0, 98.0, 1_990.0)]
    console = Console(record=True, width=80)
    show({**median_of(runs), "runs": 2, "per_run": runs}, console.print)
    text = console.export_text()
    assert "…" not in text
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "(10,300-11,701)" in text and "(20,600-23,402)" in text
    # The last column too: a table one character too wide loses its right edge silently.
    whole = ("target", "trivial agent:", "(1.00-1.00)", ">= 30,000/s;", "lag p99 <= 50")
    assert all(part in text for part in (*whole, "37 µs CPU/event"))


def test_the_workers_cpu_per_event_is_its_cpu_time_over_the_events() -> None:
    assert _cpu_us_per_event(10.0, 13.5, 100_000) == 35.0
    # Without /proc (or a backlog) there is no figure rather than a wrong one.
    assert _cpu_us_per_event(None, 13.5, 100_000) is None
    assert _cpu_us_per_event(10.0, None, 100_000) is None
    assert _cpu_us_per_event(10.0, 13.5, 0) is None


def test_a_process_cpu_time_is_read_from_proc() -> None:
    from pacer_stream.bench.worker_process import process_cpu_seconds

    used = process_cpu_seconds(os.getpid())
    assert used is not None and used > 0  # this test process has run
    assert abs(used - sum(os.times()[:2])) < 0.5  # what the process itself reports
    assert process_cpu_seconds(2**22 + 1) is None  # above the kernel's pid limit
