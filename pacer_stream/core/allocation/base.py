"""The strategy interface and the shared shaping every strategy's output goes through.

A strategy only says *how much each hour is worth* (relative weights, plus the
performance figures it used). Turning weights into money is shared: frontload
protection, the per-hour maximum, moving held-back budget to later hours, and the exact
integer split all live in :func:`shape_day`, written once.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Protocol

from pacer_stream.core.calendar import LocalDay
from pacer_stream.core.compact import ints_view, pack_ints, packed_int, packed_pair
from pacer_stream.core.history import HourlyHistory
from pacer_stream.core.money import split_exact
from pacer_stream.core.types import PacingStrategy, Thresholds


@dataclass(frozen=True, slots=True)
class AllocationContext:
    """What a strategy may look at: the day to plan and the history before it."""

    day: LocalDay
    history: HourlyHistory
    #: Epoch hour of the day's first slot; history at or after it is "today".
    day_start_hour: int
    #: (campaign_id, channel value): lets a forecaster find the model trained for it.
    key: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class StrategyResult:
    weights: tuple[float, ...]
    multipliers: tuple[float, ...]
    predicted_conversion_rate: tuple[float, ...]
    predicted_cost_per_click: tuple[float, ...]
    confidence: float
    model_version: str | None = None


class AllocationStrategy(Protocol):
    """One hourly allocation strategy (aiokafka-assignor style: small, one method)."""

    name: PacingStrategy
    #: Local hour from which the strategy's plans trust only the sure part of each hour's
    #: capacity (the least demand any past day showed in it: ``capacity.sure_capacity``);
    #: None: every hour keeps the usual capacity. For plans that lean on learned hours.
    sure_from_hour: int | None

    def weigh(self, ctx: AllocationContext) -> StrategyResult: ...


def flat_result(n: int, *, confidence: float = 0.0, version: str | None = None) -> StrategyResult:
    ones = tuple(1.0 for _ in range(n))
    zeros = tuple(0.0 for _ in range(n))
    return StrategyResult(ones, ones, zeros, zeros, confidence, version)


class DayPlan:
    """A day's hourly plan in micros, plus what rollover needs to re-plan later hours.

    Immutable, compared and hashed by value like the frozen dataclass it replaces. A
    worker holds one plan per campaign/channel whose budget differs from the others'
    (equal plans are shared, ``planning.shared_plan``), so it keeps only what cannot be
    derived, as narrow as the values allow:

    * :attr:`cum`, the cumulative plan at each slot boundary (``len(amounts) + 1``
      values), which the pace rules read on every call; a slot's amount is the
      difference of two boundaries, so the amounts are not kept beside it; packed in
      one ``bytes`` as wide as the day's total needs (``compact.pack_ints``: 4 bytes a
      boundary under ~2,147 currency units a day, else 8; 1 or 2 for tiny budgets), so
      a plan of its own pays 33 bytes of header where an ``array`` paid 64 and a
      buffer apart (-46 bytes at 25 boundaries of 4);
    * the caps not at all when they are what :func:`slot_caps` gives for the plan's
      total, weights and the ``thresholds`` passed (a plan shaped without a capacity
      limit, the usual case: the slot then holds the shared thresholds and the caps are
      derived when read), else as runs of equal values (``value, count, value,
      count...``) in one ``bytes`` of 8-byte ints: two or three runs (~70 bytes) where
      24 values in an array took 272. Only rollover, re-planning and the codec read
      them.

    The weights stay the tuple given, which is usually shared with the strategy result
    or interned by ``planning``. Amounts and caps are handed out as tuples.
    """

    __slots__ = ("_caps", "_cum", "weights")

    _cum: bytes
    _caps: bytes | Thresholds
    weights: tuple[float, ...]

    def __init__(
        self,
        amounts: Sequence[int],
        caps: Sequence[int],
        weights: tuple[float, ...],
        thresholds: Thresholds | None = None,
    ) -> None:
        cum = list(accumulate(amounts, initial=0))
        spec: bytes | Thresholds
        if thresholds is not None and list(caps) == slot_caps(cum[-1], weights, thresholds):
            spec = thresholds  # derived on demand: nothing kept
        else:
            spec = array("q", _runs(caps)).tobytes()
        object.__setattr__(self, "_cum", pack_ints(cum))
        object.__setattr__(self, "_caps", spec)
        object.__setattr__(self, "weights", weights)

    def with_weights(self, weights: tuple[float, ...]) -> DayPlan:
        """The same plan holding ``weights`` (an equal tuple: interning)."""
        plan = object.__new__(DayPlan)
        object.__setattr__(plan, "_cum", self._cum)
        object.__setattr__(plan, "_caps", self._caps)
        object.__setattr__(plan, "weights", weights)
        return plan

    @property
    def cum(self) -> memoryview:
        """The cumulative plan at each slot boundary: a read-only view (index, slice,
        ``len``, ``tolist``)."""
        return ints_view(self._cum)

    def cum_at(self, boundary: int) -> int:
        """The cumulative plan at ``boundary`` (negative from the end), read without a
        view: the pace rules ask on every call."""
        return packed_int(self._cum, boundary)

    def cum_pair(self, slot: int) -> tuple[int, int]:
        """The cumulative plan at the start and at the end of ``slot``, in one read (the
        pace rules ask on every decision)."""
        return packed_pair(self._cum, slot)

    @property
    def amounts(self) -> tuple[int, ...]:
        cum = self.cum.tolist()
        return tuple([cum[i + 1] - cum[i] for i in range(len(cum) - 1)])

    @property
    def caps(self) -> tuple[int, ...]:
        spec = self._caps
        if not isinstance(spec, bytes):
            return tuple(slot_caps(self.cum_at(-1), self.weights, spec))
        runs: list[int] = memoryview(spec).cast("q").tolist()
        out: list[int] = []
        for i in range(0, len(runs), 2):
            out += [runs[i]] * runs[i + 1]
        return tuple(out)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"DayPlan is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"DayPlan is immutable (cannot delete {name!r})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DayPlan):
            return NotImplemented
        # packing is canonical (the same values give the same bytes)
        if self._cum != other._cum or self.weights != other.weights:
            return False
        return self._caps is other._caps or self.caps == other.caps

    def __hash__(self) -> int:
        return hash((self._cum, self.caps, self.weights))

    def __repr__(self) -> str:
        return f"DayPlan(amounts={self.amounts!r}, caps={self.caps!r}, weights={self.weights!r})"

    def __reduce__(self) -> tuple[type[DayPlan], tuple[object, ...]]:
        spec = self._caps
        derived = None if isinstance(spec, bytes) else spec
        return (DayPlan, (self.amounts, self.caps, self.weights, derived))


def _runs(values: Sequence[int]) -> list[int]:
    """``values`` as runs of equal values: ``[value, count, value, count, ...]``."""
    out: list[int] = []
    for v in values:
        if out and out[-2] == v:
            out[-1] += 1
        else:
            out += [v, 1]
    return out


def _normalise(weights: Sequence[float]) -> list[float]:
    clean = [w if w > 0 and w == w and w != float("inf") else 0.0 for w in weights]
    total = sum(clean)
    if total <= 0:
        return [1.0 / len(clean)] * len(clean) if clean else []
    return [w / total for w in clean]


def slot_caps(
    budget: int,
    weights: Sequence[float],
    t: Thresholds,
    capacity: Sequence[int] | None = None,
) -> list[int]:
    """Per-slot ceilings: ``max_hourly_spend_pct`` of the day everywhere,
    ``frontload_factor`` of the slot's normal share in the first protected hours, and
    what the slot can absorb (``capacity``, see ``allocation.capacity``) when known.

    The capacity ceilings apply only when the slots together can absorb the budget: a
    channel whose history shows less demand than its budget (a new or raised budget, a
    history of small test spends) is planned by the other ceilings alone, as before,
    rather than having the excess spread on top of every ceiling."""
    shares = _normalise(weights)
    hour_cap = int(budget * t.max_hourly_spend_pct)
    caps = []
    for i, s in enumerate(shares):
        cap = hour_cap
        if i < t.frontload_protection_hours:
            cap = min(cap, int(budget * s * t.frontload_factor))
        caps.append(cap)
    if capacity is not None and len(capacity) == len(caps):
        limited = [min(cap, max(0, c)) for cap, c in zip(caps, capacity, strict=True)]
        if sum(limited) >= budget:
            return limited
    return caps


def waterfill(total: int, weights: Sequence[float], caps: Sequence[int]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` without exceeding ``caps``; what a
    capped slot cannot take flows to the uncapped ones in proportion to their weights.

    If the caps together cannot hold ``total`` (possible late in a day with a large
    rollover, or with extreme settings) the remainder is spread by weight on top of the
    caps: budget is never silently lost. The result always sums to ``total`` exactly.
    """
    n = len(weights)
    if n == 0:
        return []
    shares = _normalise(weights)
    alloc = [0] * n
    # A zero-weight slot (e.g. an hour before a mid-day activation) takes nothing, even
    # when the weighted slots overflow their caps.
    open_slots = [i for i in range(n) if caps[i] > 0 and shares[i] > 0]
    remaining = total
    while remaining > 0 and open_slots:
        parts = split_exact(remaining, [shares[i] for i in open_slots])
        overflow = 0
        still_open = []
        for i, part in zip(open_slots, parts, strict=True):
            room = caps[i] - alloc[i]
            if part >= room:
                alloc[i] += room
                overflow += part - room
            else:
                alloc[i] += part
                still_open.append(i)
        remaining = overflow
        if len(still_open) == len(open_slots):
            break
        open_slots = still_open
    if remaining > 0:
        for i, part in enumerate(split_exact(remaining, shares)):
            alloc[i] += part
    return alloc


def shape_day(
    budget: int,
    result: StrategyResult,
    t: Thresholds,
    capacity: Sequence[int] | None = None,
) -> DayPlan:
    """Frontload protection + per-hour maximum + what each hour can absorb + exact split
    of the daily budget (what a capped slot cannot take flows to the others by weight;
    when every slot is full the rest is spread by weight on top, never lost)."""
    caps = slot_caps(budget, result.weights, t, capacity)
    amounts = waterfill(budget, result.weights, caps)
    return DayPlan(tuple(amounts), tuple(caps), tuple(result.weights), t)
