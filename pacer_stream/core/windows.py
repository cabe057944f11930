"""Bounded windows the rules need: per-minute spend ring and the event-id dedupe window.

Both are O(1) per update and bounded in memory whatever the traffic, which is what keeps
every decision independent of how much history a campaign has.
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pacer_stream.core.compact import int_column, no_entries, own
from pacer_stream.core.money import MAX_MICROS

#: The rings of a channel, by index into :class:`MinuteRings`.
VELOCITY, UNAUTHORISED, UNMET = range(3)
N_RINGS = 3
RING_SIZE = 16
#: The array of every set of rings none of which is used yet (never written: ``add``
#: replaces it).
_NO_RINGS: array[int] = array("i")


class _Layout:
    """Where each ring of a :class:`MinuteRings` lives in its array. Immutable and
    interned (:func:`_layout`): a handful exist per process, shared by every channel
    whose rings are laid out alike."""

    __slots__ = ("offsets", "shared", "sizes")

    def __init__(self, sizes: tuple[int, ...], offsets: tuple[int, ...]) -> None:
        self.sizes = sizes
        #: Index of each ring's first minute (its amounts follow its minutes); -1: the
        #: ring is unused and takes no room. Rings with the same offset share their
        #: slots (they hold the same minutes and amounts).
        self.offsets = offsets
        #: Whether ring k shares its slots with another ring.
        self.shared = tuple(o >= 0 and offsets.count(o) > 1 for o in offsets)

    def __reduce__(self) -> tuple[Callable[..., _Layout], tuple[object, ...]]:
        """Copies and pickles come back as the interned layout."""
        return _layout, (self.sizes, self.offsets)


_LAYOUTS: dict[tuple[tuple[int, ...], tuple[int, ...]], _Layout] = {}


def _layout(sizes: tuple[int, ...], offsets: tuple[int, ...]) -> _Layout:
    found = _LAYOUTS.get((sizes, offsets))
    if found is None:
        found = _LAYOUTS[(sizes, offsets)] = _Layout(sizes, offsets)
    return found


class MinuteRings:
    """The per-minute spend rings of one channel (velocity, unauthorised spend, unmet
    demand) in one array: the rules read spend per epoch minute over a short trailing
    window, each ring on its own minutes.

    Why one array: a ring of 16 minutes as two arrays cost about 410 bytes (two array
    headers, 8-byte amounts); here a ring in use costs its 16 minutes and 16 amounts
    at 4 bytes each (128 bytes), all rings share one ``array``, and a ring takes room
    in it only once first used (most channels never see unmet demand, and a channel
    that reserves rarely sees unauthorised spend). Values are 4 bytes until one does
    not fit (a minute past the year 6053, or more than 2**31 - 1 micros in a minute):
    the array is then widened to 8 bytes (once), so no time or amount is refused for
    its size.

    Rings that hold the same minutes and amounts share one region of the array: a
    channel whose spend is all unauthorised (a campaign that never reserves) has its
    velocity and unauthorised-spend rings equal all day, and :meth:`ring_add_both`
    adds to such a pair once. A write to one ring of a shared pair alone
    (:meth:`ring_add`) first gives each its own region.

    A :class:`~pacer_stream.core.state.ChannelState` is itself a ``MinuteRings`` (it
    inherits the two slots), which saves the channel one object.
    """

    __slots__ = ("_rbuf", "_rlayout")

    def __init__(self, sizes: tuple[int, ...] = (RING_SIZE,) * N_RINGS) -> None:
        self._rbuf: array[int] = _NO_RINGS
        self._rlayout = _layout(sizes, (-1,) * N_RINGS)

    def size(self, k: int) -> int:
        return self._rlayout.sizes[k]

    def used(self, k: int) -> bool:
        return self._rlayout.offsets[k] >= 0

    def minutes(self, k: int) -> list[int]:
        """Ring ``k``'s epoch minute per slot (-1 = never written); [] while unused."""
        lay = self._rlayout
        off = lay.offsets[k]
        if off < 0:
            return []
        return self._rbuf[off : off + lay.sizes[k]].tolist()

    def amounts(self, k: int) -> list[int]:
        """Ring ``k``'s micros per slot; [] while unused."""
        lay = self._rlayout
        off = lay.offsets[k]
        if off < 0:
            return []
        size = lay.sizes[k]
        return self._rbuf[off + size : off + 2 * size].tolist()

    @property
    def typecode(self) -> str:
        """'i' while every value fits 4 bytes, else 'q'."""
        return self._rbuf.typecode

    def set_ring(self, k: int, size: int, minutes: list[int], amounts: list[int]) -> None:
        """Replace ring ``k`` with ``size`` slots holding ``minutes`` and ``amounts``
        (both empty: an unused ring). ValueError when the lengths do not match the
        size, OverflowError for a value past 8 bytes."""
        if len(minutes) != len(amounts) or len(minutes) not in (0, size):
            raise ValueError("ring arrays do not match its size")
        rings = self._all()
        rings[k] = (k, size, list(minutes), list(amounts))
        self._pack(rings)

    def _pack(self, rings: list[tuple[int, int, list[int], list[int]]], alone: int = -1) -> None:
        """Lay out ``rings`` (index, size, minutes, amounts; unused ones empty) anew, 4
        bytes a value if every value fits, the array at its exact size; equal rings
        share their slots, except ring ``alone`` (about to be written by itself)."""
        sizes = [RING_SIZE] * N_RINGS
        offsets = [-1] * N_RINGS
        values: list[int] = []
        placed: list[tuple[int, tuple[int, list[int], list[int]]]] = []
        for k, size, minutes, amounts in rings:
            sizes[k] = size
            if minutes:
                ring = (size, minutes, amounts)
                for j, other in placed:
                    if other == ring and alone not in (j, k):
                        offsets[k] = offsets[j]
                        break
                else:
                    offsets[k] = len(values)
                    values += minutes
                    values += amounts
                    placed.append((k, ring))
        self._rlayout = _layout(tuple(sizes), tuple(offsets))
        self._rbuf = int_column(values) if values else _NO_RINGS

    def _all(self) -> list[tuple[int, int, list[int], list[int]]]:
        return [(j, self.size(j), self.minutes(j), self.amounts(j)) for j in range(N_RINGS)]

    def ring_add_both(self, a: int, b: int, ts: float, amount: int) -> None:
        """``ring_add(a, ...)`` and ``ring_add(b, ...)``: once when the two rings share
        their slots, or are both unused (they then start shared)."""
        lay = self._rlayout
        size = lay.sizes[a]
        if lay.offsets[a] < 0 and lay.offsets[b] < 0 and lay.sizes[b] == size:
            rings = self._all()  # first use of both: one region
            rings[a] = (a, size, [-1] * size, [0] * size)
            rings[b] = (b, size, [-1] * size, [0] * size)
            self._pack(rings)
            lay = self._rlayout
        off = lay.offsets[a]
        if off >= 0 and off == lay.offsets[b] and lay.offsets.count(off) == 2:
            self._add(a, ts, amount)
        else:
            self.ring_add(a, ts, amount)
            self.ring_add(b, ts, amount)

    def ring_add(self, k: int, ts: float, amount: int) -> None:
        """Add ``amount`` to ring ``k``'s minute of ``ts``; a minute older than the one
        its slot holds is outside the ring and ignored."""
        if self._rlayout.shared[k]:  # give it slots of its own
            self._pack(self._all(), alone=k)
        self._add(k, ts, amount)

    def _add(self, k: int, ts: float, amount: int) -> None:
        """Add to ring ``k``'s slots, and so to every ring sharing them."""
        lay = self._rlayout
        off = lay.offsets[k]
        if off < 0:  # first use of this ring
            size = lay.sizes[k]
            rings = self._all()
            rings[k] = (k, size, [-1] * size, [0] * size)
            self._pack(rings, alone=k)
            lay = self._rlayout
            off = lay.offsets[k]
        size = lay.sizes[k]
        m = int(ts // 60)
        at = off + m % size
        values = self._rbuf
        if values[at] != m:
            if values[at] > m:  # older than what the slot holds: outside the ring
                return
            value = 0
        else:
            value = values[at + size]
        # Saturate: a minute's total is evidence, not money owed, and must stay a
        # JSON-safe integer however many requests a hostile caller repeats.
        value = min(MAX_MICROS, value + amount)
        try:
            values[at] = m
            values[at + size] = value
        except OverflowError:  # past 4 bytes: widen the array, once
            self._rbuf = values = array("q", values)
            values[at] = m
            values[at + size] = value

    def ring_total(self, k: int, now: float, window_s: int) -> int:
        """Ring ``k``'s spend in the minutes overlapping ``(now - window_s, now]``
        (minute grain)."""
        lay = self._rlayout
        off = lay.offsets[k]
        if off < 0:
            return 0
        size = lay.sizes[k]
        m = int(now // 60)
        span = min(size, max(1, (window_s + 59) // 60))
        values = self._rbuf
        first = m - span + 1
        at = off + first % size
        end = off + size
        s = 0
        for mm in range(first, m + 1):  # walk the slots, wrapping once at most
            if values[at] == mm:
                s += values[at + size]
            at += 1
            if at == end:
                at = off
        return s

    def __eq__(self, other: object) -> bool:
        """Equal sizes, minutes and amounts ring by ring (whatever the layout)."""
        if not isinstance(other, MinuteRings):
            return NotImplemented
        return self._all() == other._all()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"MinuteRings({self._all()!r})"


class MinuteRing:
    """One ring of a :class:`MinuteRings` (spend per epoch minute over a short trailing
    window, for the velocity rules): a view the channel hands out, so callers keep
    ``ring.add`` and ``ring.total`` while the channel holds all its rings in one
    buffer. ``MinuteRing(size)`` alone is a ring of its own (tests, and values a
    caller builds before giving them to a channel, which copies them)."""

    __slots__ = ("_k", "_rings")

    def __init__(
        self, size: int = RING_SIZE, *, rings: MinuteRings | None = None, k: int = 0
    ) -> None:
        if rings is None:
            rings = MinuteRings((size, RING_SIZE, RING_SIZE))
            k = 0
        self._rings = rings
        self._k = k

    @property
    def size(self) -> int:
        return self._rings.size(self._k)

    @property
    def minutes(self) -> array[int]:
        """Epoch minute per slot (a copy; empty while unused), 4-byte ints while every
        minute fits."""
        return array(self._rings.typecode, self._rings.minutes(self._k))

    @property
    def amounts(self) -> array[int]:
        """Micros per slot (a copy; empty while unused)."""
        return array(self._rings.typecode, self._rings.amounts(self._k))

    def add(self, ts: float, amount: int) -> None:
        self._rings.ring_add(self._k, ts, amount)

    def total(self, now: float, window_s: int) -> int:
        """Spend in the minutes overlapping ``(now - window_s, now]`` (minute grain)."""
        return self._rings.ring_total(self._k, now, window_s)

    def load(self, minutes: list[int], amounts: list[int]) -> None:
        """Replace the slots (as read from a stored value; both empty: unused)."""
        self._rings.set_ring(self._k, self.size, minutes, amounts)

    def copy_into(self, rings: MinuteRings, k: int) -> None:
        """Make ring ``k`` of ``rings`` hold what this ring holds."""
        rings.set_ring(k, self.size, self._rings.minutes(self._k), self._rings.amounts(self._k))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MinuteRing):
            return NotImplemented
        return (
            self.size == other.size
            and self._rings.minutes(self._k) == other._rings.minutes(other._k)
            and self._rings.amounts(self._k) == other._rings.amounts(other._k)
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"MinuteRing(size={self.size}, minutes={self.minutes!r}, amounts={self.amounts!r})"


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
