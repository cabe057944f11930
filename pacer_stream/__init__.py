"""pacer-stream: event-driven advertising budget pacer.

The original-compatible in-process API::

    from pacer_stream import BudgetPacer, ChannelType, PacingStrategy, SpendTransaction
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pacer_stream.core.types import ChannelType, CircuitBreakerState, PacingStrategy

__all__ = [
    "BudgetPacer",
    "ChannelType",
    "CircuitBreakerState",
    "HourlyAllocation",
    "PacingAlert",
    "PacingStrategy",
    "SpendTransaction",
]
__version__ = "0.1.0"

if TYPE_CHECKING:
    from pacer_stream.api import BudgetPacer, HourlyAllocation, PacingAlert, SpendTransaction


def __getattr__(name: str) -> Any:
    # The facade is imported lazily so ``import pacer_stream.core`` stays light.
    if name in {"BudgetPacer", "HourlyAllocation", "PacingAlert", "SpendTransaction"}:
        from pacer_stream import api

        return getattr(api, name)
    raise AttributeError(name)
