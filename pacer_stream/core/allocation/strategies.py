"""The five allocation strategies, each a small class behind ``AllocationStrategy``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pacer_stream.core.allocation.base import (
    AllocationContext,
    AllocationStrategy,
    StrategyResult,
    flat_result,
)
from pacer_stream.core.allocation.profile import read_profile, traffic_weights
from pacer_stream.core.efficiency import pooled_rate, smoothed_efficiency
from pacer_stream.core.forecast.predictor import (
    BASIC_HOURS,
    Forecast,
    Forecaster,
    baseline_forecaster,
)
from pacer_stream.core.types import PacingStrategy

#: Days of history after which a historical profile is trusted fully (hybrid blend).
FULL_PATTERN_DAYS = 7


class EvenDistribution:
    name = PacingStrategy.EVEN_DISTRIBUTION
    sure_from_hour: int | None = None

    def weigh(self, ctx: AllocationContext) -> StrategyResult:
        return flat_result(ctx.day.n_slots, confidence=1.0)


class HistoricalPattern:
    """Follow observed traffic by local hour of day (and weekday once two or more of the
    same weekday are known); flat without history."""

    name = PacingStrategy.HISTORICAL_PATTERN
    sure_from_hour: int | None = None

    def weigh(self, ctx: AllocationContext) -> StrategyResult:
        weights, days = traffic_weights(ctx)
        n = ctx.day.n_slots
        zeros = tuple(0.0 for _ in range(n))
        ones = tuple(1.0 for _ in range(n))
        confidence = min(1.0, days / FULL_PATTERN_DAYS)
        return StrategyResult(tuple(weights), ones, zeros, zeros, confidence)


class PerformanceWeighted:
    """Traffic profile x per-hour efficiency multiplier (smoothed conversions per unit of
    spend relative to the channel's pooled rate; see ``core.efficiency``)."""

    name = PacingStrategy.PERFORMANCE_WEIGHTED
    sure_from_hour: int | None = None

    def weigh(self, ctx: AllocationContext) -> StrategyResult:
        traffic, days = traffic_weights(ctx)
        prof = read_profile(ctx)
        n = ctx.day.n_slots
        total_conv = int(sum(prof.conversions))
        total_spend = int(sum(prof.spend))
        prior = pooled_rate(total_conv, total_spend)
        mult_by_hour = [1.0] * 24
        cr_by_hour = [0.0] * 24
        cpc_by_hour = [0.0] * 24
        if prior > 0:
            for h in range(24):
                eff = smoothed_efficiency(int(prof.conversions[h]), int(prof.spend[h]), prior)
                mult_by_hour[h] = eff / prior
        for h in range(24):
            if prof.clicks[h] > 0:
                cr_by_hour[h] = prof.conversions[h] / prof.clicks[h]
                cpc_by_hour[h] = prof.spend[h] / 1_000_000 / prof.clicks[h]
        hours = ctx.day.hours_of_day
        mults = tuple(mult_by_hour[h] for h in hours)
        weights = tuple(traffic[i] * mults[i] for i in range(n))
        return StrategyResult(
            weights,
            mults,
            tuple(cr_by_hour[h] for h in hours),
            tuple(cpc_by_hour[h] for h in hours),
            min(1.0, days / FULL_PATTERN_DAYS) if prior > 0 else 0.0,
        )


#: ADAPTIVE_HYBRID's exponent on the learned hour curve. Measured over 10 seeds of the
#: multi-day simulation (docs/simulation.md, 15): 2 buys little, 6 costs utilisation
#: and no more conversions than 4.
HOUR_TILT = 4.0
#: The local hour from which ADAPTIVE_HYBRID's plans trust only each hour's sure capacity
#: (measured from 15:00 and from 12:00: the same within noise).
SURE_FROM_HOUR = 15

#: Bounds of PREDICTIVE_ML's per-hour multiplier (predicted efficiency / day mean): a
#: model may tilt the day, not starve or flood an hour on its own.
MIN_PREDICTIVE_MULT = 0.2
MAX_PREDICTIVE_MULT = 5.0


@dataclass
class PredictiveML:
    """Predicted conversions per unit of spend by hour, from a :class:`Forecaster`.

    Weight of a slot = sqrt(expected traffic share) (HISTORICAL_PATTERN's profile, see
    ``traffic_exponent``) x the slot's predicted efficiency (conversion rate / cost per
    click) relative to the day's mean, clamped to [MIN_PREDICTIVE_MULT,
    MAX_PREDICTIVE_MULT]. Budget an hour cannot absorb rolls over to later hours.

    Data thresholds (hours of history with activity before the planned day):

    * under 24: nothing to learn from; falls back to HISTORICAL_PATTERN's weights (flat
      with no history at all), confidence 0, ``model_version="fallback-historical"``;
    * 24-167: basic predictions (the forecaster's basic tier: hour means / small ridge,
      confidence capped at 0.5);
    * 168 and more: full functionality (all candidate models, confidence up to 1).

    The forecaster only *uses* trained models (``core.forecast.service``); training runs
    off the event path (``pacer_stream.adapters.forecast_runner``).
    """

    forecaster: Forecaster = field(default_factory=baseline_forecaster)
    name: PacingStrategy = PacingStrategy.PREDICTIVE_ML
    sure_from_hour: int | None = None
    #: Exponent on the traffic profile. The profile is learned from the channel's own
    #: purchases, so under a binding budget it mirrors yesterday's plan; at full strength
    #: (1.0) the multipliers would compound day over day (measured in the multi-day simulation:
    #: utilisation fell to 85%). The square root damps that feedback.
    traffic_exponent: float = 0.5

    def forecast(self, ctx: AllocationContext) -> Forecast | None:
        """The forecaster's prediction of the planned day; None under ``BASIC_HOURS``."""
        if ctx.history.hours_with_data(ctx.day_start_hour) < BASIC_HOURS:
            return None
        return self.forecaster.predict(ctx)

    def weigh(self, ctx: AllocationContext) -> StrategyResult:
        return self.weigh_forecast(ctx, self.forecast(ctx))

    def weigh_forecast(self, ctx: AllocationContext, forecast: Forecast | None) -> StrategyResult:
        """The weights of :meth:`forecast`'s prediction (shared with ADAPTIVE_HYBRID,
        which also reads the prediction's hour curve)."""
        if forecast is None:
            fallback = HistoricalPattern().weigh(ctx)
            return StrategyResult(
                fallback.weights,
                fallback.multipliers,
                fallback.predicted_conversion_rate,
                fallback.predicted_cost_per_click,
                0.0,
                "fallback-historical",
            )
        traffic, _ = traffic_weights(ctx)
        eff = [e if e > 0 and math.isfinite(e) else 0.0 for e in forecast.efficiency]
        mean_eff = sum(eff) / len(eff) if eff else 0.0
        mults = tuple(
            min(MAX_PREDICTIVE_MULT, max(MIN_PREDICTIVE_MULT, e / mean_eff))
            if mean_eff > 0
            else 1.0
            for e in eff
        )
        weights = tuple(
            traffic[i] ** self.traffic_exponent * mults[i] for i in range(ctx.day.n_slots)
        )
        confidence = min(1.0, max(0.0, forecast.confidence))
        return StrategyResult(
            weights,
            mults,
            forecast.conversion_rate,
            forecast.cost_per_click,
            confidence,
            forecast.model_version,
        )


@dataclass
class AdaptiveHybrid:
    """Blend EVEN, HISTORICAL_PATTERN, PERFORMANCE_WEIGHTED and PREDICTIVE_ML.

    Coverage c = min(1, days of history / 7) (HISTORICAL_PATTERN's confidence) moves
    weight from EVEN to the data-driven strategies; among those, the forecast confidence
    q (PREDICTIVE_ML's, 0 under 24 h) moves weight from the simple pattern strategies to
    PREDICTIVE_ML::

        even (1 - c),  historical c(1 - q)/2,  performance c(1 - q)/2,  predictive c*q

    Every component is normalised to sum 1 before blending, so the blend is a convex
    combination of day profiles. Reported confidence = c(0.5 + 0.5q); the model version
    is PREDICTIVE_ML's (``hybrid-even`` with no history at all).

    The blend leans on the hours the trained model's hour curve (``forecast.hour_curve``:
    one daily harmonic of conversions per unit) says convert best: each slot's weight is
    multiplied by the curve's value at its hour to the power :data:`HOUR_TILT`. A
    concentrated plan must not count on late hours that may turn out thinner than their
    history (what it keeps for them is lost at midnight), so from
    :data:`SURE_FROM_HOUR` on it trusts only the least demand any past day showed in
    an hour (``sure_from_hour``; the planner applies it). Measured in the multi-day
    simulation (docs/simulation.md, 15): the tilt alone buys conversions but costs the
    static split's utilisation (0.997 -> 0.990); with the late hours' sure caps it keeps
    0.996.
    """

    predictive: PredictiveML = field(default_factory=PredictiveML)
    name: PacingStrategy = PacingStrategy.ADAPTIVE_HYBRID
    hour_tilt: float = HOUR_TILT
    sure_from_hour: int | None = SURE_FROM_HOUR

    def weigh(self, ctx: AllocationContext) -> StrategyResult:
        n = ctx.day.n_slots
        hist = HistoricalPattern().weigh(ctx)
        coverage = hist.confidence
        if coverage == 0:
            return flat_result(n, confidence=0.0, version="hybrid-even")
        perf = PerformanceWeighted().weigh(ctx)
        forecast = self.predictive.forecast(ctx)
        pred = self.predictive.weigh_forecast(ctx, forecast)
        q = pred.confidence
        parts = [
            (1 - coverage, _norm(EvenDistribution().weigh(ctx).weights)),
            (coverage * (1 - q) / 2, _norm(hist.weights)),
            (coverage * (1 - q) / 2, _norm(perf.weights)),
            (coverage * q, _norm(pred.weights)),
        ]
        weights = tuple(sum(c * w[i] for c, w in parts) for i in range(n))
        curve = forecast.hour_curve if forecast is not None else None
        if curve is not None and self.hour_tilt:
            weights = tuple(w * v**self.hour_tilt for w, v in zip(weights, curve, strict=True))
        mults = tuple((1 - q) * perf.multipliers[i] + q * pred.multipliers[i] for i in range(n))
        cr = pred.predicted_conversion_rate if q > 0 else perf.predicted_conversion_rate
        cpc = pred.predicted_cost_per_click if q > 0 else perf.predicted_cost_per_click
        confidence = coverage * (0.5 + 0.5 * q)
        return StrategyResult(weights, mults, cr, cpc, confidence, pred.model_version)


def _norm(weights: tuple[float, ...]) -> list[float]:
    total = sum(weights)
    if total <= 0:
        return [1.0 / len(weights)] * len(weights)
    return [w / total for w in weights]


def default_registry(
    forecaster: Forecaster | None = None,
) -> dict[PacingStrategy, AllocationStrategy]:
    """One instance of each strategy. ``forecaster`` (default: the hour-mean baseline)
    feeds PREDICTIVE_ML and, through it, ADAPTIVE_HYBRID; pass
    ``ModelRegistry.forecaster()`` to use trained models."""
    predictive = PredictiveML(forecaster) if forecaster is not None else PredictiveML()
    return {
        PacingStrategy.EVEN_DISTRIBUTION: EvenDistribution(),
        PacingStrategy.PERFORMANCE_WEIGHTED: PerformanceWeighted(),
        PacingStrategy.HISTORICAL_PATTERN: HistoricalPattern(),
        PacingStrategy.PREDICTIVE_ML: predictive,
        PacingStrategy.ADAPTIVE_HYBRID: AdaptiveHybrid(predictive),
    }
