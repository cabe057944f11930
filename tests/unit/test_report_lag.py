"""The grace of expired, unreported reservations follows the channel's report lag."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from pacer_stream.core.engine import PacingEngine
from pacer_stream.core.report_lag import (
    LAG_SAMPLES,
    MAX_GRACE_S,
    MIN_GRACE_S,
    MIN_LAG_SAMPLES,
    new_lags,
    record_lag,
    report_grace,
)
from pacer_stream.core.types import (
    CampaignConfig,
    ChannelConfig,
    ChannelType,
    PacingStrategy,
    SpendEvent,
    Thresholds,
)

from .conftest import U

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

T = Thresholds()
CH = ChannelType.GOOGLE_ADS


def test_configured_grace_until_enough_lags_are_known() -> None:
    lags = new_lags([300.0] * (MIN_LAG_SAMPLES - 1))
    assert report_grace(lags, T) == T.report_grace_s


def test_grace_covers_a_late_platform_and_shrinks_for_a_prompt_one() -> None:
    late = new_lags([300.0] * MIN_LAG_SAMPLES)
    grace = report_grace(late, T)
    # the reservation lives ttl seconds, then the grace: together past the 5-minute lag
    assert T.reservation_ttl_s + grace > 300.0
    assert grace == 300.0 * 1.5 + 60.0 - T.reservation_ttl_s
    prompt = new_lags([2.0] * MIN_LAG_SAMPLES)
    assert report_grace(prompt, T) == MIN_GRACE_S


def test_one_slow_report_in_ten_is_covered_by_the_percentile() -> None:
    lags = new_lags([5.0] * 9 + [900.0])
    assert report_grace(lags, T) >= 900.0 * 1.5 + 60.0 - T.reservation_ttl_s


def test_recent_lags_are_bounded_and_bad_values_count_zero() -> None:
    lags = new_lags()
    for i in range(LAG_SAMPLES + 10):
        record_lag(lags, float(i))
    assert len(lags) == LAG_SAMPLES and lags[0] == 10.0
    record_lag(lags, float("nan"))
    record_lag(lags, -5.0)
    assert list(lags)[-2:] == [0.0, 0.0]


@given(st.lists(st.floats(min_value=0, max_value=10**7), min_size=MIN_LAG_SAMPLES, max_size=80))
def test_grace_is_always_bounded(values: list[float]) -> None:
    lags = new_lags()
    for v in values:
        record_lag(lags, v)
    assert MIN_GRACE_S <= report_grace(lags, T) <= MAX_GRACE_S


def test_engine_keeps_late_money_on_the_cap_past_the_configured_grace() -> None:
    """A platform that reports 15 minutes late: once its lag is known, an expired hold
    keeps counting for longer than a fixed 600 s would, so the cap is not re-opened to
    money already spent."""
    eng = PacingEngine()
    t = Thresholds(max_hourly_spend_pct=1.0, frontload_protection_hours=0, velocity_multiple=1e6)
    cfg = CampaignConfig(
        "c", {CH: ChannelConfig(100 * U)}, PacingStrategy.EVEN_DISTRIBUTION, "UTC", t
    )
    now = START
    state, _ = eng.configure(None, cfg, now)
    lag = timedelta(minutes=15)
    for i in range(MIN_LAG_SAMPLES):  # settled 15 minutes after reserving
        d, _ = eng.reserve(state, CH, 1, f"q{i}", now)
        assert d.allowed
        ev = SpendEvent(f"e{i}", "c", CH, 1, now, reservation_id=d.reservation_id)
        eng.record_spend(state, ev, now + lag)
        now += timedelta(seconds=1)
    now += lag
    ch = state.channels[CH]
    assert ch.report_lags[-1] >= 900.0
    d, _ = eng.reserve(state, CH, 2 * U, "big", now)
    assert d.allowed
    # 11 minutes later: expired, unreported, past the fixed grace, still on the cap
    later = now + timedelta(seconds=T.reservation_ttl_s + T.report_grace_s + 1)
    eng.tick(state, later)
    assert ch.unreported_total == 2 * U
    # ... and released once the observed lag (with headroom) has passed
    eng.tick(
        state, now + timedelta(seconds=T.reservation_ttl_s + report_grace(ch.report_lags, t) + 1)
    )
    assert ch.unreported_total == 0
