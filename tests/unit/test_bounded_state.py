"""State stays bounded whatever the traffic, and decisions do not read the history.

Not a timed test: "decision cost does not depend on history length" is checked
structurally, by counting how many history hours a decision visits, and by the size
of every per-campaign structure after 100k recorded events spread over 40 days.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from pacer_stream.core.history import HourlyHistory
from pacer_stream.core.types import Thresholds

from .conftest import DAY0, G, Harness, U


class CountingHistory(HourlyHistory):
    """A history that counts the hours its scans visit (reading one hour, O(log n),
    is not a scan)."""

    __slots__ = ()
    visited = 0

    def _rows(self, stop: int) -> Iterator[tuple[int, list[int]]]:
        for row in super()._rows(stop):
            CountingHistory.visited += 1
            yield row

    def hours(self) -> list[int]:
        out = super().hours()
        CountingHistory.visited += len(out)
        return out

    def totals(self, from_hour: int, to_hour: int) -> list[int]:
        hours = self.hours()  # counted: a total visits the hours of its window
        CountingHistory.visited -= len(hours)
        CountingHistory.visited += sum(1 for h in hours if from_hour <= h < to_hour)
        return super().totals(from_hour, to_hour)


def with_history(days: int) -> Harness:
    h = Harness({G: 10**12}, thresholds=Thresholds(max_hourly_spend_pct=1.0))
    ch = h.ch()
    start = int(DAY0.timestamp() // 3600)
    buckets = {start - hour: [U, 10, 1, 0, 0] for hour in range(days * 24, 0, -1)}
    ch.history = CountingHistory(ch.history.horizon_hours, buckets, newest=start - 1)
    h.engine.configure(h.state, h.config, h.now)  # plan with that history
    h.at(DAY0 + timedelta(hours=12))
    h.decide(1)  # settle lazy work (day roll) before counting
    return h


@pytest.mark.parametrize("days", [1, 28])
def test_decisions_never_read_the_history(days: int) -> None:
    h = with_history(days)
    CountingHistory.visited = 0
    for k in range(200):
        h.advance(seconds=1)
        h.decide(U)
        h.reserve(U, request_id=f"q{k}")
        h.engine.allowance(h.state, G, h.now, 1.0)
        h.engine.current_alert(h.state, G, h.now)
    assert CountingHistory.visited == 0


def test_recording_without_clicks_does_not_scan_the_history() -> None:
    """Pruning peeks at the oldest hour when a new hour starts (O(1)); nothing else."""
    visits = {}
    for days in (1, 28):
        h = with_history(days)
        CountingHistory.visited = 0
        for _ in range(200):
            h.advance(seconds=60)
            h.spend(U)
        visits[days] = CountingHistory.visited
    assert visits[1] == visits[28] <= 4  # one peek per new hour (3h20 of spend)


def test_recording_with_clicks_does_not_scan_the_history_per_event() -> None:
    """The 7-day baseline of the performance alert is read once per day (cached), so
    the history reads do not grow with the number of recorded events."""
    visits = {}
    for events in (50, 150):
        h = with_history(28)
        CountingHistory.visited = 0
        for _ in range(events):
            h.advance(seconds=1)
            h.spend(U, clicks=10, conversions=1)
        visits[events] = CountingHistory.visited
    assert visits[150] == visits[50]


def test_state_stays_bounded_after_100k_events() -> None:
    h = Harness({G: 10**14}, start=DAY0)
    n = 100_000
    step = 40 * 86400 / n  # 40 days of traffic, one event every ~35 s
    for i in range(n):
        h.at(DAY0 + timedelta(seconds=i * step))
        if i % 4 == 0:
            h.reserve(1000, request_id=f"q{i}")
        h.spend(1000, event_id=f"e{i}")
    st, ch = h.state, h.ch()
    per_window = int(st.dedupe.window_s / step) + 2
    # dedupe: only the ids of the last ~25 h are remembered
    assert len(st.dedupe) <= per_window
    assert len(st.dedupe.order) == len(st.dedupe.expiry) == len(st.dedupe)
    # history: a fixed horizon of hourly buckets
    assert len(ch.history.buckets) <= ch.history.horizon_hours + 1
    oldest = min(ch.history.buckets)
    assert oldest >= ch.history.newest - ch.history.horizon_hours
    # reservations expire (TTL 60 s): only the most recent can be active
    assert len(ch.reservations) <= 60 / (4 * step) + 1
    assert ch.reserved_total == sum(r.amount for r in ch.reservations.values())
    # fixed-size velocity ring, bounded request-id memory, per-day arrays
    assert len(ch.velocity.minutes) == len(ch.velocity.amounts) == ch.velocity.size == 16
    assert len(st.answered) <= 10_000
    assert len(ch.overspend_times) <= h.state.thresholds.overspend_events_to_trip
    assert len(ch.spent) <= 25 and len(ch.cum_plan) <= 26
    # and the accounting is still exact
    day = ch.day
    assert day is not None
    assert ch.spent_total == sum(ch.spent)


def test_dedupe_window_caps_a_flood_of_ids() -> None:
    h = Harness()
    h.state.dedupe.max_entries = 1000
    h.at(DAY0 + timedelta(hours=1))
    for i in range(5000):
        h.spend(0, event_id=f"flood-{i}")
    assert len(h.state.dedupe) == 1000
    assert h.state.dedupe.evicted == 4000
    # the newest ids are the ones still remembered
    assert h.state.dedupe.seen("flood-4999", h.now.timestamp())
    assert not h.state.dedupe.seen("flood-0", h.now.timestamp())


def test_dedupe_window_remembers_ids_for_at_least_a_day() -> None:
    h = Harness()
    h.at(DAY0 + timedelta(hours=1))
    h.spend(U, event_id="once")
    h.at(DAY0 + timedelta(hours=24, minutes=59))
    assert h.spend(U, event_id="once").duplicate
    h.at(DAY0 + timedelta(hours=26, minutes=1))
    assert not h.state.dedupe.seen("once", h.now.timestamp())


def test_held_reservations_are_bounded_per_channel() -> None:
    """A flood of 1-micro requests cannot grow a channel's reservations without bound:
    past the limit they are refused with their own code, live and expired-unreported
    holds counted together."""
    from pacer_stream.core.policy import MAX_HELD_RESERVATIONS
    from pacer_stream.core.types import Code

    h = Harness(
        {G: 10**12},
        thresholds=Thresholds(
            max_hourly_spend_pct=1.0, frontload_protection_hours=0, velocity_multiple=10**6
        ),
    )
    h.at(DAY0 + timedelta(hours=12))
    for i in range(MAX_HELD_RESERVATIONS):
        assert h.reserve(1, request_id=f"q{i}").allowed
    d = h.reserve(1, request_id="one-more")
    assert not d.allowed and d.code is Code.RESERVATION_LIMIT
    h.advance(seconds=61)  # all expire: they wait for late reports, still counted
    assert not h.reserve(1, request_id="after-expiry").allowed
    assert len(h.ch().reservations) + len(h.ch().unreported) == MAX_HELD_RESERVATIONS
    h.advance(seconds=601)  # the reporting grace is over: room again
    assert h.reserve(1, request_id="later").allowed
