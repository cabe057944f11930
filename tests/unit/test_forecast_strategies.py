"""PREDICTIVE_ML / ADAPTIVE_HYBRID with trained models: thresholds, exact budgets on DST
days, versions in allocations, the registry and the forecaster's fallbacks."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

import pytest

from pacer_stream.core.allocation.base import AllocationContext, shape_day
from pacer_stream.core.allocation.strategies import (
    HOUR_TILT,
    MAX_PREDICTIVE_MULT,
    MIN_PREDICTIVE_MULT,
    SURE_FROM_HOUR,
    AdaptiveHybrid,
    EvenDistribution,
    HistoricalPattern,
    PerformanceWeighted,
    PredictiveML,
    default_registry,
)
from pacer_stream.core.calendar import LocalDay, local_day
from pacer_stream.core.engine import PacingEngine
from pacer_stream.core.forecast.predictor import Forecast
from pacer_stream.core.forecast.service import (
    MAX_MODEL_AGE_HOURS,
    ModelRegistry,
    RegistryForecaster,
    context_key,
    snapshot,
)
from pacer_stream.core.forecast.training import TrainedModel, train
from pacer_stream.core.history import HourlyHistory
from pacer_stream.core.types import (
    CampaignConfig,
    ChannelConfig,
    ChannelType,
    PacingStrategy,
    Thresholds,
)

from .forecast_market import Market, synthetic_history

NY = "America/New_York"
KEY = ("camp", "google_ads")
SPRING = date(2026, 3, 8)  # 23 hours in New York
FALL = date(2026, 11, 1)  # 25 hours in New York
PLAIN = date(2026, 3, 4)


def _history_before(day: LocalDay, n_hours: int, *, seed: int = 0) -> HourlyHistory:
    """``n_hours`` of synthetic history ending right before ``day`` starts."""
    start = date.fromordinal(day.date.toordinal() - (n_hours // 24 + 2))
    m = Market(tz=day.tz, start=start)
    full = synthetic_history(m, n_hours + 72, seed=seed)
    end = int(day.start // 3600)
    hours = sorted(h for h in full.buckets if h < end)[-n_hours:] if n_hours else []
    hist = HourlyHistory()
    for h in hours:
        b = full.buckets[h]
        hist.add(h, b[0], b[1], b[2], 0, 0)
    return hist


def _ctx(d: date, n_hours: int, *, seed: int = 0) -> AllocationContext:
    day = local_day(NY, d)
    return AllocationContext(day, _history_before(day, n_hours, seed=seed), int(day.start // 3600))


def _trained(ctx: AllocationContext, seed: int = 0) -> TrainedModel:
    now = datetime.fromtimestamp(ctx.day.start, UTC)
    return train(snapshot(ctx.history, ctx.day.tz, now), now, seed=seed)


def _registry_with(ctx: AllocationContext) -> ModelRegistry:
    reg = ModelRegistry()
    reg.install(KEY, _trained(ctx))
    return reg


# ---------------------------------------------------------------------------- thresholds
@pytest.mark.parametrize(
    ("hours", "prefix"),
    [
        (0, "fallback-historical"),
        (23, "fallback-historical"),
        (24, "ml-basic:"),
        (167, "ml-basic:"),
        (168, "ml-full:"),
        (400, "ml-full:"),
    ],
)
def test_predictive_thresholds_with_trained_models(hours: int, prefix: str) -> None:
    ctx = _ctx(PLAIN, hours)
    assert ctx.history.hours_with_data(ctx.day_start_hour) == hours
    reg = _registry_with(ctx)
    r = PredictiveML(reg.bound(KEY)).weigh(ctx)
    assert r.model_version is not None and r.model_version.startswith(prefix)
    assert len(r.weights) == ctx.day.n_slots
    if hours < 24:
        assert r.confidence == 0.0
        assert r.weights == HistoricalPattern().weigh(ctx).weights
    elif hours < 168:
        assert 0.0 < r.confidence <= 0.5
        assert r.model_version.endswith(":v1")
    else:
        assert r.confidence > 0.5


def test_without_a_trained_model_the_baseline_answers_and_says_so() -> None:
    ctx = _ctx(PLAIN, 200)
    r = PredictiveML(ModelRegistry().bound(KEY)).weigh(ctx)
    assert r.model_version == "baseline:hour-mean-v1 (untrained)"
    assert 0.0 < r.confidence <= 0.5  # the unvalidated baseline never gets full trust


def test_too_little_history_installs_an_unusable_model_and_uses_the_baseline() -> None:
    ctx = _ctx(PLAIN, 30)
    reg = ModelRegistry()
    reg.install(KEY, _trained(_ctx(PLAIN, 20)))
    f = reg.bound(KEY).predict(ctx)
    assert f.model_version == "baseline:hour-mean-v1 (insufficient data v1)"


# ---------------------------------------------------------------------------- exact budgets
BUDGETS = [1, 23, 999_999, 1_000_000_007, 123_456_789_012]


@pytest.mark.parametrize("d", [SPRING, FALL, PLAIN])
@pytest.mark.parametrize("hours", [0, 23, 24, 100, 168, 500])
def test_every_strategy_allocates_exactly_the_budget(d: date, hours: int) -> None:
    ctx = _ctx(d, hours, seed=hours)
    reg = _registry_with(ctx)
    strategies = default_registry(reg.bound(KEY))
    assert set(strategies) == set(PacingStrategy)
    n = {SPRING: 23, FALL: 25, PLAIN: 24}[d]
    assert ctx.day.n_slots == n
    for strategy in strategies.values():
        result = strategy.weigh(ctx)
        assert len(result.weights) == n
        assert all(w >= 0 for w in result.weights)
        for budget in BUDGETS:
            plan = shape_day(budget, result, Thresholds())
            assert sum(plan.amounts) == budget, (strategy.name, budget)
            assert all(a >= 0 for a in plan.amounts)
            assert len(plan.amounts) == n


@pytest.mark.parametrize("d", [SPRING, FALL])
@pytest.mark.parametrize("strategy", list(PacingStrategy))
def test_engine_plans_dst_days_exactly_with_the_model_version(
    d: date, strategy: PacingStrategy
) -> None:
    day = local_day(NY, d)
    hist = _history_before(day, 300, seed=3)
    reg = ModelRegistry()
    engine = PacingEngine(strategies=default_registry(reg.bound(KEY)))
    now = datetime.fromtimestamp(day.start, UTC)
    installed = reg.install(KEY, train(snapshot(hist, NY, now), now))
    assert installed is not None
    budget = 1_000_000_003
    cfg = CampaignConfig("camp", {ChannelType.GOOGLE_ADS: ChannelConfig(budget)}, strategy, NY)
    state = engine.new_campaign("camp")
    state.channels  # noqa: B018 - the channel is created by configure
    state, _ = engine.configure(state, cfg, datetime.fromtimestamp(day.start - 1, UTC))
    ch = state.channels[ChannelType.GOOGLE_ADS]
    ch.history = hist
    engine.tick(state, now)  # day roll: plan the DST day
    assert ch.plan is not None and ch.result is not None
    assert len(ch.plan.amounts) == day.n_slots
    assert sum(ch.plan.amounts) == budget
    if strategy in (PacingStrategy.PREDICTIVE_ML, PacingStrategy.ADAPTIVE_HYBRID):
        assert ch.result.model_version == installed.label
        assert installed.label.endswith(":v1")


def test_a_swapped_model_shows_its_version_in_the_next_plan() -> None:
    day = local_day(NY, PLAIN)
    hist = _history_before(day, 300, seed=4)
    reg = ModelRegistry()
    engine = PacingEngine(strategies=default_registry(reg.bound(KEY)))
    now = datetime.fromtimestamp(day.start, UTC)
    cfg = CampaignConfig(
        "camp", {ChannelType.GOOGLE_ADS: ChannelConfig(10**9)}, PacingStrategy.PREDICTIVE_ML, NY
    )
    state, _ = engine.configure(None, cfg, now)
    ch = state.channels[ChannelType.GOOGLE_ADS]
    ch.history = hist
    snap = snapshot(hist, NY, now)
    v1 = reg.install(KEY, train(snap, now))
    engine.configure(state, cfg, now)  # re-plan
    assert ch.result is not None and v1 is not None
    assert ch.result.model_version == v1.label
    v2 = reg.install(KEY, train(snap, now, seed=1))
    assert v2 is not None and v2.version == 2
    engine.configure(state, cfg, now)
    assert ch.result.model_version == v2.label
    assert sum(ch.plan.amounts) == 10**9  # type: ignore[union-attr]


# ---------------------------------------------------------------------------- registry
def test_registry_versions_and_refuses_models_trained_on_older_data() -> None:
    ctx = _ctx(PLAIN, 200)
    newer = _trained(ctx)
    older = _trained(_ctx(date(2026, 3, 3), 176))
    reg = ModelRegistry()
    assert reg.get(KEY) is None and reg.version(KEY) == 0
    first = reg.install(KEY, newer)
    assert first is not None and first.version == 1 and newer.version == 0
    assert reg.install(KEY, older) is None  # superseded: no rollback
    assert reg.get(KEY) is first
    again = reg.install(KEY, newer)
    assert again is not None and again.version == 2
    assert reg.keys() == [KEY]
    reg.remove(KEY)
    assert reg.get(KEY) is None


def test_forecaster_fallback_reasons() -> None:
    ctx = _ctx(PLAIN, 200)
    reg = _registry_with(ctx)
    assert reg.forecaster().predict(ctx).model_version.endswith("(no model key)")
    assert reg.bound(("other", "display")).predict(ctx).model_version.endswith("(untrained)")
    assert reg.bound(KEY).predict(ctx).model_version.startswith("ml-full:")
    # Stale: planning a day long after the model's data ends.
    later = local_day(NY, date(2026, 3, 4 + MAX_MODEL_AGE_HOURS // 24 + 2))
    stale_ctx = AllocationContext(later, ctx.history, int(later.start // 3600))
    assert "(stale v1)" in reg.bound(KEY).predict(stale_ctx).model_version
    # The campaign moved to another time zone.
    paris = local_day("Europe/Paris", PLAIN)
    moved = AllocationContext(paris, ctx.history, int(paris.start // 3600))
    assert reg.bound(KEY).predict(moved).model_version.endswith("(time zone changed)")


@dataclass(frozen=True)
class _KeyedContext:
    """What AllocationContext looks like once it carries (campaign_id, channel)."""

    day: LocalDay
    history: HourlyHistory
    day_start_hour: int
    key: tuple[str, str] | None = None


def test_unbound_forecaster_finds_the_model_through_the_context_key() -> None:
    ctx = _ctx(PLAIN, 200)
    reg = _registry_with(ctx)
    keyed = _KeyedContext(ctx.day, ctx.history, ctx.day_start_hour, KEY)
    assert context_key(keyed) == KEY  # type: ignore[arg-type]
    assert context_key(ctx) is None
    f = reg.forecaster().predict(keyed)  # type: ignore[arg-type]
    assert f.model_version.startswith("ml-full:")
    custom = RegistryForecaster(reg, key_of=lambda c: KEY)
    assert custom.predict(ctx).model_version == f.model_version


# ---------------------------------------------------------------------------- blending
@dataclass
class _FixedForecaster:
    efficiency: tuple[float, ...]
    confidence: float

    def predict(self, ctx: AllocationContext) -> Forecast:
        n = ctx.day.n_slots
        return Forecast((0.05,) * n, (1.0,) * n, self.efficiency[:n], self.confidence, "fixed-v1")


def test_predictive_multipliers_are_clamped() -> None:
    ctx = _ctx(PLAIN, 200)
    eff = (1000.0, 0.0, *([1.0] * 22))
    r = PredictiveML(_FixedForecaster(eff, 0.8)).weigh(ctx)
    assert max(r.multipliers) == MAX_PREDICTIVE_MULT
    assert min(r.multipliers) == MIN_PREDICTIVE_MULT
    assert r.model_version == "fixed-v1"
    assert r.confidence == 0.8


def test_predictive_survives_degenerate_forecasts() -> None:
    ctx = _ctx(PLAIN, 200)
    for eff in ((0.0,) * 24, (float("nan"),) * 24, (float("inf"),) * 24):
        r = PredictiveML(_FixedForecaster(eff, 2.0)).weigh(ctx)
        assert r.multipliers == (1.0,) * 24
        assert r.confidence == 1.0  # clipped into [0, 1]
        assert sum(shape_day(10**9, r, Thresholds()).amounts) == 10**9


@pytest.mark.parametrize("q", [0.0, 0.3, 1.0])
def test_hybrid_blend_follows_the_documented_formula(q: float) -> None:
    ctx = _ctx(PLAIN, 3 * 24)  # partial coverage: c < 1
    fc = _FixedForecaster(tuple(1.0 + (i % 5) / 10 for i in range(24)), q)
    pred = PredictiveML(fc)
    r = AdaptiveHybrid(pred).weigh(ctx)
    c = HistoricalPattern().weigh(ctx).confidence
    assert 0 < c < 1

    def norm(ws: tuple[float, ...]) -> list[float]:
        return [w / sum(ws) for w in ws]

    parts = [
        (1 - c, norm(EvenDistribution().weigh(ctx).weights)),
        (c * (1 - q) / 2, norm(HistoricalPattern().weigh(ctx).weights)),
        (c * (1 - q) / 2, norm(PerformanceWeighted().weigh(ctx).weights)),
        (c * q, norm(pred.weigh(ctx).weights)),
    ]
    expected = [sum(k * w[i] for k, w in parts) for i in range(24)]
    assert r.weights == pytest.approx(expected)
    assert r.confidence == pytest.approx(c * (0.5 + 0.5 * q))
    assert r.model_version == "fixed-v1"


def test_hybrid_without_history_is_even() -> None:
    ctx = _ctx(PLAIN, 0)
    r = AdaptiveHybrid().weigh(ctx)
    assert r.model_version == "hybrid-even"
    assert r.weights == (1.0,) * 24


# ---------------------------------------------------------------------- the hour curve
@dataclass
class _CurveForecaster(_FixedForecaster):
    curve: tuple[float, ...] | None = None

    def predict(self, ctx: AllocationContext) -> Forecast:
        return replace(super().predict(ctx), hour_curve=self.curve)


CURVE = tuple(math.exp(0.5 * math.cos(2 * math.pi * (h + 0.5) / 24)) for h in range(24))
EFFICIENCY = tuple(1.0 + (i % 5) / 10 for i in range(24))


@pytest.mark.parametrize("tilt", [1.0, 4.0])
def test_hybrid_leans_on_the_hour_curve_to_the_power_of_its_tilt(tilt: float) -> None:
    ctx = _ctx(PLAIN, 3 * 24)
    plain = AdaptiveHybrid(PredictiveML(_FixedForecaster(EFFICIENCY, 0.5))).weigh(ctx)
    leaning = AdaptiveHybrid(
        PredictiveML(_CurveForecaster(EFFICIENCY, 0.5, CURVE)), hour_tilt=tilt
    ).weigh(ctx)
    expected = [w * v**tilt for w, v in zip(plain.weights, CURVE, strict=True)]
    assert leaning.weights == pytest.approx(expected)
    assert leaning.multipliers == plain.multipliers
    assert leaning.confidence == plain.confidence


def test_hybrid_without_a_curve_or_tilt_does_not_lean() -> None:
    ctx = _ctx(PLAIN, 3 * 24)
    plain = AdaptiveHybrid(PredictiveML(_FixedForecaster(EFFICIENCY, 0.5))).weigh(ctx)
    untilted = AdaptiveHybrid(
        PredictiveML(_CurveForecaster(EFFICIENCY, 0.5, CURVE)), hour_tilt=0.0
    ).weigh(ctx)
    assert untilted.weights == plain.weights


def test_hybrid_with_a_trained_model_leans_on_the_models_curve() -> None:
    ctx = _ctx(PLAIN, 200)
    model = _trained(ctx)
    assert model.hour_curve is not None
    hybrid = AdaptiveHybrid(PredictiveML(_registry_with(ctx).bound(KEY)))
    assert hybrid.sure_from_hour == SURE_FROM_HOUR
    untilted = AdaptiveHybrid(PredictiveML(_registry_with(ctx).bound(KEY)), hour_tilt=0.0)
    curve = model.hour_curve.values(ctx.day.hours_of_day)
    plain = untilted.weigh(ctx).weights
    expected = [w * v**HOUR_TILT for w, v in zip(plain, curve, strict=True)]
    assert hybrid.weigh(ctx).weights == pytest.approx(expected)
