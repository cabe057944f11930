"""Hourly allocation: strategies (one interface) and the shared day shaping."""

from pacer_stream.core.allocation.base import (
    AllocationContext,
    AllocationStrategy,
    DayPlan,
    StrategyResult,
    shape_day,
    waterfill,
)
from pacer_stream.core.allocation.strategies import default_registry

__all__ = [
    "AllocationContext",
    "AllocationStrategy",
    "DayPlan",
    "StrategyResult",
    "default_registry",
    "shape_day",
    "waterfill",
]
