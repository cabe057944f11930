"""The forecaster port used by PREDICTIVE_ML, and the baseline implementation.

The baseline predicts each local hour's conversion rate and cost per click as the
shrunk historical mean for that hour of day, and scores confidence by the amount of
history (24 h -> basic, 168 h -> full) times ``BASELINE_CONFIDENCE_FACTOR``: it has not
been validated out of sample, so it never gets more than half the trust of a model that
was. The scikit-learn models (``training.train``) plug in behind the same ``Forecaster``
protocol through ``service.RegistryForecaster``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pacer_stream.core.allocation.base import AllocationContext
from pacer_stream.core.allocation.profile import read_profile

BASIC_HOURS = 24
FULL_HOURS = 168
#: Share of the data confidence the (unvalidated) baseline reports.
BASELINE_CONFIDENCE_FACTOR = 0.5


@dataclass(frozen=True, slots=True)
class Forecast:
    conversion_rate: tuple[float, ...]
    cost_per_click: tuple[float, ...]
    #: Predicted conversions per currency unit of spend, per slot (cr / cpc).
    efficiency: tuple[float, ...]
    confidence: float
    model_version: str
    #: The learned hour-of-day curve of conversions per unit at each slot (1 = the day's
    #: level; see ``hour_curve``), or None when the model learned none.
    hour_curve: tuple[float, ...] | None = None


class Forecaster(Protocol):
    """Predicts the planned day of ``ctx``. Called once per day / budget change per
    campaign/channel, on the event-processing path: implementations must only *use*
    models (never train) and stay cheap."""

    def predict(self, ctx: AllocationContext) -> Forecast: ...


def data_confidence(hours: int) -> float:
    """0 under 24 h, rising linearly to 1 at 168 h of history."""
    if hours < BASIC_HOURS:
        return 0.0
    return min(1.0, hours / FULL_HOURS)


class BaselineForecaster:
    """Per-hour-of-day means shrunk toward the channel's pooled rates."""

    version = "hour-mean-v1"

    def predict(self, ctx: AllocationContext) -> Forecast:
        prof = read_profile(ctx)
        clicks_all = sum(prof.clicks)
        conv_all = sum(prof.conversions)
        spend_all = sum(prof.spend) / 1_000_000
        cr0 = conv_all / clicks_all if clicks_all > 0 else 0.0
        cpc0 = spend_all / clicks_all if clicks_all > 0 else 0.0
        k = 20.0  # pseudo-clicks of the pooled rate mixed into each hour
        cr_h = [0.0] * 24
        cpc_h = [0.0] * 24
        for h in range(24):
            c = prof.clicks[h]
            cr_h[h] = (prof.conversions[h] + k * cr0) / (c + k) if c + k > 0 else cr0
            cpc_h[h] = (prof.spend[h] / 1_000_000 + k * cpc0) / (c + k) if c + k > 0 else cpc0
        hours = ctx.day.hours_of_day
        cr = tuple(cr_h[h] for h in hours)
        cpc = tuple(cpc_h[h] for h in hours)
        eff = tuple((a / b) if b > 0 else 0.0 for a, b in zip(cr, cpc, strict=True))
        confidence = BASELINE_CONFIDENCE_FACTOR * data_confidence(
            ctx.history.hours_with_data(ctx.day_start_hour)
        )
        return Forecast(cr, cpc, eff, confidence, self.version)


def baseline_forecaster() -> Forecaster:
    return BaselineForecaster()
