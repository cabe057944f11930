"""Performance analytics of one campaign/channel: raw counts and derived ratios.

Counts are kept per hour in :class:`~pacer_stream.core.history.HourlyHistory` (O(1) per
spend event, bounded by the history horizon); the windows below are read on demand
(a snapshot, a status call), never on the decision path.

Derived ratios are ``None`` when undefined (no clicks, no spend, no impressions
reported), never a misleading 0 or a division error:

* CTR = clicks / impressions           * conversion rate = conversions / clicks
* CPC = spend / clicks (currency)      * CPA = spend / conversions (currency)
* ROAS = revenue / spend
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pacer_stream.core.history import (
    CLICKS,
    CONVERSIONS,
    IMPRESSIONS,
    REVENUE,
    SPEND,
    HourlyHistory,
)
from pacer_stream.core.money import MICROS_PER_UNIT

#: How many standard deviations below the floor's expected conversions count as a
#: violation of ``min_conversion_rate``.
SIGNIFICANCE_SIGMAS = 2.0
#: Trailing windows of a snapshot, in hours before the start of today.
WEEK_HOURS = 7 * 24
BASELINE_HOURS = 28 * 24


@dataclass(frozen=True, slots=True)
class Metrics:
    spend_micros: int
    impressions: int
    clicks: int
    conversions: int
    revenue_micros: int

    @classmethod
    def of(cls, totals: list[int]) -> Metrics:
        return cls(
            totals[SPEND], totals[IMPRESSIONS], totals[CLICKS], totals[CONVERSIONS], totals[REVENUE]
        )

    @property
    def ctr(self) -> float | None:
        return self.clicks / self.impressions if self.impressions > 0 else None

    @property
    def conversion_rate(self) -> float | None:
        return self.conversions / self.clicks if self.clicks > 0 else None

    @property
    def cost_per_click(self) -> float | None:
        return self.spend_micros / MICROS_PER_UNIT / self.clicks if self.clicks > 0 else None

    @property
    def cost_per_acquisition(self) -> float | None:
        if self.conversions <= 0:
            return None
        return self.spend_micros / MICROS_PER_UNIT / self.conversions

    @property
    def roas(self) -> float | None:
        return self.revenue_micros / self.spend_micros if self.spend_micros > 0 else None

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "spend_micros": self.spend_micros,
            "impressions": self.impressions,
            "clicks": self.clicks,
            "conversions": self.conversions,
            "revenue_micros": self.revenue_micros,
            "ctr": self.ctr,
            "conversion_rate": self.conversion_rate,
            "cost_per_click": self.cost_per_click,
            "cost_per_acquisition": self.cost_per_acquisition,
            "roas": self.roas,
        }


@dataclass(frozen=True, slots=True)
class PerformanceSnapshot:
    today: Metrics
    last_7_days: Metrics
    baseline: Metrics
    #: Today's metrics per slot of the local day (hourly view).
    hourly: tuple[Metrics, ...]


def window(history: HourlyHistory, start_hour: int, hours: int) -> Metrics:
    """Metrics over the ``hours`` hours before epoch hour ``start_hour``."""
    return Metrics.of(history.totals(start_hour - hours, start_hour))


def performance_snapshot(
    history: HourlyHistory, day_start_hour: int, day_end_hour: int
) -> PerformanceSnapshot:
    hourly = tuple(
        Metrics.of(history.get(h) or [0, 0, 0, 0, 0]) for h in range(day_start_hour, day_end_hour)
    )
    today = Metrics.of(history.totals(day_start_hour, day_end_hour))
    return PerformanceSnapshot(
        today=today,
        last_7_days=window(history, day_start_hour, WEEK_HOURS),
        baseline=window(history, day_start_hour, BASELINE_HOURS),
        hourly=hourly,
    )


def threshold_violation(
    recent: Metrics,
    *,
    min_conversion_rate: float | None,
    max_cost_per_click_micros: int | None,
    target_roas: float | None,
    min_clicks: int,
) -> str | None:
    """Which optional performance threshold ``recent`` violates, or None.

    Nothing fires under the minimum sample (``min_clicks`` clicks in the window), so
    noise in a quiet hour cannot throttle a channel.
    """
    if recent.clicks < min_clicks:
        return None
    cr = recent.conversion_rate
    if min_conversion_rate is not None and cr is not None:
        # Conversions are rare events: at the floor rate, this many clicks would give
        # ``expected`` conversions with Poisson noise of sqrt(expected). Fire only when
        # the observed count is more than two standard deviations below it (about a
        # 2% false-alarm rate for a channel exactly at its floor), not on a plain ratio.
        expected = recent.clicks * min_conversion_rate
        if recent.conversions < expected - SIGNIFICANCE_SIGMAS * math.sqrt(expected):
            return (
                f"conversion rate {cr:.4f} below minimum {min_conversion_rate:.4f} "
                f"({recent.conversions} conversions on {recent.clicks} clicks, "
                f"{expected:.1f} expected at the minimum)"
            )
    if max_cost_per_click_micros is not None:
        cpc_micros = recent.spend_micros / recent.clicks
        if cpc_micros > max_cost_per_click_micros:
            return (
                f"cost per click {cpc_micros / MICROS_PER_UNIT:.2f} above maximum "
                f"{max_cost_per_click_micros / MICROS_PER_UNIT:.2f}"
            )
    roas = recent.roas
    if target_roas is not None and roas is not None and roas < target_roas:
        return f"ROAS {roas:.2f} below target {target_roas:.2f}"
    return None
