"""Training of the forecast models: determinism, thresholds, confidence, time budget."""

from __future__ import annotations

import itertools
import pickle
import time
from datetime import UTC, datetime

import numpy as np
import pytest

from pacer_stream.core.allocation.base import AllocationContext
from pacer_stream.core.forecast.dataset import HistorySnapshot
from pacer_stream.core.forecast.models import BASIC_CANDIDATES, FULL_CANDIDATES, HOUR_MEAN
from pacer_stream.core.forecast.predictor import data_confidence
from pacer_stream.core.forecast.service import snapshot
from pacer_stream.core.forecast.training import (
    BASIC_CONFIDENCE_CAP,
    TIER_BASIC,
    TIER_FULL,
    TIER_NONE,
    UNVALIDATED_ERROR_FACTOR,
    TrainedModel,
    poisson_mad,
    train,
)
from pacer_stream.core.history import HourlyHistory

from .forecast_market import Market, synthetic_history

M = Market()


def _now(hist: HourlyHistory) -> datetime:
    last = max(hist.buckets) if hist.buckets else int(M.day(0).start // 3600) - 1
    return datetime.fromtimestamp((last + 1) * 3600, UTC)


def _train(n_hours: int, *, seed: int = 0, clean: bool = False, **kw: object) -> TrainedModel:
    hist = synthetic_history(M, n_hours, seed=seed, clean=clean)
    now = _now(hist)
    return train(snapshot(hist, M.tz, now), now, seed=seed, **kw)  # type: ignore[arg-type]


def _ctx_after(n_hours: int, seed: int = 0) -> tuple[AllocationContext, HourlyHistory]:
    """History of n_hours and a context planning the next full local day after it."""
    hist = synthetic_history(M, n_hours, seed=seed)
    last = max(hist.buckets)
    d = 0
    while M.day(d).start <= last * 3600:
        d += 1
    day = M.day(d)
    return AllocationContext(day, hist, int(day.start // 3600)), hist


def test_training_is_deterministic_with_a_fixed_seed() -> None:
    a = _train(14 * 24, seed=7)
    b = _train(14 * 24, seed=7)
    assert a.label == b.label
    assert a.cv == b.cv
    assert a.confidence == b.confidence
    ctx, _ = _ctx_after(14 * 24, seed=7)
    fa, fb = a.forecast(ctx), b.forecast(ctx)
    assert fa == fb


@pytest.mark.parametrize("name", FULL_CANDIDATES)
def test_every_candidate_trains_deterministically_and_predicts_positive_rates(name: str) -> None:
    a = _train(10 * 24, seed=3, candidates=(name,))
    b = _train(10 * 24, seed=3, candidates=(name,))
    assert a.cr is not None and a.cr.name == name
    ctx, _ = _ctx_after(10 * 24, seed=3)
    fa = a.forecast(ctx)
    assert fa == b.forecast(ctx)
    assert len(fa.efficiency) == ctx.day.n_slots
    assert all(v > 0 for v in fa.conversion_rate + fa.cost_per_click + fa.efficiency)


@pytest.mark.parametrize(
    ("hours", "tier"),
    [(0, TIER_NONE), (23, TIER_NONE), (24, TIER_BASIC), (167, TIER_BASIC), (168, TIER_FULL)],
)
def test_tiers_at_the_data_thresholds(hours: int, tier: str) -> None:
    m = _train(hours)
    assert m.tier == tier
    assert m.hours == hours
    assert m.usable == (tier != TIER_NONE)
    if tier == TIER_NONE:
        assert m.confidence == 0.0
        assert m.tried == ()
    if tier == TIER_BASIC:
        assert m.confidence <= BASIC_CONFIDENCE_CAP
        assert set(m.tried) <= set(BASIC_CANDIDATES)
    if tier == TIER_FULL:
        assert m.tried == FULL_CANDIDATES
        assert m.confidence > BASIC_CONFIDENCE_CAP


def test_one_day_cannot_be_cross_validated_and_gets_the_unvalidated_factor() -> None:
    m = _train(24)
    assert m.tried == ()
    assert m.error_factor == UNVALIDATED_ERROR_FACTOR
    assert m.cr is not None and m.cr.name == HOUR_MEAN
    assert m.confidence == pytest.approx(data_confidence(24) * UNVALIDATED_ERROR_FACTOR)


def test_confidence_is_monotone_in_data_quantity_on_clean_data() -> None:
    confidences = []
    hours_list = [0, 6, 12, 23, 24, 30, 36, 47, 48, 60, 72, 96, 120, 144, 166, 167, 168, 169]
    for hours in [*hours_list, 192, 240, 336, 420, 504, 600, 29 * 24 - 1]:
        m = _train(hours, clean=True)
        confidences.append(m.confidence)
    assert confidences[0] == 0.0
    assert confidences[-1] == pytest.approx(1.0)
    for a, b in itertools.pairwise(confidences):
        assert b >= a - 1e-12


def test_confidence_falls_when_out_of_sample_error_is_large() -> None:
    # Same amount of data, but conversions scrambled across hours: the hourly pattern
    # is not predictable, so the CR model misses by far more than noise explains.
    hist = synthetic_history(M, 14 * 24, seed=1)
    rng = np.random.default_rng(0)
    hours = sorted(hist.buckets)
    conv = [hist.buckets[h][2] for h in hours]
    scrambled = rng.permutation(np.array(conv) * rng.choice([0, 3], len(conv)))
    buckets = dict(hist.buckets.items())
    for h, c in zip(hours, scrambled, strict=True):
        buckets[h][2] = int(c)
    hist = HourlyHistory(hist.horizon_hours, buckets, hist.newest)
    now = _now(hist)
    noisy = train(snapshot(hist, M.tz, now), now)
    good = _train(14 * 24, seed=1)
    assert noisy.error_factor < good.error_factor
    assert noisy.confidence < good.confidence


def test_time_budget_with_an_injected_clock_stops_after_the_cheapest_candidate() -> None:
    ticks = itertools.count()

    def clock() -> float:  # every reading advances one "second"
        return float(next(ticks))

    m = _train(14 * 24, clock=clock, budget_s=0.5)
    assert m.tried == (HOUR_MEAN,)
    assert m.budget_exhausted
    assert m.usable
    assert m.cr is not None and m.cr.name == HOUR_MEAN
    assert m.elapsed_s > 0.5


def test_generous_budget_tries_every_candidate() -> None:
    ticks = itertools.count()
    m = _train(14 * 24, clock=lambda: next(ticks) * 1e-3, budget_s=100.0)
    assert m.tried == FULL_CANDIDATES
    assert not m.budget_exhausted


def test_four_weeks_train_well_under_a_second_of_cpu() -> None:
    hist = synthetic_history(M, 28 * 24, seed=2)
    now = _now(hist)
    snap = snapshot(hist, M.tz, now)
    train(snap, now)  # warm up imports / thread pools
    cpu = time.process_time()
    m = train(snap, now)
    used = time.process_time() - cpu
    assert m.tier == TIER_FULL
    assert used < 1.0, f"training took {used:.2f}s of CPU"


def test_training_ignores_hours_at_or_after_now() -> None:
    hist = synthetic_history(M, 10 * 24, seed=4)
    cut = sorted(hist.buckets)[8 * 24]
    now = datetime.fromtimestamp(cut * 3600 + 1800, UTC)
    snap = HistorySnapshot.from_history(hist.buckets, M.tz, 10**9)
    m = train(snap, now)
    assert m.hours == 8 * 24
    assert m.data_until_hour == cut


def test_no_conversions_gives_an_unusable_model_with_a_reason() -> None:
    hist = synthetic_history(M, 3 * 24, seed=1)
    buckets = dict(hist.buckets.items())
    for b in buckets.values():
        b[2] = 0
    hist = HourlyHistory(hist.horizon_hours, buckets, hist.newest)
    now = _now(hist)
    m = train(snapshot(hist, M.tz, now), now)
    assert not m.usable
    assert "conversions" in m.note


def test_models_and_snapshots_are_plain_picklable_data() -> None:
    hist = synthetic_history(M, 10 * 24, seed=5)
    now = _now(hist)
    snap = snapshot(hist, M.tz, now)
    assert pickle.loads(pickle.dumps(snap)) == snap
    m = train(snap, now, seed=5)
    m2 = pickle.loads(pickle.dumps(m))
    ctx, _ = _ctx_after(10 * 24, seed=5)
    assert m2.forecast(ctx) == m.forecast(ctx)


def test_unusable_model_refuses_to_forecast() -> None:
    m = _train(10)
    ctx, _ = _ctx_after(10)
    with pytest.raises(ValueError):
        m.forecast(ctx)


def test_poisson_mad_matches_simulation() -> None:
    rng = np.random.default_rng(0)
    for mu in (0.3, 1.0, 4.5, 20.0, 80.0):
        sim = float(np.abs(rng.poisson(mu, 200_000) - mu).mean())
        assert poisson_mad(np.array([mu]))[0] == pytest.approx(sim, rel=0.02)
    assert poisson_mad(np.array([0.0]))[0] == 0.0
