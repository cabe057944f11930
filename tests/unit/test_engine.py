"""The engine: configuration, event placement (late, early, earlier days, too old/new),
idempotency, day roll-over, mid-day activation, reservations and commands."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from msgspec.structs import replace

from pacer_stream.core.engine import PacingEngine
from pacer_stream.core.pacing import planned_at
from pacer_stream.core.types import (
    Alert,
    AlertType,
    BreakerCause,
    BreakerTransition,
    CampaignConfig,
    ChannelConfig,
    ChannelType,
    CircuitBreakerState,
    Code,
    PacingStrategy,
    SpendEvent,
    Thresholds,
)
from pacer_stream.errors import InvalidArgument, InvalidTime, WrongType

from .conftest import DAY0, UNCAPPED, F, G, Harness, U


def alerts_of(outputs: list[object], kind: AlertType | None = None) -> list[Alert]:
    return [o for o in outputs if isinstance(o, Alert) and (kind is None or o.alert_type is kind)]


# -- configuration ---------------------------------------------------------------------
def test_configure_builds_todays_plan() -> None:
    h = Harness({G: 1000 * U, F: 500 * U})
    assert h.state.configured
    for c, b in ((G, 1000 * U), (F, 500 * U)):
        ch = h.ch(c)
        assert ch.budget == ch.base_budget == b
        assert ch.day is not None and ch.day.date == date(2026, 3, 2)
        assert ch.plan is not None and sum(ch.plan.amounts) == b
        assert ch.cum_plan[0] == 0 and ch.cum_plan[-1] == b


def test_configure_rejects_bad_input() -> None:
    eng = PacingEngine()
    with pytest.raises(InvalidArgument, match="timezone"):
        eng.configure(None, CampaignConfig("c", {G: ChannelConfig(U)}, timezone="Nowhere/X"), DAY0)
    with pytest.raises(InvalidArgument, match="daily budget of google_ads"):
        eng.configure(None, CampaignConfig("c", {G: ChannelConfig(-1)}), DAY0)
    with pytest.raises(WrongType):
        eng.configure(None, CampaignConfig("c", {G: ChannelConfig(1.5)}), DAY0)  # type: ignore[arg-type]
    with pytest.raises(InvalidTime, match="timezone-aware"):
        eng.configure(None, CampaignConfig("c", {G: ChannelConfig(U)}), datetime(2026, 3, 2))
    st, _ = eng.configure(None, CampaignConfig("c", {G: ChannelConfig(U)}), DAY0)
    with pytest.raises(InvalidArgument, match="applied to state"):
        eng.configure(st, CampaignConfig("other", {G: ChannelConfig(U)}), DAY0)
    with pytest.raises(InvalidArgument):
        eng.new_campaign("")
    with pytest.raises(WrongType):
        eng.new_campaign(7)  # type: ignore[arg-type]


def test_thresholds_validate_on_construction() -> None:
    with pytest.raises(InvalidArgument, match="max_hourly_spend_pct"):
        Thresholds(max_hourly_spend_pct=1.5)
    with pytest.raises(InvalidArgument, match="max_hourly_spend_pct"):
        Thresholds(max_hourly_spend_pct=0.0)
    with pytest.raises(WrongType):
        Thresholds(breaker_cooldown_s=1.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="finite"):
        Thresholds(pace_warning_threshold=float("nan"))
    with pytest.raises(InvalidArgument, match="pace_critical_threshold"):
        Thresholds(pace_warning_threshold=2.5)
    with pytest.raises(InvalidArgument, match="velocity_window_s"):
        Thresholds(velocity_window_s=1000)


def test_mid_day_budget_change_replans_the_rest_of_the_day() -> None:
    h = Harness(thresholds=UNCAPPED)
    h.at(DAY0 + timedelta(hours=12))
    h.spend(400 * U)
    cfg = CampaignConfig("c", {G: ChannelConfig(2000 * U)}, PacingStrategy.EVEN_DISTRIBUTION,
                         thresholds=UNCAPPED)
    h.engine.configure(h.state, cfg, h.now)
    ch = h.ch()
    assert ch.budget == 2000 * U
    assert ch.spent_total == 400 * U  # spend survives the change
    assert sum(ch.plan.amounts) == 2000 * U  # type: ignore[union-attr]


def test_removing_a_channel_from_the_config_takes_its_budget_away() -> None:
    h = Harness({G: 100 * U, F: 100 * U})
    h.engine.configure(h.state, CampaignConfig("c", {G: ChannelConfig(100 * U)}), h.now)
    assert h.ch(F).budget == 0
    assert h.decide(U, F).code is Code.NO_BUDGET


# -- event placement -------------------------------------------------------------------
def test_spend_lands_in_its_hour() -> None:
    h = Harness()
    h.at(DAY0 + timedelta(hours=5, minutes=10))
    r = h.spend(3 * U, clicks=2, conversions=1)
    assert r.applied and not r.duplicate and r.placement == "today"
    ch = h.ch()
    assert ch.spent[5] == 3 * U
    assert ch.spent_total == 3 * U
    assert ch.clicks_today == 2 and ch.conversions_today == 1


def test_late_event_of_today_goes_to_its_own_hour() -> None:
    h = Harness()
    h.at(DAY0 + timedelta(hours=9))
    r = h.spend(2 * U, when=DAY0 + timedelta(hours=3, minutes=30))
    assert r.placement == "today"
    assert h.ch().spent[3] == 2 * U
    assert h.ch().spent[9] == 0
    assert h.ch().spent_total == 2 * U


def test_event_of_an_earlier_day_updates_history_only() -> None:
    h = Harness()
    h.at(DAY0 + timedelta(hours=9))
    when = DAY0 - timedelta(days=3) + timedelta(hours=14)
    r = h.spend(7 * U, when=when, clicks=5)
    assert r.applied and r.placement == "earlier_day"
    ch = h.ch()
    assert ch.spent_total == 0 and ch.clicks_today == 0
    assert ch.history.buckets[int(when.timestamp() // 3600)][0] == 7 * U


@pytest.mark.parametrize(
    ("offset", "code"),
    [(-timedelta(days=28, seconds=1), "time_too_old"), (timedelta(seconds=301), "time_in_future")],
)
def test_too_old_or_too_future_events_raise_and_change_nothing(
    offset: timedelta, code: str
) -> None:
    h = Harness()
    h.at(DAY0 + timedelta(hours=9))
    h.spend(U)
    before = copy.deepcopy(h.state)
    ev = h.event(5 * U, when=h.now + offset, event_id="late-or-early")
    with pytest.raises(InvalidTime) as exc:
        h.engine.record_spend(h.state, ev, h.now)
    assert exc.value.code == code
    assert isinstance(exc.value, ValueError)
    assert h.state == before
    # not remembered as seen either: a corrected clock can still apply it later
    assert not h.state.dedupe.seen("late-or-early", h.now.timestamp())


def test_events_at_the_limits_are_accepted() -> None:
    h = Harness()
    h.at(DAY0 + timedelta(hours=9))
    assert h.spend(U, when=h.now - timedelta(days=28)).applied
    assert h.spend(U, when=h.now + timedelta(seconds=300)).applied


def test_duplicate_event_id_changes_nothing() -> None:
    h = Harness()
    h.at(DAY0 + timedelta(hours=9))
    first = h.spend(4 * U, event_id="dup", clicks=3)
    assert first.applied
    before = copy.deepcopy(h.state)
    again = h.spend(4 * U, event_id="dup", clicks=3)
    assert not again.applied and again.duplicate and again.placement == "duplicate"
    assert again.outputs == []
    assert h.state == before
    # the same id with different content is still the same event
    h.spend(99 * U, event_id="dup")
    assert h.state == before


def test_slightly_future_event_counts_now_and_only_once() -> None:
    """An event stamped a few minutes ahead (clock skew) counts in the current hour; it
    must not be counted again when the next day starts."""
    h = Harness()
    h.at(DAY0 + timedelta(hours=23, minutes=58))
    r = h.spend(5 * U, when=h.now + timedelta(minutes=4))
    assert r.placement == "today"
    assert h.ch().spent[23] == 5 * U
    h.at(DAY0 + timedelta(days=1, minutes=10))
    snap = h.engine.snapshot(h.state, G, h.now)
    assert h.ch().day.date == date(2026, 3, 3)  # type: ignore[union-attr]
    assert snap.spent_micros == 0


def test_half_hour_zone_day_roll_does_not_count_yesterdays_spend() -> None:
    """Asia/Kolkata days start at :30 UTC; spend at 23:40 local belongs to that day only."""
    h = Harness(tz="Asia/Kolkata", start=datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    h.at(datetime(2026, 3, 1, 18, 10, tzinfo=UTC))  # 23:40 IST on Mar 1
    h.spend(5 * U)
    assert h.ch().day.date == date(2026, 3, 1)  # type: ignore[union-attr]
    assert h.ch().spent_total == 5 * U
    h.at(datetime(2026, 3, 1, 18, 40, tzinfo=UTC))  # 00:10 IST on Mar 2
    snap = h.engine.snapshot(h.state, G, h.now)
    assert h.ch().day.date == date(2026, 3, 2)  # type: ignore[union-attr]
    assert snap.spent_micros == 0


def test_late_event_after_midnight_goes_to_history_of_its_day() -> None:
    h = Harness()
    h.at(DAY0 + timedelta(days=1, minutes=5))
    r = h.spend(3 * U, when=DAY0 + timedelta(hours=23, minutes=59))
    assert r.placement == "earlier_day"
    assert h.ch().spent_total == 0


def test_spend_is_placed_in_local_hours_of_a_dst_day() -> None:
    ny = ZoneInfo("America/New_York")
    h = Harness(tz="America/New_York", start=datetime(2026, 3, 8, tzinfo=ny))
    assert h.ch().day.n_slots == 23  # type: ignore[union-attr]
    h.at(datetime(2026, 3, 8, 3, 15, tzinfo=ny))  # right after the jump: slot 2
    h.spend(U)
    assert h.ch().spent[2] == U
    assert sum(h.ch().plan.amounts) == 1000 * U  # type: ignore[union-attr]


# -- day roll-over -----------------------------------------------------------------------
def test_day_roll_resets_today_and_keeps_history() -> None:
    h = Harness({G: 100 * U, F: 100 * U})
    h.at(DAY0 + timedelta(hours=12))
    h.spend(10 * U, clicks=4)
    h.spend(10 * U, channel=F, clicks=4, conversions=4)
    moves, _ = h.engine.reallocate(h.state, h.now)
    assert moves[G] < 0 and h.ch(G).budget == 100 * U + moves[G]
    h.at(DAY0 + timedelta(days=1, hours=1))
    h.tick()
    ch = h.ch(G)
    assert ch.day.date == date(2026, 3, 3)  # type: ignore[union-attr]
    assert ch.spent_total == 0 and ch.clicks_today == 0 and sum(ch.spent) == 0
    assert ch.budget == ch.base_budget == 100 * U  # today's reallocation does not carry
    assert sum(b[0] for b in ch.history.buckets.values()) == 10 * U


def test_day_roll_after_days_of_silence() -> None:
    h = Harness()
    h.at(DAY0 + timedelta(hours=1))
    h.spend(U)
    h.at(DAY0 + timedelta(days=5, hours=3))
    assert h.decide(U).allowed
    assert h.ch().day.date == date(2026, 3, 7)  # type: ignore[union-attr]
    assert h.ch().spent_total == 0


# -- mid-day activation ------------------------------------------------------------------
def test_mid_day_activation_plans_only_the_rest_of_the_day() -> None:
    h = Harness(start=DAY0 + timedelta(hours=10, minutes=30))
    ch = h.ch()
    amounts = ch.plan.amounts  # type: ignore[union-attr]
    assert all(a == 0 for a in amounts[:10])
    assert sum(amounts) == 1000 * U
    assert amounts[10] < amounts[11]  # the activation hour is only half left
    assert planned_at(ch, h.now.timestamp()) == 0
    # nothing is "behind plan" at activation: no underpacing alert
    h.advance(minutes=5)
    assert alerts_of(h.tick(), AlertType.UNDERPACING) == []
    assert h.decide(U).allowed


def test_late_activation_never_plans_budget_in_past_hours() -> None:
    h = Harness(start=DAY0 + timedelta(hours=20))
    ch = h.ch()
    amounts = ch.plan.amounts  # type: ignore[union-attr]
    assert all(a == 0 for a in amounts[:20])
    assert sum(amounts[20:]) == 1000 * U
    assert planned_at(ch, h.now.timestamp()) == 0


def test_activation_is_forgotten_the_next_day() -> None:
    h = Harness(start=DAY0 + timedelta(hours=10))
    h.at(DAY0 + timedelta(days=1, hours=1))
    h.tick()
    assert h.ch().active_from is None
    assert all(a > 0 for a in h.ch().plan.amounts)  # type: ignore[union-attr]


# -- unbudgeted spend --------------------------------------------------------------------
def test_spend_without_budget_is_recorded_alerted_once_and_denied() -> None:
    h = Harness({G: 100 * U})
    h.at(DAY0 + timedelta(hours=9))
    r1 = h.spend(2 * U, channel=F, clicks=1)
    r2 = h.spend(3 * U, channel=F)
    assert r1.applied and r2.applied
    assert len(alerts_of(r1.outputs, AlertType.UNBUDGETED_SPEND)) == 1
    assert alerts_of(r2.outputs, AlertType.UNBUDGETED_SPEND) == []
    assert h.ch(F).spent_total == 5 * U
    d = h.decide(U, F)
    assert not d.allowed and d.code is Code.NO_BUDGET
    # the next day it alerts again, once
    h.at(DAY0 + timedelta(days=1, hours=9))
    assert len(alerts_of(h.spend(U, channel=F).outputs, AlertType.UNBUDGETED_SPEND)) == 1


def test_unknown_campaign_spend_is_recorded_but_never_authorised() -> None:
    eng = PacingEngine()
    st = eng.new_campaign("ghost")
    ev = SpendEvent("e1", "ghost", G, U, DAY0)
    assert eng.record_spend(st, ev, DAY0).applied
    assert eng.decide(st, G, U, DAY0).code is Code.UNKNOWN_CAMPAIGN
    assert eng.decide(None, G, U, DAY0).code is Code.UNKNOWN_CAMPAIGN


# -- spend validation --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("amount_micros", -1, InvalidArgument),
        ("amount_micros", 1.5, WrongType),
        ("clicks", -1, InvalidArgument),
        ("conversions", True, InvalidArgument),
        ("impressions", -5, InvalidArgument),
        ("impressions", False, InvalidArgument),
        ("revenue_micros", 0.0, InvalidArgument),
        ("revenue_micros", 2**53, InvalidArgument),
        ("clicks", 2.0, InvalidArgument),
        ("event_id", "", InvalidArgument),
        ("event_id", 5, WrongType),
        ("channel", "google_ads", WrongType),
        ("event_time", datetime(2026, 3, 2, 9), InvalidTime),
    ],
)
def test_spend_event_validation(field: str, value: object, error: type[Exception]) -> None:
    h = Harness()
    h.at(DAY0 + timedelta(hours=9))
    ev = h.event(U)
    bad = replace(ev, **{field: value})
    before = copy.deepcopy(h.state)
    with pytest.raises(error):
        h.engine.record_spend(h.state, bad, h.now)
    assert h.state == before


def test_zero_amount_spend_is_a_fact_with_clicks() -> None:
    h = Harness()
    h.at(DAY0 + timedelta(hours=9))
    assert h.spend(0, clicks=3).applied
    assert h.ch().clicks_today == 3


# -- reservations --------------------------------------------------------------------------
def test_reserve_holds_budget_until_ttl() -> None:
    h = Harness(thresholds=UNCAPPED)
    h.at(DAY0 + timedelta(hours=12))
    d = h.reserve(5 * U, request_id="q1")
    assert d.allowed and d.code is Code.OK
    assert d.reservation_id == "res-q1"
    assert d.expires_at == h.now + timedelta(seconds=60)
    assert d.remaining_micros == 995 * U
    assert h.ch().reserved_total == 5 * U
    h.advance(seconds=59)
    assert h.decide(U).remaining_micros == 995 * U
    h.advance(seconds=1)
    # Expired but unreported: still held against the daily cap for the report grace
    # period (a late platform has probably spent it), then released.
    assert h.decide(U).remaining_micros == 995 * U
    assert h.ch().reservations == {}
    assert h.ch().unreported_total == 5 * U
    h.advance(seconds=600)
    assert h.decide(U).remaining_micros == 1000 * U
    assert h.ch().unreported_total == 0


def test_late_report_of_an_expired_reservation_settles_its_hold() -> None:
    h = Harness(thresholds=UNCAPPED)
    h.at(DAY0 + timedelta(hours=12))
    d = h.reserve(5 * U, request_id="late")
    h.advance(minutes=5)
    h.spend(4 * U, reservation_id=d.reservation_id)
    ch = h.ch()
    assert ch.unreported_total == 0 and ch.spent_total == 4 * U
    assert h.decide(U).remaining_micros == 996 * U


def test_reserve_is_idempotent_by_request_id() -> None:
    h = Harness(thresholds=UNCAPPED)
    h.at(DAY0 + timedelta(hours=12))
    a = h.reserve(5 * U, request_id="same")
    b = h.reserve(5 * U, request_id="same")
    assert a.reservation_id == b.reservation_id
    assert b.allowed and b.expires_at == a.expires_at
    assert h.ch().reserved_total == 5 * U
    assert len(h.ch().reservations) == 1


def test_denied_reservation_holds_nothing() -> None:
    h = Harness({G: 10 * U}, thresholds=UNCAPPED)
    h.at(DAY0 + timedelta(hours=23))
    d = h.reserve(11 * U)
    assert not d.allowed and d.code is Code.DAILY_CAP
    assert d.reservation_id is None
    assert h.ch().reserved_total == 0


@pytest.mark.parametrize("actual", [3 * U, 5 * U, 7 * U])
def test_settle_with_lower_equal_or_higher_actual_amount(actual: int) -> None:
    h = Harness(thresholds=UNCAPPED)
    h.at(DAY0 + timedelta(hours=12))
    d = h.reserve(5 * U)
    h.spend(actual, reservation_id=d.reservation_id)
    ch = h.ch()
    assert ch.reserved_total == 0 and ch.reservations == {}
    assert ch.spent_total == actual
    assert ch.remaining == 1000 * U - actual


def test_settling_an_expired_or_unknown_reservation_still_records_the_spend() -> None:
    h = Harness(thresholds=UNCAPPED)
    h.at(DAY0 + timedelta(hours=12))
    d = h.reserve(5 * U)
    h.advance(minutes=2)
    h.spend(5 * U, reservation_id=d.reservation_id)
    h.spend(U, reservation_id="res-never-existed")
    assert h.ch().spent_total == 6 * U
    assert h.ch().reserved_total == 0


def test_release_gives_the_hold_back_once() -> None:
    h = Harness(thresholds=UNCAPPED)
    h.at(DAY0 + timedelta(hours=12))
    d = h.reserve(5 * U)
    assert h.engine.release(h.state, G, d.reservation_id, h.now)  # type: ignore[arg-type]
    assert not h.engine.release(h.state, G, d.reservation_id, h.now)  # type: ignore[arg-type]
    assert not h.engine.release(h.state, F, "x", h.now)
    assert h.ch().reserved_total == 0


def test_duplicate_settlement_does_not_release_twice() -> None:
    h = Harness(thresholds=UNCAPPED)
    h.at(DAY0 + timedelta(hours=12))
    d1 = h.reserve(5 * U)
    h.spend(5 * U, reservation_id=d1.reservation_id, event_id="settle-1")
    d2 = h.reserve(5 * U)
    h.spend(5 * U, reservation_id=d1.reservation_id, event_id="settle-1")  # redelivered
    assert h.ch().reserved_total == 5 * U
    assert d2.reservation_id in h.ch().reservations


def test_answered_request_ids_are_bounded() -> None:
    h = Harness({G: 10**12}, thresholds=UNCAPPED)
    h.at(DAY0 + timedelta(hours=12))
    for i in range(10_050):
        h.engine.reserve(h.state, G, 1, f"q{i}", h.now)
    assert len(h.state.answered) <= 10_000


def test_retry_after_expiry_is_denied_with_its_own_code() -> None:
    h = Harness(thresholds=UNCAPPED)
    h.at(DAY0 + timedelta(hours=12))
    h.reserve(5 * U, request_id="q")
    h.advance(minutes=5)
    d = h.reserve(5 * U, request_id="q")
    assert not d.allowed and d.code is Code.RESERVATION_EXPIRED
    assert h.ch().reserved_total == 0


# -- commands ------------------------------------------------------------------------------
def test_emergency_stop_and_resume() -> None:
    h = Harness({G: 100 * U, F: 100 * U})
    h.at(DAY0 + timedelta(hours=9))
    out = h.engine.emergency_stop(h.state, "fraud", h.now)
    trans = [o for o in out if isinstance(o, BreakerTransition)]
    assert {t.channel for t in trans} == {G, F}
    assert all(t.state is CircuitBreakerState.OPEN and t.forced for t in trans)
    assert all(t.cause is BreakerCause.EMERGENCY_STOP for t in trans)
    assert len(alerts_of(out, AlertType.CIRCUIT_BREAKER_OPEN)) == 2
    d = h.decide(U)
    assert not d.allowed and d.code is Code.EMERGENCY_STOP and "fraud" in d.reason
    # stopping twice emits nothing new
    assert h.engine.emergency_stop(h.state, "again", h.now) == []
    out = h.engine.resume(h.state, h.now)
    trans = [o for o in out if isinstance(o, BreakerTransition)]
    assert all(t.state is CircuitBreakerState.HALF_OPEN for t in trans)
    assert all(t.cause is BreakerCause.RESUME for t in trans)
    assert not h.state.emergency_stopped
    assert h.decide(U).allowed
    with pytest.raises(WrongType):
        h.engine.emergency_stop(h.state, None, h.now)  # type: ignore[arg-type]


def test_force_breaker_command() -> None:
    h = Harness()
    h.at(DAY0 + timedelta(hours=9))
    out = h.engine.force_breaker(h.state, G, CircuitBreakerState.OPEN, h.now)
    assert out[0].state is CircuitBreakerState.OPEN  # type: ignore[union-attr]
    d = h.decide(U)
    assert d.code is Code.BREAKER_OPEN
    h.advance(hours=5)
    assert h.decide(U).code is Code.BREAKER_OPEN  # forced: no cooldown
    h.engine.force_breaker(h.state, G, CircuitBreakerState.CLOSED, h.now)
    assert h.decide(U).allowed


# -- read models ---------------------------------------------------------------------------
def test_snapshot_reports_the_channel() -> None:
    h = Harness({G: 240 * U}, thresholds=UNCAPPED)
    h.at(DAY0 + timedelta(hours=6))
    h.spend(30 * U, clicks=10, conversions=2, when=DAY0 + timedelta(hours=5, minutes=30))
    assert h.reserve(U).allowed
    s = h.engine.snapshot(h.state, G, h.now)
    assert s.budget_micros == 240 * U
    assert s.spent_micros == 30 * U
    assert s.reserved_micros == U
    assert s.planned_micros == 60 * U
    assert s.pace_ratio == pytest.approx(0.5)
    assert s.time_elapsed_pct == 0.25
    # rollover: the 210 units left are spread over the 18 remaining hours
    assert s.hour_allowance_micros in (210 * U // 18, 210 * U // 18 + 1)
    assert s.hour_spent_micros == 0
    assert s.breaker is CircuitBreakerState.CLOSED
    assert s.clicks == 10 and s.conversions == 2


def test_allowance_for_the_fast_path_is_what_policy_allows_by_the_end_of_the_slice() -> None:
    h = Harness({G: 240 * U})
    for minutes in (5, 65, 300, 600, 1438):
        h.at(DAY0 + timedelta(minutes=minutes))
        a = h.engine.allowance(h.state, G, h.now, 1.0)
        assert a > 0
        h.advance(seconds=1)  # the allowance is for the slice that ends here
        assert h.decide(a).allowed  # conservative: never more than policy allows
        h.spend(a)
    h.engine.emergency_stop(h.state, "x", h.now)
    assert h.engine.allowance(h.state, G, h.now, 1.0) == 0


def test_naive_now_is_rejected_by_the_core() -> None:
    h = Harness()
    with pytest.raises(InvalidTime):
        h.engine.decide(h.state, G, U, datetime(2026, 3, 2, 9))


def test_channel_type_is_required_by_the_core() -> None:
    h = Harness()
    with pytest.raises(WrongType):
        h.engine.snapshot(h.state, 5, h.now)  # type: ignore[arg-type]
    assert h.engine.decide(h.state, ChannelType.VIDEO, U, h.now).code is Code.NO_BUDGET
