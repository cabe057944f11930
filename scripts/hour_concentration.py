"""Experiment: plans that lean on the hours a smooth learned curve says convert best.

Per campaign/channel, the conversions of each local hour of day in the history are
fitted as Poisson(spend x exp(a + b cos(2 pi h / 24) + c sin(2 pi h / 24))): one daily
harmonic, because the quality pattern is smooth over the day and 3-7 days of history
leave only a few conversions per hour (24 separate hourly means are mostly noise). The
harmonic's coefficients get a normal prior N(0, ``--prior-sd``^2) (a maximum a
posteriori fit, scikit-learn's Poisson regression), which pulls a curve learned from few conversions
toward flat. pacer-stream (ADAPTIVE_HYBRID) then plans with each slot's weight times the
curve's value at the slot's hour to the power ``--k``; the engine's shaping (capacity,
per-hour maximum, closing share) is unchanged. With ``--true`` the simulator's own
hour quality replaces the fitted curve: the bound of what the tilt can buy.

With ``--sure-from H`` a tilted plan trusts only the sure part of the hours from local
``H``:00 on: each is capped at the least demand (spend plus refused demand) any of the
past ``CAPACITY_DAYS`` days showed in it, times ``CAPACITY_MARGIN`` (a day without
demand in the hour counts as 0), while the earlier hours keep the engine's capacity;
when the hours so capped cannot hold the budget, the engine's capacity stays.

Prints ``scripts/pacer_rows.py``'s figures (pacer-stream with reallocation and with the
static split, the free and split-bound oracles, the even gate) for the variant.

    PYTHONPATH=. python scripts/hour_concentration.py --seeds 0-9 --k 4
    PYTHONPATH=. python scripts/hour_concentration.py --seeds 0-9 --k 6 --true
    PYTHONPATH=. python scripts/hour_concentration.py --seeds 0-9 --k 4 --sure-from 15
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache

import experiment_args
import numpy as np
import pacer_rows
from sklearn.linear_model import PoissonRegressor  # type: ignore[import-untyped]

import pacer_stream.core.day as core_day
import pacer_stream.core.planning as planning
import pacer_stream.sim.pacer as sim_pacer
from pacer_stream.core.allocation.base import AllocationContext, StrategyResult
from pacer_stream.core.allocation.capacity import CAPACITY_MARGIN, local_day_hour, past_demand
from pacer_stream.core.allocation.profile import read_profile
from pacer_stream.core.allocation.strategies import AdaptiveHybrid, default_registry
from pacer_stream.core.calendar import LocalDay
from pacer_stream.core.forecast.predictor import Forecaster
from pacer_stream.core.state import CampaignState, ChannelState
from pacer_stream.core.types import PacingStrategy
from pacer_stream.sim.scenario import Scenario
from pacer_stream.sim.traffic import generate


def _angle(hour: int) -> float:
    return 2.0 * math.pi * (hour + 0.5) / 24.0


def fit_daily_harmonic(
    spend_units: Sequence[float], conversions: Sequence[float], prior_sd: float
) -> tuple[float, float] | None:
    """(b, c) of the MAP fit described above; None with no spend or no conversions.

    scikit-learn's Poisson regression of conversions per unit, weighted by the spend:
    its objective is the weighted deviance over the total weight plus alpha/2 x |coef|^2,
    which times the total spend is the negative log-likelihood plus the prior's
    |coef|^2 / (2 prior_sd^2), so alpha = 1 / (prior_sd^2 x total spend)."""
    total = sum(spend_units)
    if sum(conversions) <= 0 or total <= 0:
        return None
    hours = [h for h, s in enumerate(spend_units) if s > 0]
    x = np.array([[math.cos(_angle(h)), math.sin(_angle(h))] for h in hours])
    spend = np.array([spend_units[h] for h in hours], dtype=np.float64)
    rate = np.array([conversions[h] for h in hours], dtype=np.float64) / spend
    model = PoissonRegressor(
        alpha=1.0 / (prior_sd**2 * total), solver="newton-cholesky", tol=1e-10, max_iter=100
    )
    model.fit(x, rate, sample_weight=spend)
    b, c = model.coef_
    return float(b), float(c)


@dataclass
class Concentrated(AdaptiveHybrid):
    """ADAPTIVE_HYBRID whose weights are multiplied by (hour value)^k once it has history."""

    k: float = 4.0
    prior_sd: float = 0.5
    true_quality: Scenario | None = None

    def weigh(self, ctx: AllocationContext) -> StrategyResult:
        result = super().weigh(ctx)
        if result.confidence <= 0:
            return result
        values = self._values(ctx)
        if values is None:
            return result
        weights = tuple(w * v**self.k for w, v in zip(result.weights, values, strict=True))
        return replace(result, weights=weights)

    def _values(self, ctx: AllocationContext) -> list[float] | None:
        hours = ctx.day.hours_of_day
        if self.true_quality is not None:
            assert ctx.key is not None
            quality = _true_quality(self.true_quality, ctx.key, ctx.day.date.toordinal())
            return [quality[h] for h in hours]
        prof = read_profile(ctx)
        fit = fit_daily_harmonic(
            [s / 1_000_000 for s in prof.spend], prof.conversions, self.prior_sd
        )
        if fit is None:
            return None
        b, c = fit
        return [math.exp(b * math.cos(_angle(h)) + c * math.sin(_angle(h))) for h in hours]


@cache
def _true_quality(scenario: Scenario, key: tuple[str, str], ordinal: int) -> tuple[float, ...]:
    """The simulator's hour quality of one campaign/channel on one day, over its mean."""
    _, seed, campaign = key[0].split("-")
    day = ordinal - scenario.start.toordinal()
    traffic = _traffic_quality(scenario, int(seed), day)
    channel = [ch.value for ch in traffic[1]].index(key[1])
    q = traffic[0][int(campaign), channel]
    return tuple(float(v) for v in q / q.mean())


@cache
def _traffic_quality(scenario: Scenario, seed: int, day: int) -> tuple[np.ndarray, tuple]:  # type: ignore[type-arg]
    t = generate(seed, scenario, day)
    return t.true_hour_quality, t.channels


def least_demand(ctx: AllocationContext, unmet: dict[int, int]) -> list[int] | None:
    """Per slot: the least demand (spend plus refused demand) any past day with demand
    showed in the slot's local hour (over the engine's ``CAPACITY_DAYS``), times
    ``CAPACITY_MARGIN``; None without history."""
    demand = past_demand(ctx, unmet)
    if not demand:
        return None
    by_hour: dict[int, dict[int, int]] = {}
    days: set[int] = set()
    for h, amount in demand.items():
        day_key, _, hod = local_day_hour(ctx.day.tz, h)
        days.add(day_key)
        by_hour.setdefault(hod, {})[day_key] = amount
    return [
        int(min(by_hour.get(hod, {}).get(d, 0) for d in days) * CAPACITY_MARGIN)
        for hod in ctx.day.hours_of_day
    ]


def sure_late_hours(
    capacity: tuple[int, ...] | None, ctx: AllocationContext, ch: ChannelState, start: int
) -> tuple[int, ...] | None:
    """``capacity`` with the hours from ``start`` capped at :func:`least_demand`, unless
    the hours so capped cannot hold the channel's budget."""
    sure = least_demand(ctx, dict(ch.unmet_hours.amounts))
    if sure is None:
        return capacity
    base = capacity if capacity is not None else (ch.budget,) * len(sure)
    hours = ctx.day.hours_of_day
    capped = tuple(
        min(b, s) if h >= start else b for b, s, h in zip(base, sure, hours, strict=True)
    )
    return capped if sum(capped) >= ch.budget else capacity


def install_sure_late_hours(start: int) -> None:
    """Plans of ADAPTIVE_HYBRID channels use :func:`sure_late_hours`: the engine's own
    ``replan``, reading its capacity through that one change while it plans (other
    readers of the capacity, such as rebasing and the split, keep the engine's)."""
    original, capacity_of = planning.replan, planning.slot_capacity

    def sure_capacity(
        state: CampaignState, ch: ChannelState, day: LocalDay
    ) -> tuple[int, ...] | None:
        ctx = planning.context(state, ch, day)
        return sure_late_hours(capacity_of(state, ch, day), ctx, ch, start)

    def replan(
        state: CampaignState, ch: ChannelState, strategies: dict[PacingStrategy, object]
    ) -> None:
        if (ch.strategy or state.strategy) is not PacingStrategy.ADAPTIVE_HYBRID:
            return original(state, ch, strategies)  # type: ignore[arg-type]
        planning.slot_capacity = sure_capacity  # type: ignore[assignment]
        try:
            return original(state, ch, strategies)  # type: ignore[arg-type]
        finally:
            planning.slot_capacity = capacity_of  # type: ignore[assignment]

    for module in (planning, core_day):  # day rolls call it through core.day
        if getattr(module, "replan", None) is original:
            module.replan = replan  # type: ignore[assignment]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--k", type=float, default=4.0, help="exponent on the hour value")
    ap.add_argument("--prior-sd", type=float, default=0.5)
    ap.add_argument("--true", action="store_true", help="the simulator's hour quality")
    ap.add_argument("--sure-from", type=int, default=None, help="sure caps from this hour")
    args, rest = ap.parse_known_args(argv)
    if args.sure_from is not None:
        install_sure_late_hours(args.sure_from)
    scenario = experiment_args.scenario(
        experiment_args.parser("", seeds="0-9").parse_known_args(rest)[0]
    )

    def registry(forecaster: Forecaster | None = None) -> dict[PacingStrategy, object]:
        strategies = default_registry(forecaster)
        hybrid = strategies[PacingStrategy.ADAPTIVE_HYBRID]
        assert isinstance(hybrid, AdaptiveHybrid)
        strategies[PacingStrategy.ADAPTIVE_HYBRID] = Concentrated(
            hybrid.predictive,
            k=args.k,
            prior_sd=args.prior_sd,
            true_quality=scenario if args.true else None,
        )
        return strategies  # type: ignore[return-value]

    # The simulator builds its engine from this registry; the worker processes of
    # pacer_rows are forked after this, so they plan with the variant too.
    sim_pacer.default_registry = registry  # type: ignore[assignment]
    return pacer_rows.main(rest)


if __name__ == "__main__":
    sys.exit(main())
