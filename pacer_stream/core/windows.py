"""Bounded windows the rules need: per-minute spend ring and the event-id dedupe window.

Both are O(1) per update and bounded in memory whatever the traffic, which is what keeps
every decision independent of how much history a campaign has.
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from pacer_stream.core.compact import no_entries, own
from pacer_stream.core.money import MAX_MICROS

#: The arrays of every ring not used yet (never changed: see :class:`MinuteRing`).
_UNUSED: array[int] = array("q")


@dataclass(slots=True)
class MinuteRing:
    """Spend per epoch minute over a short trailing window (velocity rules).

    The arrays are allocated on the first ``add``: most channels never see unauthorised
    spend or unmet demand, and until then both fields hold one shared empty array
    (``add`` replaces it, nothing appends to it), so an unused ring is just this object.
    Amounts are ``array('q')`` (saturated micros fit 64 bits): 8 bytes a value where a
    list holds a pointer to a separate int object. Minutes are ``array('i')``: every
    epoch minute until the year 6053 fits 4 bytes; a later one (a far-future event
    time) widens the column to 8 bytes, so no time is refused for its size.
    """

    size: int = 16
    minutes: array[int] = field(default_factory=lambda: _UNUSED)
    amounts: array[int] = field(default_factory=lambda: _UNUSED)

    def add(self, ts: float, amount: int) -> None:
        if not self.minutes:
            self.minutes = array("i", [-1]) * self.size
            self.amounts = array("q", [0]) * self.size
        m = int(ts // 60)
        i = m % self.size
        if self.minutes[i] != m:
            if self.minutes[i] > m:  # older than what the slot holds: outside the ring
                return
            try:
                self.minutes[i] = m
            except OverflowError:  # past 4 bytes: widen the column, once
                self.minutes = array("q", self.minutes)
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

    The expiry queue ``order`` is None while the window is empty: a ``deque`` costs
    about 760 bytes even when empty (it allocates a 64-slot block up front), and the
    worker holds one window per campaign, most of them empty between bursts (the
    stream worker keeps the ids themselves in records of their own). It is allocated
    by the first :meth:`add` and dropped again, with the ``expiry`` table, when the
    window empties (a dict keeps its grown table after its entries are popped); an
    empty window's ``expiry`` is the shared empty dict of ``core.compact``.

    ``added`` is off (None) for the facade and the simulator, which keep the window
    inside the campaign state. The stream worker turns it on (:meth:`track`): it saves
    the ids each input record added as a record of their own instead of the whole window
    with every state write, so it asks which ids were added since it last asked
    (:meth:`take_added`); ids leave with the records that hold them.
    """

    window_s: float = 25 * 3600.0
    max_entries: int = 1_000_000
    expiry: dict[str, float] = field(default_factory=no_entries)
    #: Held ids oldest first (None while empty: never an empty deque).
    order: deque[str] | None = None
    evicted: int = 0
    #: Ids added since the last :meth:`take_added` (an ordered set), or None while
    #: nobody tracks them.
    added: dict[str, None] | None = field(default=None, compare=False, repr=False)

    def seen(self, event_id: str, now: float) -> bool:
        self.prune(now)
        return event_id in self.expiry

    def add(self, event_id: str, now: float) -> None:
        if event_id in self.expiry:
            return
        expiry = self.expiry = own(self.expiry)
        expiry[event_id] = now + self.window_s
        order = self.order
        if order is None:
            order = self.order = deque()
        order.append(event_id)
        if self.added is not None:
            self.added[event_id] = None
        while len(order) > self.max_entries:
            if expiry.pop(order.popleft(), None) is not None:
                self.evicted += 1

    def prune(self, now: float) -> None:
        order = self.order
        if order is None:
            return
        expiry = self.expiry
        while order and expiry.get(order[0], 0.0) <= now:
            expiry.pop(order.popleft(), None)
        if not expiry:
            self.clear()

    def forget(self, event_id: str) -> None:
        """Drop one id at once (its slot in ``order`` is skipped by the next prune)."""
        self.expiry.pop(event_id, None)
        if self.added is not None:
            self.added.pop(event_id, None)
        if not self.expiry:
            self.clear()

    def clear(self) -> None:
        """Forget every held id and release the storage that held them (the eviction
        count and tracking stay: ids that leave are not additions to save)."""
        self.expiry = no_entries()
        self.order = None
        if self.added:
            self.added = {}

    def restore(self, entries: Iterable[tuple[str, float]]) -> None:
        """Put back ids saved elsewhere with their expiry times (not additions: they are
        saved already). Keeps ``order`` sorted by expiry, which pruning relies on."""
        saved = list(entries)
        if not saved:
            return
        expiry = self.expiry = own(self.expiry)
        expiry.update(saved)
        self.order = deque(sorted(expiry, key=expiry.__getitem__))

    def track(self) -> None:
        """Start listing additions; every id already held counts as added (it may not
        be saved anywhere yet, e.g. a window read from an older format)."""
        if self.added is None:
            self.added = {e: None for e in self.order or () if e in self.expiry}

    def take_added(self) -> list[str]:
        """Ids added since the last call and still held, oldest first."""
        added = self.added
        if not added:
            return []
        self.added = {}
        expiry = self.expiry
        return [e for e in added if e in expiry]

    def __len__(self) -> int:
        return len(self.expiry)
