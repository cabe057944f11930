"""The in-memory state stays compact: structural properties, not byte counts.

A worker holds one value per campaign/channel, so the container types matter: a stray
``deque`` costs ~760 bytes empty, a ``set`` 216, a list of ints one object per value.
These tests pin the choices that keep ``pacer-stream bench --only memory`` small, so a
change that brings a standard container back fails here rather than in a benchmark.
"""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
from array import array
from collections import deque
from datetime import timedelta
from itertools import pairwise

import pytest

from pacer_stream.core import ids, serde
from pacer_stream.core.allocation.base import DayPlan
from pacer_stream.core.compact import (
    NO_ENTRIES,
    NO_OUTPUTS,
    AlertSet,
    FloatQueue,
    ints_view,
    pack_ints,
    packed_int,
    packed_pair,
    packed_zeros,
)
from pacer_stream.core.history import IN_PLACE_BYTES
from pacer_stream.core.ids import check_campaign_id, forget_valid_campaign_ids
from pacer_stream.core.report_lag import LAG_SAMPLES, new_lags
from pacer_stream.core.state import CHANNEL_FIELDS, ChannelMap, ChannelState, Offsets
from pacer_stream.core.types import AlertType, ChannelType, Thresholds
from pacer_stream.core.windows import UNAUTHORISED, UNMET, VELOCITY, MinuteRings
from pacer_stream.errors import InvalidArgument

from .conftest import DAY0, G, Harness, U


def _morning(h: Harness) -> None:
    for k in range(20):
        h.at(DAY0 + timedelta(minutes=30 * k + 1)).spend(5 * U)


def _standard_containers(ch: ChannelState) -> list[str]:
    return [f for f in CHANNEL_FIELDS if isinstance(getattr(ch, f), (deque, set, list, dict))]


def test_a_channel_holds_no_deque_set_or_list() -> None:
    h = Harness()
    _morning(h)
    ch = h.ch()
    # the only dicts are the shared empty ones (reservations and unreported holds)
    assert _standard_containers(ch) == ["reservations", "unreported"]
    assert ch.reservations is NO_ENTRIES and ch.unreported is NO_ENTRIES
    loaded = serde.loads(serde.dumps(h.state)).channels[G]
    assert _standard_containers(loaded) == ["reservations", "unreported"]
    assert loaded.reservations is NO_ENTRIES and loaded.unreported is NO_ENTRIES


def test_per_slot_series_and_rings_are_packed() -> None:
    h = Harness()
    _morning(h)
    ch = h.ch()
    assert ch.plan is not None and ch.cum_plan.obj is ch.plan._cum
    assert ch.cum_plan.format == "i" and ch.cum_plan.readonly
    # spend per slot, epoch minutes and a minute's amounts fit 4 bytes here
    assert isinstance(ch.spent, array) and ch.spent.typecode == "i"
    assert ch.velocity.minutes.typecode == "i" and ch.velocity.amounts.typecode == "i"
    # the rings live in the channel's one array: 16 minutes and 16 amounts a ring used
    assert ch.used(VELOCITY) and not ch.used(UNMET)
    # all of this spend was unauthorised: the velocity and unauthorised rings are equal
    # and share their 32 slots
    assert ch.used(UNAUTHORISED) and ch.unauthorised == ch.velocity
    assert ch.rings.typecode == "i" and len(ch._rbuf) == 32


def test_equal_rings_share_their_slots_until_one_is_written_alone() -> None:
    shared, apart = MinuteRings(), MinuteRings()
    t0 = 1_772_409_600.0

    def both(ts: float, amount: int) -> None:
        shared.ring_add_both(VELOCITY, UNAUTHORISED, ts, amount)
        apart.ring_add(VELOCITY, ts, amount)
        apart.ring_add(UNAUTHORISED, ts, amount)

    def alone(k: int, ts: float, amount: int) -> None:
        shared.ring_add(k, ts, amount)
        apart.ring_add(k, ts, amount)

    both(t0, 5)
    both(t0 + 61, 7)
    both(t0 + 30, 1)  # an earlier minute, still in the ring
    assert shared == apart and len(shared._rbuf) == 32  # one region for the two
    alone(VELOCITY, t0 + 120, 3)  # authorised spend: the rings part
    assert shared == apart and len(shared._rbuf) == 64
    both(t0 + 180, 4)
    alone(UNAUTHORISED, t0 + 181, 2)
    both(t0 + 240, 2**31)  # widens the array
    alone(UNMET, t0 + 240, 9)
    assert shared == apart and shared.typecode == "q"
    for k in (VELOCITY, UNAUTHORISED, UNMET):
        for now in (t0 + 60, t0 + 200, t0 + 300):
            assert shared.ring_total(k, now, 900) == apart.ring_total(k, now, 900)
    # rings loaded equal share again; a later write to one alone parts them
    loaded = MinuteRings()
    for k in (VELOCITY, UNAUTHORISED):
        loaded.set_ring(k, 16, apart.minutes(VELOCITY), apart.amounts(VELOCITY))
    assert len(loaded._rbuf) == 32 and loaded.ring_total(UNAUTHORISED, t0 + 300, 900) > 0
    loaded.ring_add(UNAUTHORISED, t0 + 300, 1)
    assert loaded.amounts(VELOCITY) == apart.amounts(VELOCITY)
    assert loaded.ring_total(UNAUTHORISED, t0 + 300, 60) == 1


def test_a_channel_whose_spend_is_all_unauthorised_loads_with_shared_rings() -> None:
    h = Harness()
    _morning(h)
    loaded = serde.loads(serde.dumps(h.state))
    ch = loaded.channels[G]
    assert loaded == h.state and len(ch._rbuf) == 32 and ch.used(UNAUTHORISED)
    assert serde.dumps(loaded) == serde.dumps(h.state)


def test_offsets_are_a_mapping_of_marks_with_shared_topic_names() -> None:
    a, b = Offsets(), Offsets()
    assert not a and a.get("spend", -1) == -1 and "spend" not in a and dict(a) == {}
    a["spend"] = 2**40
    a["budgets"] = -1
    a["spend"] = 7
    b["spend"] = 1
    b["budgets"] = 2
    assert dict(a) == {"spend": 7, "budgets": -1} and a == {"spend": 7, "budgets": -1}
    assert a["budgets"] == -1 and a.get("commands") is None and len(a) == 2
    assert a._topics is b._topics  # the names are shared, the marks are not
    with pytest.raises(KeyError):
        a["commands"]
    del a["spend"]
    assert dict(a) == {"budgets": -1} and list(a) == ["budgets"]
    with pytest.raises(KeyError):
        del a["spend"]
    assert Offsets({"x": 1}) == Offsets({"x": 1}) != Offsets({"x": 2})
    assert copy.deepcopy(b) == b and pickle.loads(pickle.dumps(b)) == b


def test_offsets_round_trip_as_the_same_stored_dict() -> None:
    h = Harness()
    h.state.offsets["pacer.spend.v1"] = 12_345
    h.state.offsets["pacer.commands.v1"] = 3
    doc = serde.to_dict(h.state)
    assert doc["o"] == {"pacer.spend.v1": 12_345, "pacer.commands.v1": 3}
    loaded = serde.loads(serde.dumps(h.state))
    assert isinstance(loaded.offsets, Offsets) and loaded == h.state
    assert serde.dumps(loaded) == serde.dumps(h.state)


def test_spend_per_slot_widens_past_four_bytes() -> None:
    ch = Harness().ch()
    ch.add_spent(0, 2**31 - 1)
    assert ch.spent.typecode == "i"
    ch.add_spent(0, 1)
    ch.add_spent(1, 5)
    assert ch.spent.typecode == "q" and ch.spent[0] == 2**31 and ch.spent[1] == 5


def test_packed_ints_round_trip_at_every_width() -> None:
    for values, code in [
        ([], "b"),
        ([0, 0], "b"),
        ([-128, 127], "b"),
        ([-129, 1], "h"),
        ([2**15, 0], "i"),
        ([-(2**31), 5], "i"),
        ([2**31, -3], "q"),
        ([-(2**63), 2**63 - 1], "q"),
    ]:
        packed = pack_ints(values)
        view = ints_view(packed)
        assert view.format == code and view.tolist() == values
        assert [packed_int(packed, i) for i in range(len(values))] == values
        assert [packed_int(packed, -1 - i) for i in range(len(values))] == values[::-1]
        for i in range(len(values) - 1):
            assert packed_pair(packed, i) == (values[i], values[i + 1])
        for bad in (len(values), -len(values) - 1):
            with pytest.raises(IndexError):
                packed_int(packed, bad)
        for bad in (-1, max(0, len(values) - 1)):
            with pytest.raises(IndexError):
                packed_pair(packed, bad)
    with pytest.raises(OverflowError):  # past 8 bytes: refused, never wrapped
        pack_ints([2**63])
    # all zeros: one shared series per length, one byte a value
    assert pack_ints([0, 0, 0]) is packed_zeros(3) and len(packed_zeros(3)) == 4


def test_a_plan_keeps_its_cumulative_amounts_as_narrow_as_its_total() -> None:
    t = Thresholds()
    for budget, code in [(100, "b"), (20_000, "h"), (500 * U, "i"), (5_000 * U, "q")]:
        plan = DayPlan(tuple([budget // 4] * 4), (budget,) * 4, (1.0,) * 4, t)
        cum = [budget // 4 * k for k in range(5)]
        assert plan.cum.format == code and plan.cum.tolist() == cum
        assert len(plan._cum) == 1 + 5 * plan.cum.itemsize
        assert plan.cum_at(-1) == cum[-1] and plan.cum_at(0) == 0
        assert [plan.cum_pair(s) for s in range(4)] == list(pairwise(cum))
        assert plan.amounts == (budget // 4,) * 4
        for bad in (-1, 4):
            with pytest.raises(IndexError):
                plan.cum_pair(bad)
        # equal plans are equal whatever built them, and pickle by value
        assert plan == DayPlan(plan.amounts, plan.caps, plan.weights)
        assert pickle.loads(pickle.dumps(plan)) == plan


def test_unused_rings_queues_and_extras_allocate_nothing() -> None:
    ch = Harness().ch()  # planned, no spend yet
    assert not ch.unmet.minutes and not ch.velocity.minutes and not ch._rbuf
    for q in (ch.overspend_times, ch.unauthorised_times, ch.report_lags):
        assert isinstance(q, FloatQueue) and not q
    assert ch._x is None  # no extras: holds, overspend, unmet demand, violations
    loaded = serde.loads(serde.dumps(Harness().state)).channels[G]
    assert not loaded._rbuf and loaded._x is None


def test_extras_are_created_on_the_first_write_and_read_as_defaults_before() -> None:
    ch = Harness().ch()
    other = Harness(campaign_id="other").ch()
    ch.perf_violation_since = None  # a default: still no extras
    ch.unreported_total = 0
    assert ch._x is None
    with pytest.raises(TypeError):  # the shared empty containers refuse writes
        ch.report_lags.append(1.0)
    with pytest.raises(TypeError):
        ch.overspend_times.append(1.0)
    with pytest.raises(TypeError):
        ch.unmet_hours.add(1, 1)
    ch.own_report_lags().append(2.0)
    ch.own_overspend_times().append(3.0)
    ch.own_unmet_hours().add(5, 7)
    assert ch._x is not None and other._x is None
    assert list(ch.report_lags) == [2.0] and list(ch.overspend_times) == [3.0]
    assert ch.unmet_hours.amounts == {5: 7} and not other.unmet_hours.amounts
    assert not other.report_lags and not other.overspend_times
    again = serde.loads(serde.dumps(Harness().state)).channels[G]
    again.own_report_lags().append(2.0)
    again.own_overspend_times().append(3.0)
    again.own_unmet_hours().add(5, 7)
    assert again.report_lags == ch.report_lags and again.unmet_hours == ch.unmet_hours


def test_the_alert_set_of_a_channel_is_a_view_of_its_mask() -> None:
    ch = Harness().ch()
    ch.active_alerts.add(AlertType.UNDERPACING)
    assert AlertType.UNDERPACING in ch.active_alerts and ch._alerts != 0
    ch.active_alerts = {AlertType.UNBUDGETED_SPEND}
    assert set(ch.active_alerts) == {AlertType.UNBUDGETED_SPEND}
    ch.active_alerts.clear()
    assert ch._alerts == 0 and not ch.active_alerts


def test_channels_with_equal_plans_share_plan_and_cumulative_plan() -> None:
    a, b = Harness(campaign_id="a"), Harness(campaign_id="b")
    assert a.ch().plan is b.ch().plan
    assert a.ch().cum_plan.obj is b.ch().cum_plan.obj  # one packed series
    assert a.ch().result is b.ch().result
    other = Harness({G: 999 * U}, campaign_id="o")
    assert other.ch().plan != a.ch().plan and other.ch().cum_plan[-1] == 999 * U


def test_campaigns_configured_alike_share_thresholds() -> None:
    a = Harness(campaign_id="a", thresholds=Thresholds())
    b = Harness(campaign_id="b", thresholds=Thresholds())
    assert a.state.thresholds is b.state.thresholds
    c = Harness(campaign_id="c", thresholds=Thresholds(max_hourly_spend_pct=0.2))
    assert c.state.thresholds.max_hourly_spend_pct == 0.2


def test_float_queue_is_a_fifo_that_compacts_and_releases() -> None:
    q = FloatQueue()
    for i in range(100):
        q.append(float(i))
    for i in range(70):
        assert q[0] == float(i)
        assert q.popleft() == float(i)
    assert len(q) == 30 and list(q) == [float(i) for i in range(70, 100)]
    assert q[-1] == 99.0 and q[0] == 70.0
    while q:
        q.popleft()
    assert len(q) == 0 and list(q) == [] and q == FloatQueue()
    with pytest.raises(IndexError):
        q.popleft()
    with pytest.raises(IndexError):
        q[0]


def test_report_lags_keep_the_last_samples_like_a_bounded_deque() -> None:
    lags = new_lags(float(i) for i in range(LAG_SAMPLES + 10))
    reference = deque((float(i) for i in range(LAG_SAMPLES + 10)), maxlen=LAG_SAMPLES)
    assert list(lags) == list(reference) and len(lags) == LAG_SAMPLES


def test_alert_set_behaves_as_a_set() -> None:
    alerts = AlertSet()
    assert not alerts and len(alerts) == 0
    alerts.add(AlertType.UNDERPACING)
    alerts.add(AlertType.UNDERPACING)
    assert AlertType.UNDERPACING in alerts and len(alerts) == 1
    assert alerts == AlertSet([AlertType.UNDERPACING]) and set(alerts) == {AlertType.UNDERPACING}
    assert "not an alert" not in alerts
    alerts.discard(AlertType.UNDERPACING)
    alerts.discard(AlertType.UNDERPACING)
    assert alerts == AlertSet() and not alerts
    every = AlertSet(AlertType)
    assert list(every) == list(AlertType) and len(every) == len(AlertType)
    every.clear()
    assert not every


def test_the_container_helper_sees_real_fields() -> None:
    # guards the helper above: it must see real fields, not silently nothing
    ch = ChannelState(channel=ChannelType.GOOGLE_ADS)
    ch.reservations = {}
    assert "reservations" in _standard_containers(ch)


def test_channel_map_is_a_mapping_in_insertion_order() -> None:
    a = ChannelState(ChannelType.GOOGLE_ADS)
    b = ChannelState(ChannelType.DISPLAY)
    m = ChannelMap()
    assert not m and m.get(ChannelType.GOOGLE_ADS) is None and ChannelType.DISPLAY not in m
    m[ChannelType.DISPLAY] = b
    m[ChannelType.GOOGLE_ADS] = a
    assert list(m) == [ChannelType.DISPLAY, ChannelType.GOOGLE_ADS] and len(m) == 2
    assert m[ChannelType.GOOGLE_ADS] is a and m.get(ChannelType.DISPLAY) is b
    assert list(m.values()) == [b, a] and m.items() == [(ChannelType.DISPLAY, b), (a.channel, a)]
    assert m == {ChannelType.GOOGLE_ADS: a, ChannelType.DISPLAY: b}
    replaced = ChannelState(ChannelType.DISPLAY, budget=5)
    m[ChannelType.DISPLAY] = replaced  # replaced in place, order kept
    assert list(m.values()) == [replaced, a]
    del m[ChannelType.DISPLAY]
    assert list(m) == [ChannelType.GOOGLE_ADS]
    with pytest.raises(KeyError):
        m[ChannelType.DISPLAY]
    with pytest.raises(KeyError):
        del m[ChannelType.DISPLAY]
    with pytest.raises(ValueError):
        m[ChannelType.DISPLAY] = a  # a channel stored under another type


def test_keep_recent_keeps_only_the_newest_values_inside_the_window() -> None:
    from pacer_stream.core.compact import FloatQueue

    q = FloatQueue([1.0, 2.0, 3.0, 10.0, 11.0])
    assert q.keep_recent(since=2.0, most=10) == 3 and list(q) == [3.0, 10.0, 11.0]
    assert q.keep_recent(since=0.0, most=2) == 2 and list(q) == [10.0, 11.0]
    assert q.keep_recent(since=11.0, most=2) == 0 and not q
    assert FloatQueue().keep_recent(since=0.0, most=3) == 0


def test_rarely_used_maps_share_one_empty_container_until_written() -> None:
    h, other = Harness(), Harness()
    ch, st = h.ch(), h.state
    for empty in (ch.reservations, ch.unreported, ch.unmet_hours.amounts, st.answered):
        assert empty is NO_ENTRIES
    assert st.outbox is NO_OUTPUTS and st.dedupe.expiry is NO_ENTRIES
    with pytest.raises(TypeError):
        ch.reservations["x"] = None  # type: ignore[assignment]
    with pytest.raises(TypeError):
        st.outbox.append(None)  # type: ignore[arg-type]
    h.reserve(U, request_id="q1")
    assert len(ch.reservations) == 1 and len(st.answered) == 1
    assert not other.ch().reservations and not other.state.answered  # not shared
    # The hold expires unreported, then its grace passes: both maps are given back.
    h.advance(seconds=3600)
    h.decide(U)
    assert ch.reservations is NO_ENTRIES and ch.unreported is NO_ENTRIES
    assert ch.reserved_total == 0 and ch.unreported_total == 0


def test_empty_maps_load_as_the_shared_containers() -> None:
    h = Harness()
    _morning(h)
    loaded = serde.loads(serde.dumps(h.state))
    ch = loaded.channels[G]
    assert ch.reservations is NO_ENTRIES and ch.unreported is NO_ENTRIES
    assert loaded.answered is NO_ENTRIES and loaded.outbox is NO_OUTPUTS
    assert loaded == h.state
    h.reserve(U, request_id="q1")
    again = serde.loads(serde.dumps(h.state))
    assert len(again.channels[G].reservations) == 1 and again == h.state


def _traced_bytes_per_state(case: str, states: int) -> float:
    # What `pacer-stream bench --only memory` reports for ``case`` (traced bytes per
    # campaign/channel with a day's plan and 24 hours of history, ids emptied), on
    # fewer states. A first small run warms the per-process caches (layouts, shared
    # plans), which 2,000 states amortise. In a process of its own: traced bytes also
    # count the growth of process-wide caches (the campaign-id verdicts), which other
    # tests in this process have already filled.
    code = (
        "from pacer_stream.bench import core_bench as cb; "
        "cb.traced_bytes_per_state('shared', 20); "
        f"print(cb.traced_bytes_per_state({case!r}, {states}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
    return float(out.stdout.decode().strip().splitlines()[-1])


def test_the_bench_state_fits_two_kib_per_campaign_channel() -> None:
    # A regression that brings back a per-channel dict, tuple or array of int objects
    # takes it past the bound.
    assert _traced_bytes_per_state("shared", 400) <= 2_048


def test_a_campaign_with_a_budget_of_its_own_fits_two_kib_per_campaign_channel() -> None:
    # No plan is shared between campaigns here: each keeps its plan object and its
    # cumulative plan (8 bytes a boundary at this budget), its caps derived and its
    # weights shared. More states than above: the per-process tables grow in steps,
    # which 400 states amortise less (~1,860 B there, ~1,820 at 1,000).
    assert _traced_bytes_per_state("own_budget", 1_000) <= 2_048


def test_a_realistic_campaign_fits_two_kib_per_campaign_channel() -> None:
    # $500 a day of its own, $2 events with clicks, impressions and revenue, two input
    # offsets: ~1,960 B at 2,000 states, ~1,975 at 1,000 (the shared breaker, the
    # packed cumulative plan and the hour column left out of consecutive hours keep it
    # under the bound).
    assert _traced_bytes_per_state("realistic", 1_000) <= 2_048


def test_forgetting_the_valid_campaign_ids_empties_the_cache_only() -> None:
    check_campaign_id("camp-forget-1")
    assert "camp-forget-1" in ids._VALID_CAMPAIGN_IDS
    forget_valid_campaign_ids()
    assert not ids._VALID_CAMPAIGN_IDS
    assert check_campaign_id("camp-forget-1") == "camp-forget-1"  # checked anew
    with pytest.raises(InvalidArgument):
        check_campaign_id("camp{1}")
    assert list(ids._VALID_CAMPAIGN_IDS) == ["camp-forget-1"]


def test_copies_and_pickles_keep_the_shared_empties_and_the_packed_columns() -> None:
    h = Harness()
    _morning(h)
    for state in (copy.deepcopy(h.state), pickle.loads(pickle.dumps(h.state))):
        ch = state.channels[G]
        assert state == h.state and ch.history == h.ch().history
        assert ch.reservations is NO_ENTRIES and state.answered is NO_ENTRIES
        assert ch.report_lags is h.ch().report_lags  # the shared empty lags
        ch.own_report_lags().append(1.0)  # writable after the copy
        ch.history.add(ch.history.newest, 1, 0, 0, 0, 0)
        assert ch.history != h.ch().history


def test_a_day_of_history_is_immutable_bytes_and_weeks_of_it_are_updated_in_place() -> None:
    h = Harness()
    _morning(h)
    assert type(h.ch().history._buf) is bytes  # a day of rows: rebuilt on each change
    long = Harness().ch().history
    for hour in range(100):
        long.add(492_000 + hour, 10_000, 1, 0, 50, 20_000)
    buf = long._buf
    assert type(buf) is bytearray and len(buf) > IN_PLACE_BYTES
    long.add(492_099, 5, 0, 0, 0, 0)  # the current hour: in place, no copy of the rows
    assert long._buf is buf and long.get(492_099) == [10_005, 1, 0, 50, 20_000]
    again = serde.loads(serde.dumps(h.state)).channels[G].history
    assert type(again._buf) is bytes and again == h.ch().history
