"""Candidate models of an hourly rate (conversion rate or cost per click).

Every candidate predicts the rate of an hour *as a ratio to the pooled rate* of its
training data, from day-ahead features: local hour of day, weekday, the previous day's
level and the same hour a week earlier (see :mod:`.dataset`). Targets are fitted with the
hour's clicks as sample weight, so an hour with 200 clicks counts 100x one with 2.

``hour-mean``  shrunk mean per hour of day (what :class:`BaselineForecaster` does)
``ridge``      linear regression (ridge): 3 daily harmonics, weekday one-hot, weekend x
               harmonics, level, last week. The original design's linear model. In the
               basic tier (under a week of data) only harmonics + level.
``poisson``    Poisson GLM (log link) on the same features with log level / last week:
               hour, weekday and level effects multiply, which suits rates.
``hgb``        histogram gradient boosting, Poisson loss, categorical hour and weekday:
               learns hour x weekday interactions. Single OpenMP thread, fixed seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor  # type: ignore[import-untyped]
from sklearn.linear_model import PoissonRegressor, Ridge  # type: ignore[import-untyped]
from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

from pacer_stream.core.forecast.dataset import FloatArray, IntArray

HOUR_MEAN = "hour-mean"
RIDGE = "ridge"
POISSON = "poisson"
HGB = "hgb"
#: Candidates by tier, cheapest first (the time budget cuts the tail).
BASIC_CANDIDATES: tuple[str, ...] = (HOUR_MEAN, RIDGE)
FULL_CANDIDATES: tuple[str, ...] = (HOUR_MEAN, RIDGE, POISSON, HGB)

#: Pseudo-clicks at the pooled rate mixed into each hour-of-day mean.
HOUR_MEAN_PSEUDO_CLICKS = 20.0
#: Predicted ratios are clipped to this range (a model may not claim an hour is 20x
#: better or worse than the channel's average).
MIN_RATIO = 0.05
MAX_RATIO = 20.0


_controller: Any = None


def _one_thread() -> Any:
    """Context limiting OpenMP and BLAS to one thread: tiny fits and
    predictions are faster single-threaded and leave the other core to the event loop."""
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=1)


@dataclass(frozen=True, slots=True)
class Inputs:
    """Features of some hours for one target (ratios to the pooled rate)."""

    hour_of_day: IntArray
    weekday: IntArray
    level: FloatArray
    last_week: FloatArray

    def take(self, idx: IntArray) -> Inputs:
        return Inputs(
            self.hour_of_day[idx], self.weekday[idx], self.level[idx], self.last_week[idx]
        )


def _harmonics(hod: IntArray) -> FloatArray:
    a = 2.0 * np.pi * hod.astype(np.float64) / 24.0
    return np.column_stack(
        [np.sin(a), np.cos(a), np.sin(2 * a), np.cos(2 * a), np.sin(3 * a), np.cos(3 * a)]
    )


def _linear_design(x: Inputs, *, basic: bool, log: bool) -> FloatArray:
    h = _harmonics(x.hour_of_day)
    lvl = np.log(np.maximum(x.level, 1e-6)) if log else x.level
    lw = np.log(np.maximum(x.last_week, 1e-6)) if log else x.last_week
    if basic:
        return np.column_stack([h, lvl])
    wd = np.zeros((x.weekday.shape[0], 7))
    wd[np.arange(x.weekday.shape[0]), x.weekday] = 1.0
    weekend = (x.weekday >= 5).astype(np.float64)[:, None]
    return np.column_stack([h, wd, weekend * h[:, :4], lvl, lw])


def _tree_design(x: Inputs) -> FloatArray:
    return np.column_stack(
        [x.hour_of_day.astype(np.float64), x.weekday.astype(np.float64), x.level, x.last_week]
    )


@dataclass(frozen=True, slots=True)
class FittedModel:
    """One fitted candidate (picklable: crosses process boundaries)."""

    name: str
    basic: bool
    estimator: Any = None
    table: tuple[float, ...] = ()

    def predict(self, x: Inputs) -> FloatArray:
        if self.name == HOUR_MEAN:
            out = np.asarray(self.table, dtype=np.float64)[x.hour_of_day]
        elif self.name == RIDGE:
            out = self.estimator.predict(_linear_design(x, basic=self.basic, log=False))
        elif self.name == POISSON:
            out = self.estimator.predict(_linear_design(x, basic=self.basic, log=True))
        else:
            with _one_thread():
                out = self.estimator.predict(_tree_design(x))
        return np.clip(np.asarray(out, dtype=np.float64), MIN_RATIO, MAX_RATIO)


def fit_candidate(
    name: str, x: Inputs, y: FloatArray, clicks: FloatArray, *, basic: bool, seed: int
) -> FittedModel:
    """Fit candidate ``name`` to ratio targets ``y`` weighted by ``clicks``."""
    if name == HOUR_MEAN:
        k = HOUR_MEAN_PSEUDO_CLICKS
        num = np.bincount(x.hour_of_day, weights=clicks * y, minlength=24)
        den = np.bincount(x.hour_of_day, weights=clicks, minlength=24)
        table = (num + k) / (den + k)
        return FittedModel(name, basic, None, tuple(float(v) for v in table))
    w = clicks / max(float(clicks.mean()), 1e-12)
    with _one_thread():
        return FittedModel(name, basic, _fit_estimator(name, x, y, w, basic=basic, seed=seed))


def _fit_estimator(
    name: str, x: Inputs, y: FloatArray, w: FloatArray, *, basic: bool, seed: int
) -> Any:
    if name == RIDGE:
        est = Ridge(alpha=1.0)
        est.fit(_linear_design(x, basic=basic, log=False), y, sample_weight=w)
    elif name == POISSON:
        est = PoissonRegressor(alpha=1e-3, solver="newton-cholesky", max_iter=200)
        est.fit(_linear_design(x, basic=basic, log=True), y, sample_weight=w)
    elif name == HGB:
        est = HistGradientBoostingRegressor(
            loss="poisson",
            learning_rate=0.15,
            max_iter=40,
            max_leaf_nodes=8,
            min_samples_leaf=20,
            l2_regularization=1.0,
            max_bins=32,
            categorical_features=[True, True, False, False],
            early_stopping=False,
            random_state=seed,
        )
        est.fit(_tree_design(x), y, sample_weight=w)
    else:
        raise ValueError(f"unknown candidate model {name!r}")
    return est
