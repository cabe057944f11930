"""Hourly history of one campaign/channel: the memory strategies and forecasts learn from.

Kept sparse (only hours that saw activity) and bounded by a horizon (default 28 days +
today), keyed by the epoch hour. Recording is O(1); reading for an allocation is
O(horizon) but happens once per day or budget change, never per decision.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

SPEND, CLICKS, CONVERSIONS, IMPRESSIONS, REVENUE = range(5)
N_METRICS = 5


@dataclass(slots=True)
class HourlyHistory:
    horizon_hours: int = 29 * 24
    buckets: dict[int, list[int]] = field(default_factory=dict)
    #: Highest epoch hour ever recorded: pruning is relative to it, so it is monotone.
    newest: int = 0

    def add(
        self,
        epoch_hour: int,
        spend: int,
        clicks: int,
        conversions: int,
        impressions: int,
        revenue: int,
    ) -> None:
        b = self.buckets.get(epoch_hour)
        if b is None:
            b = [0] * N_METRICS
            self.buckets[epoch_hour] = b
        b[SPEND] += spend
        b[CLICKS] += clicks
        b[CONVERSIONS] += conversions
        b[IMPRESSIONS] += impressions
        b[REVENUE] += revenue
        if epoch_hour > self.newest:
            self.newest = epoch_hour
            self._prune()

    def _prune(self) -> None:
        oldest = self.newest - self.horizon_hours
        if len(self.buckets) > self.horizon_hours or (
            self.buckets and next(iter(self.buckets)) < oldest
        ):
            for h in [h for h in self.buckets if h < oldest]:
                del self.buckets[h]

    def before(self, epoch_hour: int) -> Iterator[tuple[int, list[int]]]:
        """Buckets strictly before ``epoch_hour`` (the history a plan may learn from)."""
        for h, b in self.buckets.items():
            if h < epoch_hour:
                yield h, b

    def __len__(self) -> int:
        """Hours held."""
        return len(self.buckets)

    def hours_with_data(self, before_epoch_hour: int) -> int:
        return sum(1 for h in self.buckets if h < before_epoch_hour)

    def totals(self, from_hour: int, to_hour: int) -> list[int]:
        """Sum of every metric over ``[from_hour, to_hour)``."""
        out = [0] * N_METRICS
        buckets = self.buckets
        if to_hour - from_hour < len(buckets):
            # A short window (the last few hours): look its hours up, O(window).
            for h in range(from_hour, to_hour):
                b = buckets.get(h)
                if b is not None:
                    for i in range(N_METRICS):
                        out[i] += b[i]
            return out
        for h, b in buckets.items():
            if from_hour <= h < to_hour:
                for i in range(N_METRICS):
                    out[i] += b[i]
        return out


@dataclass(slots=True)
class HourlyAmounts:
    """Sparse micros per epoch hour (requests a budget rule refused: unmet demand), over
    the same horizon as :class:`HourlyHistory`. Bounded: older hours are pruned."""

    horizon_hours: int = 29 * 24
    amounts: dict[int, int] = field(default_factory=dict)

    def add(self, epoch_hour: int, amount: int) -> None:
        self.amounts[epoch_hour] = self.amounts.get(epoch_hour, 0) + amount
        if len(self.amounts) > self.horizon_hours:
            oldest = max(self.amounts) - self.horizon_hours
            for h in [h for h in self.amounts if h < oldest]:
                del self.amounts[h]
