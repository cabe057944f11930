"""The one measure of channel/hour efficiency: smoothed conversions per unit of spend.

Reallocation and PERFORMANCE_WEIGHTED both call :func:`smoothed_efficiency`, so "better"
means the same thing everywhere. The estimate is a Gamma-Poisson posterior mean: the
observed conversions and spend are blended with a *prior* of ``prior_rate`` conversions
per unit observed over ``prior_units`` units of spend. With little spend the estimate
stays near the prior; with a lot it follows the data. The default prior weight is 50
currency units: a channel needs roughly that much spend before its own rate dominates.
"""

from __future__ import annotations

from pacer_stream.core.money import MICROS_PER_UNIT

DEFAULT_PRIOR_UNITS = 50.0


def smoothed_efficiency(
    conversions: int,
    spend_micros: int,
    prior_rate: float,
    prior_units: float = DEFAULT_PRIOR_UNITS,
) -> float:
    """Conversions per currency unit, shrunk toward ``prior_rate``."""
    units = spend_micros / MICROS_PER_UNIT
    return (conversions + prior_rate * prior_units) / (units + prior_units)


def pooled_rate(conversions: int, spend_micros: int) -> float:
    """Raw conversions per unit, 0 when nothing was spent (used as the prior)."""
    if spend_micros <= 0:
        return 0.0
    return conversions / (spend_micros / MICROS_PER_UNIT)
