"""Bounded windows the rules need: per-minute spend ring and the event-id dedupe window.

Both are O(1) per update and bounded in memory whatever the traffic, which is what keeps
every decision independent of how much history a campaign has.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from pacer_stream.core.money import MAX_MICROS


@dataclass(slots=True)
class MinuteRing:
    """Spend per epoch minute over a short trailing window (velocity rules).

    The arrays are allocated on the first ``add``: most channels never see unauthorised
    spend or unmet demand, and an empty ring costs two empty lists.
    """

    size: int = 16
    minutes: list[int] = field(default_factory=list)
    amounts: list[int] = field(default_factory=list)

    def add(self, ts: float, amount: int) -> None:
        if not self.minutes:
            self.minutes = [-1] * self.size
            self.amounts = [0] * self.size
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

    ``changed`` is off (None) for the facade and the simulator, which keep the window
    inside the campaign state. The stream worker turns it on (:meth:`track`): it saves
    each id as its own small record instead of the whole window with every state
    write, so it needs to know which ids were added or dropped since it last asked
    (:meth:`take_changes`).
    """

    window_s: float = 25 * 3600.0
    max_entries: int = 1_000_000
    expiry: dict[str, float] = field(default_factory=dict)
    order: deque[str] = field(default_factory=deque)
    evicted: int = 0
    #: Ids added or dropped since the last :meth:`take_changes` (an ordered set), or
    #: None while nobody tracks changes.
    changed: dict[str, None] | None = field(default=None, compare=False, repr=False)

    def seen(self, event_id: str, now: float) -> bool:
        self.prune(now)
        return event_id in self.expiry

    def add(self, event_id: str, now: float) -> None:
        if event_id in self.expiry:
            return
        self.expiry[event_id] = now + self.window_s
        self.order.append(event_id)
        changed = self.changed
        if changed is not None:
            changed[event_id] = None
        while len(self.order) > self.max_entries:
            old = self.order.popleft()
            if self.expiry.pop(old, None) is not None:
                self.evicted += 1
                if changed is not None:
                    changed[old] = None

    def prune(self, now: float) -> None:
        order = self.order
        expiry = self.expiry
        changed = self.changed
        while order and expiry.get(order[0], 0.0) <= now:
            old = order.popleft()
            if expiry.pop(old, None) is not None and changed is not None:
                changed[old] = None

    def forget(self, event_id: str) -> None:
        """Drop one id at once (its slot in ``order`` is skipped by the next prune)."""
        if self.expiry.pop(event_id, None) is not None and self.changed is not None:
            self.changed[event_id] = None

    def restore(self, entries: Iterable[tuple[str, float]]) -> None:
        """Put back ids saved elsewhere with their expiry times (not a change: they are
        saved already). Keeps ``order`` sorted by expiry, which pruning relies on."""
        saved = list(entries)
        if not saved:
            return
        expiry = self.expiry
        expiry.update(saved)
        self.order = deque(sorted(expiry, key=expiry.__getitem__))

    def track(self) -> None:
        """Start listing changes; every id already held counts as a change (it may
        not be saved anywhere yet, e.g. a window read from an older format)."""
        if self.changed is None:
            self.changed = dict.fromkeys(self.order)
            for event_id in [e for e in self.changed if e not in self.expiry]:
                del self.changed[event_id]

    def take_changes(self) -> list[str]:
        """Ids added or dropped since the last call, oldest change first: an id still in
        ``expiry`` was added (or kept), any other was dropped."""
        changed = self.changed
        if not changed:
            return []
        self.changed = {}
        return list(changed)

    def __len__(self) -> int:
        return len(self.expiry)
