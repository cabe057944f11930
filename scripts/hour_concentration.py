"""Experiment: ADAPTIVE_HYBRID's lean on the learned good hours, varied.

The engine's ADAPTIVE_HYBRID multiplies its slot weights by the trained model's hour
curve (``core.forecast.hour_curve``: one daily harmonic of conversions per unit, fitted
at each retraining) to the power ``HOUR_TILT``, and its plans trust only the least
demand a past day showed in each hour from ``SURE_FROM_HOUR`` on
(``core.allocation.capacity.sure_capacity``). This script runs pacer-stream's rows with
other values of both: ``--k`` the exponent (0: no tilt), ``--sure-from`` the hour
(``off``: every hour keeps the usual capacity). With ``--true`` the simulator's own hour
quality replaces the learned curve: the bound of what the tilt can buy.

Prints ``scripts/pacer_rows.py``'s figures (pacer-stream with reallocation and with the
static split, the free and split-bound oracles, the even gate) for the variant.

    PYTHONPATH=. python scripts/hour_concentration.py --seeds 0-9 --k 6 --true
    PYTHONPATH=. python scripts/hour_concentration.py --seeds 0-9 --k 4 --sure-from off
    PYTHONPATH=. python scripts/hour_concentration.py --seeds 0-9 --k 0 --sure-from off
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace
from functools import cache

import experiment_args
import numpy as np
import pacer_rows

import pacer_stream.sim.pacer as sim_pacer
from pacer_stream.core.allocation.base import AllocationContext
from pacer_stream.core.allocation.strategies import (
    HOUR_TILT,
    SURE_FROM_HOUR,
    AdaptiveHybrid,
    PredictiveML,
    default_registry,
)
from pacer_stream.core.forecast.predictor import Forecast, Forecaster
from pacer_stream.core.types import PacingStrategy
from pacer_stream.sim.scenario import Scenario
from pacer_stream.sim.traffic import generate


@dataclass(frozen=True)
class TrueCurve:
    """A forecaster whose hour curve is the simulator's true hour quality."""

    inner: Forecaster
    scenario: Scenario

    def predict(self, ctx: AllocationContext) -> Forecast:
        assert ctx.key is not None
        quality = _true_quality(self.scenario, ctx.key, ctx.day.date.toordinal())
        curve = tuple(quality[h] for h in ctx.day.hours_of_day)
        return replace(self.inner.predict(ctx), hour_curve=curve)


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


def _hour(text: str) -> int | None:
    return None if text == "off" else int(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--k", type=float, default=HOUR_TILT, help="exponent on the hour curve")
    ap.add_argument("--true", action="store_true", help="the simulator's hour quality")
    ap.add_argument(
        "--sure-from", type=_hour, default=SURE_FROM_HOUR, help="an hour of day, or off"
    )
    args, rest = ap.parse_known_args(argv)
    scenario = experiment_args.scenario(
        experiment_args.parser("", seeds="0-9").parse_known_args(rest)[0]
    )

    def registry(forecaster: Forecaster | None = None) -> dict[PacingStrategy, object]:
        strategies = default_registry(forecaster)
        predictive = strategies[PacingStrategy.PREDICTIVE_ML]
        assert isinstance(predictive, PredictiveML)
        if args.true:
            predictive = PredictiveML(TrueCurve(predictive.forecaster, scenario))
        strategies[PacingStrategy.ADAPTIVE_HYBRID] = AdaptiveHybrid(
            predictive, hour_tilt=args.k, sure_from_hour=args.sure_from
        )
        return strategies  # type: ignore[return-value]

    # The simulator builds its engine from this registry; the worker processes of
    # pacer_rows are forked after this, so they plan with the variant too.
    sim_pacer.default_registry = registry  # type: ignore[assignment]
    return pacer_rows.main(rest)


if __name__ == "__main__":
    sys.exit(main())
