"""The bounded windows hold no storage while empty and keep their rules when used."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pacer_stream.core import serde
from pacer_stream.core.money import MAX_MICROS
from pacer_stream.core.state import CampaignState, ChannelState
from pacer_stream.core.types import ChannelType
from pacer_stream.core.windows import (
    UNAUTHORISED,
    UNMET,
    VELOCITY,
    DedupeWindow,
    MinuteRing,
    MinuteRings,
)


def test_an_unused_window_holds_no_queue() -> None:
    window = DedupeWindow()
    assert window.order is None and not window.expiry
    assert not window.seen("a", 0.0)
    window.prune(10.0)
    assert window.order is None


def test_a_window_releases_its_storage_when_it_empties() -> None:
    window = DedupeWindow(window_s=10.0)
    window.add("a", 0.0)
    window.add("b", 5.0)
    assert window.order is not None and list(window.order) == ["a", "b"]
    assert window.seen("b", 12.0) and not window.seen("a", 12.0)
    assert not window.seen("b", 15.0)
    assert window.order is None and window.expiry == {}
    window.add("c", 20.0)  # usable again after being emptied
    assert window.seen("c", 21.0) and len(window) == 1


def test_clear_forgets_every_id_but_keeps_the_counts() -> None:
    window = DedupeWindow(max_entries=2)
    window.track()
    for e in ("a", "b", "c"):
        window.add(e, 0.0)
    assert window.evicted == 1
    window.clear()
    assert len(window) == 0 and window.order is None and window.evicted == 1
    assert window.take_added() == []
    window.add("d", 1.0)
    assert window.take_added() == ["d"]


def test_forgetting_the_last_id_releases_the_queue() -> None:
    window = DedupeWindow()
    window.add("a", 0.0)
    window.forget("a")
    assert window.order is None and not window.seen("a", 0.0)


def test_an_empty_window_round_trips_without_storage() -> None:
    state = CampaignState("c")
    state.dedupe.add("a", 0.0)
    state.dedupe.clear()
    loaded = serde.loads(serde.dumps(state))
    assert loaded.dedupe.order is None and loaded == state
    state.dedupe.add("b", 1.0)
    again = serde.loads(serde.dumps(state))
    assert again.dedupe.order is not None and list(again.dedupe.order) == ["b"]
    assert again == state


def test_a_ring_holds_minutes_in_four_bytes_and_widens_for_far_future_times() -> None:
    ring = MinuteRing()
    assert not ring.minutes  # unused: the shared empty arrays
    ring.add(1_772_000_000.0, 5)
    assert ring.minutes.typecode == "i" and ring.amounts.typecode == "i"
    far = float(2**31 * 60 + 120)  # an epoch minute past 4 bytes (year 6053+)
    ring.add(far, 7)
    assert ring.minutes.typecode == "q"
    assert ring.total(far, 60) == 7 and ring.total(1_772_000_000.0, 60) == 5
    loaded = serde.loads(serde.dumps(_state_with_ring(ring)))
    again = loaded.channels[ChannelType.GOOGLE_ADS].velocity
    assert again == ring and again.minutes.typecode == "q"


def test_a_ring_keeps_its_rules() -> None:
    ring = MinuteRing(size=4)
    ring.add(600.0, 3)  # minute 10
    ring.add(610.0, 4)
    ring.add(660.0, 5)  # minute 11
    assert ring.total(660.0, 120) == 12 and ring.total(660.0, 60) == 5
    ring.add(840.0, 1)  # minute 14 reuses minute 10's slot
    assert ring.total(840.0, 300) == 6
    ring.add(600.0, 100)  # older than the slot holds: outside the ring, ignored
    assert ring.total(840.0, 300) == 6
    ring.add(900.0, MAX_MICROS)
    ring.add(900.0, MAX_MICROS)  # saturates
    assert ring.total(900.0, 60) == MAX_MICROS
    loaded = serde.loads(serde.dumps(_state_with_ring(ring)))
    again = loaded.channels[ChannelType.GOOGLE_ADS].velocity
    # one array for minutes and amounts: the saturated amounts widened both
    assert again == ring and again.minutes.typecode == "q"


def _state_with_ring(ring: MinuteRing) -> CampaignState:
    state = CampaignState("c")
    state.channels[ChannelType.GOOGLE_ADS] = ChannelState(ChannelType.GOOGLE_ADS, velocity=ring)
    return state


def test_a_minute_amount_past_four_bytes_widens_the_amounts() -> None:
    rings = MinuteRings()
    rings.ring_add(VELOCITY, 600.0, 2**31 - 1)
    rings.ring_add(UNMET, 600.0, 3)
    assert rings.typecode == "i"
    rings.ring_add(VELOCITY, 610.0, 1)
    assert rings.typecode == "q"
    assert (
        rings.ring_total(VELOCITY, 610.0, 60) == 2**31 and rings.ring_total(UNMET, 610.0, 60) == 3
    )
    assert not rings.used(UNAUTHORISED) and rings.ring_total(UNAUTHORISED, 610.0, 60) == 0


class _ArrayRing:
    """The previous ring (two arrays per ring), as the model."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.minutes = [-1] * size
        self.amounts = [0] * size

    def add(self, ts: float, amount: int) -> None:
        m = int(ts // 60)
        i = m % self.size
        if self.minutes[i] != m:
            if self.minutes[i] > m:
                return
            self.minutes[i] = m
            self.amounts[i] = 0
        self.amounts[i] = min(MAX_MICROS, self.amounts[i] + amount)

    def total(self, now: float, window_s: int) -> int:
        m = int(now // 60)
        span = min(self.size, max(1, (window_s + 59) // 60))
        return sum(
            self.amounts[mm % self.size]
            for mm in range(m - span + 1, m + 1)
            if self.minutes[mm % self.size] == mm
        )


_ring_event = st.tuples(
    st.integers(min_value=0, max_value=2),
    st.floats(min_value=0.0, max_value=3_000.0),
    st.integers(min_value=0, max_value=2**40),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_ring_event, max_size=80), st.integers(min_value=1, max_value=900))
def test_rings_in_one_buffer_behave_like_separate_arrays(
    events: list[tuple[int, float, int]], window_s: int
) -> None:
    rings = MinuteRings()
    models = [_ArrayRing(16) for _ in range(3)]
    for k, ts, amount in events:
        rings.ring_add(k, 1_772_000_000.0 + ts, amount)
        models[k].add(1_772_000_000.0 + ts, amount)
        for j in range(3):
            now = 1_772_000_000.0 + ts
            assert rings.ring_total(j, now, window_s) == models[j].total(now, window_s)
    for j in range(3):
        if rings.used(j):
            assert rings.minutes(j) == models[j].minutes
            assert rings.amounts(j) == models[j].amounts
