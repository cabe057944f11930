"""Bounded windows the rules need: per-minute spend ring and the event-id dedupe window.

Both are O(1) per update and bounded in memory whatever the traffic, which is what keeps
every decision independent of how much history a campaign has.
"""

from __future__ import annotations

from array import array
from collections import deque
from dataclasses import dataclass, field

from pacer_stream.core.money import MAX_MICROS

#: The arrays of every ring not used yet (never changed: see :class:`MinuteRing`).
_UNUSED: array[int] = array("q")


@dataclass(slots=True)
class MinuteRing:
    """Spend per epoch minute over a short trailing window (velocity rules).

    The arrays are allocated on the first ``add``: most channels never see unauthorised
    spend or unmet demand, and until then both fields hold one shared empty array
    (``add`` replaces it, nothing appends to it), so an unused ring is just this object.
    They are ``array('q')`` (epoch minutes and saturated micros both fit 64 bits): 8
    bytes a value where a list holds a pointer to a separate int object.
    """

    size: int = 16
    minutes: array[int] = field(default_factory=lambda: _UNUSED)
    amounts: array[int] = field(default_factory=lambda: _UNUSED)

    def add(self, ts: float, amount: int) -> None:
        if not self.minutes:
            self.minutes = array("q", [-1]) * self.size
            self.amounts = array("q", [0]) * self.size
        m = int(ts // 60)
        i = m % self.size
        if self.minutes[i] != m:
            if self.minutes[i] > m:  # older than what the slot holds: outside the ring
                return
            self.minutes[i] = m
            self.amounts[i] = 0
        # Saturate: a minute's total is evidence, not money owed, and must stay a
        # JSON-safe integer however many requests a hostile caller repeats.
        self.amounts[i] = min(MAX_MICROS, self.amounts[i] + amount)

    def total(self, now: float, window_s: int) -> int:
        """Spend in the minutes overlapping ``(now - window_s, now]`` (minute grain)."""
        m = int(now // 60)
        span = min(self.size, max(1, (window_s + 59) // 60))
        minutes = self.minutes
        if not minutes:
            return 0
        amounts = self.amounts
        size = self.size
        s = 0
        for mm in range(m - span + 1, m + 1):
            i = mm % size
            if minutes[i] == mm:
                s += amounts[i]
        return s


@dataclass(slots=True)
class DedupeWindow:
    """Event ids seen in the last ``window_s`` seconds (at least 24 h by default).

    Entries expire in insertion order (the processing clock is monotone per partition),
    so pruning pops from the front: O(1) amortised. ``max_entries`` bounds memory if a
    producer floods ids; the oldest are dropped first and the drop is counted.
    """

    window_s: float = 25 * 3600.0
    max_entries: int = 1_000_000
    expiry: dict[str, float] = field(default_factory=dict)
    order: deque[str] = field(default_factory=deque)
    evicted: int = 0

    def seen(self, event_id: str, now: float) -> bool:
        self.prune(now)
        return event_id in self.expiry

    def add(self, event_id: str, now: float) -> None:
        if event_id in self.expiry:
            return
        self.expiry[event_id] = now + self.window_s
        self.order.append(event_id)
        while len(self.order) > self.max_entries:
            old = self.order.popleft()
            self.expiry.pop(old, None)
            self.evicted += 1

    def prune(self, now: float) -> None:
        order = self.order
        expiry = self.expiry
        while order and expiry.get(order[0], 0.0) <= now:
            expiry.pop(order.popleft(), None)

    def __len__(self) -> int:
        return len(self.expiry)
