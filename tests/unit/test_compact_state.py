"""The in-memory state stays compact: structural properties, not byte counts.

A worker holds one value per campaign/channel, so the container types matter: a stray
``deque`` costs ~760 bytes empty, a ``set`` 216, a list of ints one object per value.
These tests pin the choices that keep ``pacer-stream bench --only memory`` small, so a
change that brings a standard container back fails here rather than in a benchmark.
"""

from __future__ import annotations

from array import array
from collections import deque
from dataclasses import fields
from datetime import timedelta

import pytest

from pacer_stream.core import serde
from pacer_stream.core.compact import NO_ENTRIES, NO_OUTPUTS, AlertSet, FloatQueue
from pacer_stream.core.report_lag import LAG_SAMPLES, new_lags
from pacer_stream.core.state import ChannelState
from pacer_stream.core.types import AlertType, ChannelType, Thresholds

from .conftest import DAY0, G, Harness, U


def _morning(h: Harness) -> None:
    for k in range(20):
        h.at(DAY0 + timedelta(minutes=30 * k + 1)).spend(5 * U)


def _standard_containers(ch: ChannelState) -> list[str]:
    return [f.name for f in fields(ch) if isinstance(getattr(ch, f.name), (deque, set, list))]


def test_a_channel_holds_no_deque_set_or_list() -> None:
    h = Harness()
    _morning(h)
    ch = h.ch()
    assert _standard_containers(ch) == []
    assert _standard_containers(serde.loads(serde.dumps(h.state)).channels[G]) == []


def test_per_slot_series_and_rings_are_packed_arrays() -> None:
    h = Harness()
    _morning(h)
    ch = h.ch()
    for series in (ch.spent, ch.cum_plan, ch.velocity.amounts):
        assert isinstance(series, array) and series.typecode == "q"
    # epoch minutes fit 4 bytes (see MinuteRing)
    assert isinstance(ch.velocity.minutes, array) and ch.velocity.minutes.typecode == "i"


def test_unused_rings_and_queues_allocate_nothing() -> None:
    ch = Harness().ch()  # planned, no spend yet
    assert not ch.unmet.minutes and ch.unmet.minutes is ch.velocity.minutes  # shared empty
    for q in (ch.overspend_times, ch.unauthorised_times, ch.report_lags):
        assert isinstance(q, FloatQueue) and not q
    loaded = serde.loads(serde.dumps(Harness().state)).channels[G]
    assert loaded.unmet.minutes is loaded.velocity.minutes


def test_channels_with_equal_plans_share_plan_and_cumulative_plan() -> None:
    a, b = Harness(campaign_id="a"), Harness(campaign_id="b")
    assert a.ch().plan is b.ch().plan
    assert a.ch().cum_plan is b.ch().cum_plan
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


def test_channel_type_is_not_a_container_field() -> None:
    # guards the helper above: it must see real fields, not silently nothing
    ch = ChannelState(channel=ChannelType.GOOGLE_ADS)
    ch.active_alerts = set()  # type: ignore[assignment]
    assert _standard_containers(ch) == ["active_alerts"]


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
