"""The smooth hour-of-day curve of conversions per unit of spend, learned off the hot path.

Per campaign/channel, the conversions of each local hour of day in the history are
fitted as Poisson(spend x exp(a + b cos(2 pi h / 24) + c sin(2 pi h / 24))), with h the
middle of the hour: one daily harmonic. Why so few parameters: the quality of the hours
is smooth over the day, and a few days of history leave only a few conversions per
hour, so 24 separate hourly means are mostly noise (a tilt on them did not pay in the
multi-day simulation: docs/simulation.md, 14.3 and 15). The harmonic's coefficients get
a normal prior N(0, :data:`HOUR_CURVE_PRIOR_SD` ^ 2), a maximum a posteriori fit, which
pulls a curve learned from few conversions toward flat.

The fit costs 1-3 ms (scikit-learn's Poisson regression), too much for the day roll of
100,000 channels at midnight; it runs in :func:`~.training.train`, and a plan only
evaluates the two coefficients (:meth:`HourCurve.values`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import PoissonRegressor  # type: ignore[import-untyped]

#: Standard deviation of the prior on the harmonic's two coefficients: a curve reaches
#: a best-to-worst hour ratio of e^(2 x 0.5) = 2.7 only when the data say so firmly.
HOUR_CURVE_PRIOR_SD = 0.5


def _angle(hour_of_day: int) -> float:
    return 2.0 * math.pi * (hour_of_day + 0.5) / 24.0


@dataclass(frozen=True, slots=True)
class HourCurve:
    """exp(b cos + c sin) of the hour: an hour's conversions per unit relative to the
    day's level (1 = the geometric mean over the day)."""

    cos: float
    sin: float

    def value(self, hour_of_day: int) -> float:
        a = _angle(hour_of_day)
        return math.exp(self.cos * math.cos(a) + self.sin * math.sin(a))

    def values(self, hours_of_day: Sequence[int]) -> tuple[float, ...]:
        """The curve at each slot's local hour of day (a planned day's ``hours_of_day``)."""
        return tuple(self.value(h) for h in hours_of_day)


def fit_hour_curve(
    spend: Sequence[float],
    conversions: Sequence[float],
    prior_sd: float = HOUR_CURVE_PRIOR_SD,
) -> HourCurve | None:
    """The MAP curve from per-local-hour totals (24 entries each; spend in currency
    units); None with no spend or no conversions to learn from.

    scikit-learn's Poisson regression of conversions per unit, weighted by the spend:
    its objective is the weighted deviance over the total weight plus alpha/2 x |coef|^2,
    which times the total spend is the negative log-likelihood plus the prior's
    |coef|^2 / (2 prior_sd^2), so alpha = 1 / (prior_sd^2 x total spend)."""
    if len(spend) != 24 or len(conversions) != 24:
        raise ValueError("fit_hour_curve needs 24 hourly totals of spend and conversions")
    total = float(sum(spend))
    if sum(conversions) <= 0 or total <= 0 or prior_sd <= 0:
        return None
    hours = [h for h, s in enumerate(spend) if s > 0]
    x = np.array([[math.cos(_angle(h)), math.sin(_angle(h))] for h in hours])
    weight = np.array([spend[h] for h in hours], dtype=np.float64)
    rate = np.array([conversions[h] for h in hours], dtype=np.float64) / weight
    model = PoissonRegressor(
        alpha=1.0 / (prior_sd**2 * total), solver="newton-cholesky", tol=1e-10, max_iter=100
    )
    model.fit(x, rate, sample_weight=weight)
    b, c = model.coef_
    return HourCurve(float(b), float(c))
