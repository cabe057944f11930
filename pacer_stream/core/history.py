"""Hourly history of one campaign/channel: the memory strategies and forecasts learn from.

Kept sparse (only hours that saw activity) and bounded by a horizon (default 28 days +
today), keyed by the epoch hour. Recording is O(1); reading for an allocation is
O(horizon) but happens once per day or budget change, never per decision.

It is packed, because a worker holds one history per campaign/channel in memory and a
day of it is most of a channel's state: a dict of five-int lists costs about 200 bytes
an hour (a dict slot, a list, five int objects), the packed columns here 24 (a 4-byte
epoch hour and five 4-byte metrics; 44 once a metric passes 2**31 - 1, e.g. more than
2,147 currency units of spend in one hour, when the metric column widens to 8 bytes).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from pacer_stream.core.compact import int_column, no_entries, own

SPEND, CLICKS, CONVERSIONS, IMPRESSIONS, REVENUE = range(5)
N_METRICS = 5

#: The columns of every history with no hour yet (never changed: ``add`` replaces them).
_NO_HOURS: array[int] = array("i")
_NO_VALUES: array[int] = array("i")
#: One hour of zeros per metric column width (read only).
_ZERO_ROW: dict[str, array[int]] = {t: array(t, [0] * 5) for t in "iq"}


class HourlyHistory:
    """Per epoch hour, the five metrics (spend micros, clicks, conversions, impressions,
    revenue micros) of the hours that saw activity, oldest first.

    Two columns: ``_hours`` (sorted epoch hours, ``array('i')``: 4 bytes cover every
    hour until the year 200,000) and ``_values`` (the five metrics of each hour, in the
    hours' order). Metrics start as 4-byte ints and the column widens once to 8 bytes
    when a value no longer fits; the engine refuses any event that would take a total
    past the largest exact JSON integer, so 8 bytes always suffice. Hours normally
    arrive in order (append, or update the last hour); an out-of-order hour is placed
    by bisection. Pruning is relative to :attr:`newest` (the highest hour ever
    recorded, so it is monotone) and drops the hours before the horizon from the front.

    :attr:`buckets` is a read-only mapping view (epoch hour -> list of the five
    metrics) for readers that want one; the methods read the columns directly.
    """

    __slots__ = ("_hours", "_values", "horizon_hours", "newest")

    def __init__(
        self,
        horizon_hours: int = 29 * 24,
        buckets: Mapping[int, Sequence[int]] | None = None,
        newest: int = 0,
    ) -> None:
        self.horizon_hours = horizon_hours
        #: Highest epoch hour ever recorded: pruning is relative to it, so it is monotone.
        self.newest = newest
        self._hours: array[int] = _NO_HOURS
        self._values: array[int] = _NO_VALUES
        if buckets:
            self._load(buckets)

    def _load(self, buckets: Mapping[int, Sequence[int]]) -> None:
        """Set the columns from ``buckets`` (any order; a shorter bucket, from an older
        format, is padded with zeros). Raises ValueError for a bucket of more than
        five metrics and OverflowError for an hour or a value no column can hold."""
        hours = sorted(buckets)
        flat: list[int] = []
        for h in hours:
            row = list(buckets[h])
            if len(row) > N_METRICS:
                raise ValueError(f"history bucket of hour {h} has {len(row)} metrics")
            flat.extend(row)
            flat.extend([0] * (N_METRICS - len(row)))
        self._hours = array("i", hours)
        self._values = int_column(flat)

    def add(
        self,
        epoch_hour: int,
        spend: int,
        clicks: int,
        conversions: int,
        impressions: int,
        revenue: int,
    ) -> None:
        hours = self._hours
        n = len(hours)
        if n and hours[-1] == epoch_hour:  # the usual case: the current hour
            j = (n - 1) * N_METRICS
        elif not n or hours[-1] < epoch_hour:  # a new hour
            if not n:
                self._hours = hours = array("i")
                self._values = array(self._values.typecode)
            hours.append(epoch_hour)
            self._values.extend(_ZERO_ROW[self._values.typecode])
            j = n * N_METRICS
        else:  # an hour before the last one: rare (late reports)
            i = bisect_left(hours, epoch_hour)
            if hours[i] != epoch_hour:
                hours.insert(i, epoch_hour)
                self._values[i * N_METRICS : i * N_METRICS] = _ZERO_ROW[self._values.typecode]
            j = i * N_METRICS
        v = self._values
        s0 = v[j] + spend
        s1 = v[j + 1] + clicks
        s2 = v[j + 2] + conversions
        s3 = v[j + 3] + impressions
        s4 = v[j + 4] + revenue
        try:
            v[j], v[j + 1], v[j + 2], v[j + 3], v[j + 4] = s0, s1, s2, s3, s4
        except OverflowError:  # a value past the 4-byte column: widen it, once
            self._values = v = array("q", v)
            v[j], v[j + 1], v[j + 2], v[j + 3], v[j + 4] = s0, s1, s2, s3, s4
        if epoch_hour > self.newest:
            self.newest = epoch_hour
            self._prune()

    def _prune(self) -> None:
        hours = self._hours
        if hours and hours[0] < self.newest - self.horizon_hours:
            cut = bisect_left(hours, self.newest - self.horizon_hours)
            del hours[:cut]
            del self._values[: cut * N_METRICS]

    def get(self, epoch_hour: int) -> list[int] | None:
        """The five metrics of ``epoch_hour`` (a copy), or None if it saw nothing."""
        hours = self._hours
        n = len(hours)
        if n and hours[-1] == epoch_hour:  # the current hour (every spend event asks)
            i = n - 1
        else:
            i = bisect_left(hours, epoch_hour)
            if i == n or hours[i] != epoch_hour:
                return None
        j = i * N_METRICS
        return self._values[j : j + N_METRICS].tolist()

    def items(self) -> Iterator[tuple[int, list[int]]]:
        """``(epoch hour, five metrics)`` of every hour held, oldest first."""
        return self._rows(len(self._hours))

    def before(self, epoch_hour: int) -> Iterator[tuple[int, list[int]]]:
        """Buckets strictly before ``epoch_hour`` (the history a plan may learn from)."""
        return self._rows(bisect_left(self._hours, epoch_hour))

    def _rows(self, stop: int) -> Iterator[tuple[int, list[int]]]:
        values = self._values
        for i, h in enumerate(self._hours[:stop]):
            j = i * N_METRICS
            yield h, values[j : j + N_METRICS].tolist()

    def hours(self) -> list[int]:
        """The epoch hours held, oldest first."""
        return self._hours.tolist()

    def rows(self) -> list[tuple[int, int, int, int, int]]:
        """The five metrics of each hour held, in the order of :meth:`hours` (tuples:
        grouped by ``zip`` in C, as the stored value is written often)."""
        it = iter(self._values.tolist())
        return list(zip(it, it, it, it, it, strict=False))

    def hours_with_data(self, before_epoch_hour: int) -> int:
        return bisect_left(self._hours, before_epoch_hour)

    def totals(self, from_hour: int, to_hour: int) -> list[int]:
        """Sum of every metric over ``[from_hour, to_hour)``."""
        hours = self._hours
        lo = bisect_left(hours, from_hour)
        hi = bisect_left(hours, to_hour, lo)
        if lo >= hi:
            return [0] * N_METRICS
        part = self._values[lo * N_METRICS : hi * N_METRICS]
        return [sum(part[k::N_METRICS]) for k in range(N_METRICS)]

    @property
    def buckets(self) -> Mapping[int, list[int]]:
        """Read-only view: epoch hour -> its five metrics (copies), oldest hour first."""
        return HistoryBuckets(self)

    def __len__(self) -> int:
        """Hours held."""
        return len(self._hours)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HourlyHistory):
            return NotImplemented
        return (
            self.horizon_hours == other.horizon_hours
            and self.newest == other.newest
            and self._hours == other._hours
            and self._values.tolist() == other._values.tolist()
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return (
            f"HourlyHistory(horizon_hours={self.horizon_hours}, "
            f"buckets={dict(self.items())!r}, newest={self.newest})"
        )


class HistoryBuckets(Mapping[int, list[int]]):
    """A read-only mapping view of an :class:`HourlyHistory` (see its ``buckets``)."""

    __slots__ = ("_history",)

    def __init__(self, history: HourlyHistory) -> None:
        self._history = history

    def __getitem__(self, epoch_hour: int) -> list[int]:
        bucket = self._history.get(epoch_hour)
        if bucket is None:
            raise KeyError(epoch_hour)
        return bucket

    def __iter__(self) -> Iterator[int]:
        return iter(self._history.hours())

    def __len__(self) -> int:
        return len(self._history)

    def items(self) -> Iterable[tuple[int, list[int]]]:  # type: ignore[override]
        return list(self._history.items())

    def values(self) -> Iterable[list[int]]:  # type: ignore[override]
        return [list(row) for row in self._history.rows()]


@dataclass(slots=True)
class HourlyAmounts:
    """Sparse micros per epoch hour (requests a budget rule refused: unmet demand), over
    the same horizon as :class:`HourlyHistory`. Bounded: older hours are pruned."""

    horizon_hours: int = 29 * 24
    #: The shared empty dict until the first refusal (most channels never see one).
    amounts: dict[int, int] = field(default_factory=no_entries)

    def add(self, epoch_hour: int, amount: int) -> None:
        self.amounts = own(self.amounts)
        self.amounts[epoch_hour] = self.amounts.get(epoch_hour, 0) + amount
        if len(self.amounts) > self.horizon_hours:
            oldest = max(self.amounts) - self.horizon_hours
            for h in [h for h in self.amounts if h < oldest]:
                del self.amounts[h]
