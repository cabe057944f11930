"""The packed hourly history behaves exactly like the dict of five-int lists it
replaced: same hours, same sums, same pruning, same stored form."""

from __future__ import annotations

import copy
import pickle

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pacer_stream.core import serde
from pacer_stream.core.history import N_METRICS, HourlyHistory, _restore
from pacer_stream.core.money import MAX_MICROS
from pacer_stream.core.state import CampaignState, ChannelState
from pacer_stream.core.types import ChannelType

H0 = 492_000  # an epoch hour in 2026


class DictHistory:
    """The previous representation, as the model: epoch hour -> list of five ints,
    pruned to ``newest - horizon`` whenever ``newest`` moves."""

    def __init__(self, horizon_hours: int) -> None:
        self.horizon_hours = horizon_hours
        self.buckets: dict[int, list[int]] = {}
        self.newest = 0

    def add(self, hour: int, *metrics: int) -> None:
        b = self.buckets.setdefault(hour, [0] * N_METRICS)
        for i, m in enumerate(metrics):
            b[i] += m
        if hour > self.newest:
            self.newest = hour
            oldest = hour - self.horizon_hours
            self.buckets = {h: v for h, v in self.buckets.items() if h >= oldest}


def test_adds_to_the_current_hour_and_appends_new_ones() -> None:
    hist = HourlyHistory()
    hist.add(H0, 5, 1, 0, 10, 0)
    hist.add(H0, 7, 0, 1, 3, 2)
    hist.add(H0 + 2, 1, 1, 1, 1, 1)
    assert dict(hist.items()) == {H0: [12, 1, 1, 13, 2], H0 + 2: [1, 1, 1, 1, 1]}
    assert hist.get(H0 + 1) is None and hist.get(H0) == [12, 1, 1, 13, 2]
    assert len(hist) == 2 and hist.newest == H0 + 2


def test_an_out_of_order_hour_is_placed_in_order() -> None:
    hist = HourlyHistory()
    hist.add(H0 + 5, 1, 0, 0, 0, 0)
    hist.add(H0 + 1, 2, 0, 0, 0, 0)  # late report of an earlier hour
    hist.add(H0 + 3, 3, 0, 0, 0, 0)
    hist.add(H0 + 1, 4, 0, 0, 0, 0)  # and again into that hour
    assert hist.hours() == [H0 + 1, H0 + 3, H0 + 5]
    assert [b[0] for _, b in hist.items()] == [6, 3, 1]
    assert hist.newest == H0 + 5  # an earlier hour does not move the horizon
    assert list(hist.before(H0 + 4)) == [(H0 + 1, [6, 0, 0, 0, 0]), (H0 + 3, [3, 0, 0, 0, 0])]
    assert hist.hours_with_data(H0 + 4) == 2
    assert hist.totals(H0 + 2, H0 + 6)[0] == 4


def test_pruning_keeps_exactly_the_horizon() -> None:
    hist = HourlyHistory(horizon_hours=10)
    for h in range(30):
        hist.add(H0 + h, 1, 0, 0, 0, 0)
    assert hist.hours() == list(range(H0 + 19, H0 + 30))  # newest - 10 .. newest
    assert hist.rows() == [(1, 0, 0, 0, 0)] * 11
    hist.add(H0 + 5, 9, 0, 0, 0, 0)  # older than the horizon: held until it moves
    assert hist.hours()[0] == H0 + 5
    hist.add(H0 + 30, 1, 0, 0, 0, 0)
    assert hist.hours()[0] == H0 + 20 and len(hist) == 11
    hist.add(H0 + 100, 1, 0, 0, 0, 0)  # a jump past the whole horizon
    assert hist.hours() == [H0 + 100]


def test_values_past_four_bytes_widen_the_column_without_losing_any() -> None:
    hist = HourlyHistory()
    hist.add(H0, 2**31 - 1, 1, 0, 0, 0)
    hist.add(H0 + 1, 1, 0, 0, 0, 0)
    hist.add(H0, 1, 0, 0, 0, 0)  # 2**31: no longer fits 4 bytes
    assert hist.get(H0) == [2**31, 1, 0, 0, 0] and hist.get(H0 + 1) == [1, 0, 0, 0, 0]
    hist.add(H0 + 1, MAX_MICROS - 1, 0, 0, 0, -5)
    assert hist.get(H0 + 1) == [MAX_MICROS, 0, 0, 0, -5]
    assert hist.totals(H0, H0 + 2) == [MAX_MICROS + 2**31, 1, 0, 0, -5]


def test_buckets_is_a_read_only_view() -> None:
    hist = HourlyHistory(buckets={H0 + 1: [1, 2, 3, 4, 5], H0: [6, 7, 8, 9, 10]}, newest=H0 + 1)
    view = hist.buckets
    assert list(view) == [H0, H0 + 1] and len(view) == 2 and H0 in view
    assert view[H0] == [6, 7, 8, 9, 10] and view.get(H0 + 2) is None
    assert list(view.values()) == [[6, 7, 8, 9, 10], [1, 2, 3, 4, 5]]
    view[H0][0] = 0  # a copy: the history is unchanged
    assert hist.get(H0) == [6, 7, 8, 9, 10]
    with pytest.raises(KeyError):
        view[H0 + 3]


def test_a_shorter_bucket_from_an_older_format_is_padded() -> None:
    hist = HourlyHistory(buckets={H0: [1, 2, 3]})
    assert hist.get(H0) == [1, 2, 3, 0, 0]
    with pytest.raises(ValueError):
        HourlyHistory(buckets={H0: [1, 2, 3, 4, 5, 6]})


def test_equality_ignores_the_column_width() -> None:
    a = HourlyHistory(buckets={H0: [1, 0, 0, 0, 0]}, newest=H0)
    b = HourlyHistory()
    b.add(H0, 2**40, 0, 0, 0, 0)
    b.add(H0, 1 - 2**40, 0, 0, 0, 0)  # 1 again, in a column widened to 8 bytes
    assert a == b
    b.add(H0, 1, 0, 0, 0, 0)
    assert a != b


def _state_with(hist: HourlyHistory) -> CampaignState:
    state = CampaignState("c")
    state.channels[ChannelType.GOOGLE_ADS] = ChannelState(ChannelType.GOOGLE_ADS, history=hist)
    return state


def test_serde_round_trip_keeps_the_stored_form() -> None:
    hist = HourlyHistory()
    hist.add(H0 + 2, 5, 1, 0, 0, 0)
    hist.add(H0, 3, 0, 1, 0, 7)
    hist.add(H0 + 2, 2**40, 0, 0, 0, 0)
    state = _state_with(hist)
    doc = orjson.loads(serde.dumps(state))
    assert doc["ch"][0]["h"] == [
        hist.horizon_hours,
        H0 + 2,
        [H0, H0 + 2],
        [[3, 0, 1, 0, 7], [5 + 2**40, 1, 0, 0, 0]],
    ]
    loaded = serde.loads(serde.dumps(state))
    assert loaded == state
    assert loaded.channels[ChannelType.GOOGLE_ADS].history.get(H0 + 2) == [2**40 + 5, 1, 0, 0, 0]


@pytest.mark.parametrize(
    "stored",
    [
        # dict-ordered (insertion order, not sorted) hours and lists
        [696, H0 + 3, [H0 + 3, H0 + 1], [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]],
        # the early format: [[hour, *metrics], ...]
        [696, H0 + 3, [[H0 + 3, 1, 2, 3, 4, 5], [H0 + 1, 6, 7, 8, 9, 10]]],
    ],
)
def test_old_values_load(stored: list[object]) -> None:
    state = _state_with(HourlyHistory())
    doc = serde.to_dict(state)
    doc["ch"][0]["h"] = stored
    loaded = serde.from_dict(doc).channels[ChannelType.GOOGLE_ADS].history
    assert dict(loaded.items()) == {H0 + 1: [6, 7, 8, 9, 10], H0 + 3: [1, 2, 3, 4, 5]}
    assert loaded.newest == H0 + 3 and loaded.horizon_hours == 696


def test_a_history_no_column_can_hold_is_refused() -> None:
    state = _state_with(HourlyHistory())
    doc = serde.to_dict(state)
    doc["ch"][0]["h"] = [696, H0, [H0], [[2**64, 0, 0, 0, 0]]]
    with pytest.raises(serde.SerdeError):
        serde.from_dict(doc)
    doc["ch"][0]["h"] = [696, H0, [H0], [[1, 0, 0, 0, 0, 0]]]
    with pytest.raises(serde.SerdeError):
        serde.from_dict(doc)


_metric = st.integers(min_value=0, max_value=2**40)
_hour = st.integers(min_value=0, max_value=80)
_event = st.tuples(_hour, _metric, _metric, _metric, _metric, _metric)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=30), st.lists(_event, max_size=60))
def test_packed_history_equals_the_dict_of_lists(
    horizon: int, events: list[tuple[int, int, int, int, int, int]]
) -> None:
    packed, model = HourlyHistory(horizon_hours=horizon), DictHistory(horizon)
    for hour, *metrics in events:
        packed.add(H0 + hour, *metrics)
        model.add(H0 + hour, *metrics)
        assert dict(packed.items()) == model.buckets
    assert packed.newest == model.newest
    assert packed.hours() == sorted(model.buckets)
    for lo, hi in ((H0, H0 + 81), (H0 + 10, H0 + 20), (H0 + 40, H0 + 41)):
        want = [sum(b[i] for h, b in model.buckets.items() if lo <= h < hi) for i in range(5)]
        assert packed.totals(lo, hi) == want
        assert packed.hours_with_data(hi) == sum(1 for h in model.buckets if h < hi)
    again = HourlyHistory(horizon, model.buckets, model.newest)
    assert again == packed


def test_narrow_columns_for_small_values_and_a_base_for_the_hours() -> None:
    hist = HourlyHistory()
    for h in range(24):
        hist.add(H0 + h, 10_000, 0, 0, 0, 0)
    # consecutive hours: no hour column; zeros in 1 byte, 10,000 micros in 2: 6 bytes
    assert hist._codes == "hbbbb" and len(hist._buf) == 24 * 6
    hist.add(H0 + 200, 5_000_000, 3, 1, 400, -7)  # wider values widen their columns only
    assert hist._codes == "hibbhb" and len(hist) == 25
    assert hist.get(H0 + 200) == [5_000_000, 3, 1, 400, -7] and hist.get(H0) == [10_000, 0, 0, 0, 0]
    hist.add(H0 - 3, 1, 0, 0, 0, 0)  # before the first hour held: a negative offset
    assert hist.hours()[:2] == [H0 - 3, H0] and hist.newest == H0 + 200


def test_newest_is_kept_apart_only_when_it_is_not_the_last_hour_held() -> None:
    hist = HourlyHistory()
    assert hist.newest == 0 and not hist.hours()
    hist.add(H0 + 5, 1, 0, 0, 0, 0)
    assert hist.newest == H0 + 5 and hist._newest is None
    hist.add(H0 + 2, 1, 0, 0, 0, 0)  # earlier: newest stays, still the last hour held
    assert hist.newest == H0 + 5 and hist._newest is None
    loaded = HourlyHistory(buckets={H0: [1, 0, 0, 0, 0]}, newest=H0 + 9)
    assert loaded.newest == H0 + 9 and loaded._newest == H0 + 9
    loaded.add(H0 + 1, 1, 0, 0, 0, 0)  # still before newest: nothing moves
    assert loaded.newest == H0 + 9 and loaded.hours() == [H0, H0 + 1]
    loaded.add(H0 + 10, 1, 0, 0, 0, 0)
    assert loaded.newest == H0 + 10 and loaded._newest is None
    empty = HourlyHistory(newest=H0)
    empty.add(H0 - 1, 1, 0, 0, 0, 0)  # the only hour held is not the newest
    assert empty.newest == H0 and empty.hours() == [H0 - 1]


def _layout(hist: HourlyHistory) -> str:
    """'consecutive' while the rows have no hour column, else 'hours'."""
    return "consecutive" if len(hist._codes) == N_METRICS else "hours"


def test_the_hour_column_is_dropped_while_the_hours_are_consecutive() -> None:
    hist = HourlyHistory()
    for h in range(3):
        hist.add(H0 + h, 10, 1, 0, 0, 0)
        hist.add(H0 + h, 5, 0, 0, 0, 0)  # the current hour again
    assert _layout(hist) == "consecutive" and len(hist._buf) == 3 * N_METRICS
    hist.add(H0 + 1, 1, 0, 0, 0, 0)  # a late report for an hour held: in place
    assert _layout(hist) == "consecutive" and hist.get(H0 + 1) == [16, 1, 0, 0, 0]
    hist.add(H0 - 1, 2, 0, 0, 0, 0)  # the hour before the first: still consecutive
    assert _layout(hist) == "consecutive" and hist.hours() == [H0 - 1, H0, H0 + 1, H0 + 2]
    hist.add(H0 + 5, 7, 0, 0, 0, 0)  # a gap: the rows get their hours
    assert _layout(hist) == "hours" and hist.hours() == [H0 - 1, H0, H0 + 1, H0 + 2, H0 + 5]
    hist.add(H0 + 4, 1, 0, 0, 0, 0)
    assert _layout(hist) == "hours" and hist.get(H0 + 3) is None
    hist.add(H0 + 3, 1, 0, 0, 0, 0)  # the gap filled by a late report: consecutive again
    assert _layout(hist) == "consecutive"
    assert hist.hours() == list(range(H0 - 1, H0 + 6)) and hist.newest == H0 + 5
    assert hist.totals(H0, H0 + 6) == [15 * 3 + 1 + 7 + 2, 3, 0, 0, 0]
    assert hist.hours_with_data(H0 + 3) == 4 and hist.get(H0 + 6) is None
    assert [h for h, _ in hist.before(H0 + 1)] == [H0 - 1, H0]
    # widening a column keeps the layout
    hist.add(H0 + 5, 2**40, 0, 0, 0, 0)
    assert _layout(hist) == "consecutive" and hist._codes[0] == "q"
    assert hist.get(H0 + 5) == [2**40 + 7, 0, 0, 0, 0]


def test_pruning_a_gap_away_drops_the_hour_column() -> None:
    hist = HourlyHistory(horizon_hours=7)
    hist.add(H0, 1, 0, 0, 0, 0)
    for h in range(3, 8):
        hist.add(H0 + h, 1, 0, 0, 0, 0)
    assert _layout(hist) == "hours" and hist.hours()[0] == H0
    hist.add(H0 + 8, 1, 0, 0, 0, 0)  # H0 leaves the horizon, and the gap with it
    assert _layout(hist) == "consecutive" and hist.hours() == list(range(H0 + 3, H0 + 9))
    for h in range(9, 20):  # consecutive rows pruned from the front: the base moves
        hist.add(H0 + h, 1, 0, 0, 0, 0)
    assert _layout(hist) == "consecutive" and hist.hours() == list(range(H0 + 12, H0 + 20))
    assert hist.get(H0 + 11) is None and hist.get(H0 + 12) == [1, 0, 0, 0, 0]


def test_consecutive_rows_round_trip_through_copies_pickles_and_the_codec() -> None:
    hist = HourlyHistory()
    for h in range(30):
        hist.add(H0 + h, 2_000_000 * (h + 1), 1, 0, 180, 2_600_000)
    assert _layout(hist) == "consecutive"
    for again in (copy.deepcopy(hist), pickle.loads(pickle.dumps(hist))):
        assert again == hist and _layout(again) == "consecutive"
        again.add(H0 + 30, 1, 0, 0, 0, 0)  # still works, and apart from the original
        assert again != hist and again.newest == H0 + 30
    state = _state_with(hist)
    text = serde.dumps(state)
    loaded = serde.loads(text).channels[ChannelType.GOOGLE_ADS].history
    assert loaded == hist and _layout(loaded) == "consecutive"
    assert serde.dumps(serde.loads(text)) == text
    # a pickle from before this layout (six codes, offsets from the base) still loads
    old = _restore(696, H0 + 1, H0, "bbbbbb", bytes([0, 1, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0]))
    assert dict(old.items()) == {H0: [1, 0, 0, 0, 0], H0 + 1: [2, 0, 0, 0, 0]}


_dense_step = st.integers(min_value=-3, max_value=2)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=1, max_value=30), st.lists(st.tuples(_dense_step, _metric), max_size=80)
)
def test_mostly_consecutive_hours_equal_the_dict_of_lists(
    horizon: int, steps: list[tuple[int, int]]
) -> None:
    """Hours that mostly follow each other, with late reports and gaps: the layout
    switches both ways and every read still matches the model."""
    packed, model = HourlyHistory(horizon_hours=horizon), DictHistory(horizon)
    hour = H0
    for step, amount in steps:
        hour += step
        packed.add(hour, amount, 1, 0, 0, amount // 2)
        model.add(hour, amount, 1, 0, 0, amount // 2)
        assert dict(packed.items()) == model.buckets and packed.newest == model.newest
        held = sorted(model.buckets)
        consecutive = held == list(range(held[0], held[0] + len(held))) if held else True
        assert _layout(packed) == ("consecutive" if consecutive else "hours")
    for lo, hi in ((H0 - 50, H0 + 200), (H0 - 2, H0 + 3), (H0 + 5, H0 + 6)):
        want = [sum(b[i] for h, b in model.buckets.items() if lo <= h < hi) for i in range(5)]
        assert packed.totals(lo, hi) == want
        assert packed.hours_with_data(hi) == sum(1 for h in model.buckets if h < hi)
    assert HourlyHistory(horizon, model.buckets, model.newest) == packed
