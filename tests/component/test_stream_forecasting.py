"""The worker's forecast timer: due trainings go to the executor and the engine's
re-plans then use the trained model (its version appears in the allocation)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pacer_stream.adapters.forecast_runner import ForecastRunner
from pacer_stream.core import planning
from pacer_stream.core.allocation.strategies import (
    HOUR_TILT,
    AdaptiveHybrid,
    PredictiveML,
    default_registry,
)
from pacer_stream.core.engine import PacingEngine
from pacer_stream.core.forecast.dataset import HistorySnapshot
from pacer_stream.core.forecast.service import ModelRegistry
from pacer_stream.core.types import (
    CampaignConfig,
    ChannelConfig,
    ChannelType,
    PacingStrategy,
    SpendEvent,
)
from pacer_stream.streams.forecasting import submit_trainings
from pacer_stream.streams.stored import Stored

G = ChannelType.GOOGLE_ADS
DAY0 = datetime(2026, 3, 2, tzinfo=UTC)


def _campaign_with_history(
    engine: PacingEngine,
    days: int,
    strategy: PacingStrategy = PacingStrategy.PREDICTIVE_ML,
    evening_rate: int = 1,
) -> Stored:
    """``days`` of hourly spend before DAY0; conversions per unit are ``evening_rate``
    times higher from 18:00 to 22:00."""
    start = DAY0 - timedelta(days=days)
    cfg = CampaignConfig("camp", {G: ChannelConfig(10**9)}, strategy)
    state, _ = engine.configure(None, cfg, start)
    for h in range(days * 24):
        t = start + timedelta(hours=h, minutes=5)
        clicks = 20 + 10 * (t.hour % 12)
        conversions = clicks * (evening_rate if 18 <= t.hour < 22 else 1) // 20
        ev = SpendEvent(f"e{h}", "camp", G, 1_000_000 * clicks // 10, t, clicks, conversions)
        engine.record_spend(state, ev, t)
    return Stored(state=state, partition=0)


async def test_timer_trains_due_models_and_replans_use_them() -> None:
    models = ModelRegistry()
    engine = PacingEngine(strategies=default_registry(models.forecaster()))
    value = _campaign_with_history(engine, days=8)
    runner = ForecastRunner(models, timeout_s=60)
    try:
        assert submit_trainings(runner, [value], DAY0) == 1
        # already training or freshly trained: not submitted again
        assert submit_trainings(runner, [value], DAY0) == 0
        outcomes = await runner.drain()
        assert [o.status for o in outcomes] == ["installed"], outcomes
        assert models.get(("camp", G.value)) is not None
        # the next day's plan is made with the trained model
        ch = engine.hourly_plan(value.state, G, DAY0 + timedelta(hours=1))
        assert ch.result is not None
        assert ch.result.model_version is not None
        assert "baseline" not in ch.result.model_version
        assert sum(ch.plan.amounts) == ch.budget  # type: ignore[union-attr]
    finally:
        await runner.aclose()


async def test_too_little_history_is_not_trained() -> None:
    models = ModelRegistry()
    engine = PacingEngine(strategies=default_registry(models.forecaster()))
    value = _campaign_with_history(engine, days=0)
    runner = ForecastRunner(models, timeout_s=60)
    try:
        assert submit_trainings(runner, [value], DAY0) == 0
        await runner.drain()
        assert models.get(("camp", G.value)) is None
    finally:
        await runner.aclose()


async def test_the_hybrids_next_plan_leans_on_the_hour_curve_the_worker_trained() -> None:
    """The curve is fitted in the training executor and travels with the model; the
    next day's ADAPTIVE_HYBRID plan is its blend times the curve to HOUR_TILT."""
    models = ModelRegistry()
    engine = PacingEngine(strategies=default_registry(models.forecaster()))
    value = _campaign_with_history(
        engine, days=8, strategy=PacingStrategy.ADAPTIVE_HYBRID, evening_rate=3
    )
    runner = ForecastRunner(models, timeout_s=60)
    try:
        assert submit_trainings(runner, [value], DAY0) == 1
        assert [o.status for o in await runner.drain()] == ["installed"]
        model = models.get(("camp", G.value))
        assert model is not None and model.hour_curve is not None
        ch = engine.hourly_plan(value.state, G, DAY0 + timedelta(hours=1))
        assert ch.result is not None and ch.day is not None
        ctx = planning.context(value.state, value.state.channels[G], ch.day)
        blend = AdaptiveHybrid(PredictiveML(models.forecaster()), hour_tilt=0.0).weigh(ctx)
        curve = model.hour_curve.values(ch.day.hours_of_day)
        expected = [w * v**HOUR_TILT for w, v in zip(blend.weights, curve, strict=True)]
        assert ch.result.weights == pytest.approx(expected)
        # the evening converts best, so the curve leans toward it
        hours = ch.day.hours_of_day
        assert curve[hours.index(20)] > 1.2 > 0.8 > curve[hours.index(8)]
    finally:
        await runner.aclose()


async def test_a_fresh_models_history_is_not_copied_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every timer run asks about every owned campaign/channel; copying a fresh model's
    weeks of history only to hear "not due" was the run's whole cost."""
    models = ModelRegistry()
    engine = PacingEngine(strategies=default_registry(models.forecaster()))
    value = _campaign_with_history(engine, days=8)
    runner = ForecastRunner(models, timeout_s=60)
    copies: list[int] = []
    copy = HistorySnapshot.from_history.__func__  # type: ignore[attr-defined]

    def counted(cls: type[HistorySnapshot], *args: object, **kw: object) -> HistorySnapshot:
        copies.append(1)
        return copy(cls, *args, **kw)  # type: ignore[no-any-return]

    monkeypatch.setattr(HistorySnapshot, "from_history", classmethod(counted))
    try:
        assert submit_trainings(runner, [value], DAY0) == 1
        assert len(copies) == 1
        assert submit_trainings(runner, [value], DAY0) == 0  # training: not copied
        assert [o.status for o in await runner.drain()] == ["installed"]
        assert submit_trainings(runner, [value], DAY0 + timedelta(hours=5)) == 0
        assert len(copies) == 1  # fresh: not copied either
        assert submit_trainings(runner, [value], DAY0 + timedelta(hours=20)) == 1
        assert len(copies) == 2  # 20 hours of new data: due, copied
    finally:
        await runner.aclose()
