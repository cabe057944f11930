"""The hour curve: one daily harmonic of conversions per unit, learned at training."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pacer_stream.core.allocation.base import AllocationContext
from pacer_stream.core.calendar import local_day, local_hour_at
from pacer_stream.core.forecast.dataset import build_frame
from pacer_stream.core.forecast.hour_curve import HourCurve, fit_hour_curve
from pacer_stream.core.forecast.service import snapshot
from pacer_stream.core.forecast.training import train
from pacer_stream.core.history import HourlyHistory

from .conftest import U

NY = "America/New_York"
TRUE = HourCurve(0.6, -0.3)


def _market(spend_per_hour: float, base_rate: float) -> tuple[list[float], list[float]]:
    """Spend (units) and expected conversions per local hour under :data:`TRUE`."""
    spend = [spend_per_hour] * 24
    return spend, [s * base_rate * TRUE.value(h) for h, s in enumerate(spend)]


def test_a_curve_learned_from_many_conversions_is_the_true_one() -> None:
    spend, conversions = _market(1000.0, 0.02)  # ~500 conversions
    curve = fit_hour_curve(spend, conversions)
    assert curve is not None
    assert curve.cos == pytest.approx(TRUE.cos, abs=0.03)
    assert curve.sin == pytest.approx(TRUE.sin, abs=0.03)


def test_the_prior_pulls_a_curve_from_few_conversions_toward_flat() -> None:
    rich = fit_hour_curve(*_market(1000.0, 0.02))
    poor = fit_hour_curve(*_market(10.0, 0.02))  # ~5 conversions, the same shape
    assert rich is not None and poor is not None
    assert math.hypot(poor.cos, poor.sin) < 0.5 * math.hypot(rich.cos, rich.sin)
    assert poor.cos > 0 > poor.sin  # still leaning the right way


def test_hours_without_spend_carry_no_weight() -> None:
    spend, conversions = _market(1000.0, 0.02)
    for h in (2, 3, 4):
        spend[h] = 0.0
        conversions[h] = 0.0
    curve = fit_hour_curve(spend, conversions)
    assert curve is not None
    assert curve.cos == pytest.approx(TRUE.cos, abs=0.03)


def test_nothing_to_learn_from_gives_no_curve() -> None:
    assert fit_hour_curve([1.0] * 24, [0.0] * 24) is None
    assert fit_hour_curve([0.0] * 24, [0.0] * 24) is None
    with pytest.raises(ValueError, match="24 hourly totals"):
        fit_hour_curve([1.0] * 23, [1.0] * 23)


@given(st.floats(-3, 3), st.floats(-3, 3))
def test_a_curve_is_relative_to_the_days_geometric_mean(cos: float, sin: float) -> None:
    values = HourCurve(cos, sin).values(range(24))
    assert sum(math.log(v) for v in values) == pytest.approx(0.0, abs=1e-9)


def _history(tz: str, day_start_hour: int, days: int) -> HourlyHistory:
    """``days`` days of history before ``day_start_hour`` whose conversions per unit
    follow :data:`TRUE` by local hour of zone ``tz``."""
    hist = HourlyHistory()
    rng = np.random.default_rng(7)
    for h in range(day_start_hour - days * 24, day_start_hour):
        hod = local_hour_at(tz, h * 3600.0)[1]
        conversions = int(rng.poisson(50 * 0.05 * TRUE.value(hod)))
        hist.add(h, 50 * U, 40, conversions, 0, 0)
    return hist


def test_training_learns_the_curve_and_forecasts_it_per_slot_of_a_dst_day() -> None:
    day = local_day(NY, date(2026, 3, 8))  # 23 hours
    start = int(day.start // 3600)
    hist = _history(NY, start, 7)
    now = datetime.fromtimestamp(day.start, UTC)
    snap = snapshot(hist, NY, now)
    model = train(snap, now)
    frame = build_frame(snap)
    spend = [float(frame.spend[frame.hour_of_day == h].sum()) for h in range(24)]
    conversions = [float(frame.conversions[frame.hour_of_day == h].sum()) for h in range(24)]
    assert model.hour_curve == fit_hour_curve(spend, conversions)
    assert model.hour_curve is not None
    assert model.hour_curve.cos > 0.3 and model.hour_curve.sin < 0

    forecast = model.forecast(AllocationContext(day, hist, start))
    assert forecast.hour_curve == model.hour_curve.values(day.hours_of_day)
    assert len(forecast.hour_curve) == 23


def test_a_history_without_conversions_trains_no_curve() -> None:
    day = local_day(NY, date(2026, 3, 4))
    start = int(day.start // 3600)
    hist = HourlyHistory()
    for h in range(start - 72, start):
        hist.add(h, 50 * U, 40, 0, 0, 0)
    now = datetime.fromtimestamp(day.start, UTC)
    assert train(snapshot(hist, NY, now), now).hour_curve is None
