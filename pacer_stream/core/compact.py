"""Small containers for per-channel state that is usually empty or tiny.

A worker holds one state per campaign/channel in memory, so a few hundred bytes per
channel is the difference between a partition fitting in RAM or not. The standard
containers are generous for this use: an empty ``deque`` costs about 760 bytes (it
allocates a 64-slot block up front), an empty ``set`` 216 bytes, and a list of floats
one 24-byte object per value. The containers here keep the same operations the engine
uses on them and cost a few dozen bytes while empty:

* :class:`FloatQueue` - a FIFO of floats (event times, report lags) in one ``bytes``
  of packed doubles, the shared empty one while the queue is empty;
* :class:`AlertSet` - a set of :class:`~pacer_stream.core.types.AlertType` as a bit mask;
* :data:`NO_ENTRIES` / :data:`NO_OUTPUTS` - one empty dict and one empty list shared by
  every state until it has something to put there (see :func:`own`);
* packed ints (:func:`pack_ints`) - a short series of ints written once (a day plan's
  cumulative amounts) in one ``bytes``, each as wide as the widest value needs (1, 2,
  4 or 8 bytes).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, MutableSet
from functools import cache
from struct import Struct
from struct import error as StructError
from typing import Any, Final, Literal, NoReturn, TypeVar, cast

from pacer_stream.core.types import AlertType

#: One float as stored in a :class:`FloatQueue` (native order, as ``memoryview.cast``
#: reads it: the bytes never leave the process), and the queue's empty storage.
_DOUBLE: Final = Struct("=d")
_NO_FLOATS: Final = b""


def pack_float(value: float) -> bytes:
    """One value as a :class:`FloatQueue` stores it (to append to its ``bytes``)."""
    return _DOUBLE.pack(value)


def recent_floats(values: bytes, since: float, most: int) -> bytes:
    """``values`` (packed as a :class:`FloatQueue` holds them, oldest first) without
    those at or before ``since`` and all but the newest ``most`` (``values`` itself
    when nothing goes)."""
    n = len(values) // 8
    head = max(0, n - most)
    unpack = _DOUBLE.unpack_from
    while head < n and unpack(values, head * 8)[0] <= since:
        head += 1
    return values[head * 8 :] if head else values


class FloatQueue:
    """A FIFO of floats with the ``deque`` operations the engine uses (append, popleft,
    ``[0]``/``[-1]``, ``len``, iteration, clear).

    Values live in one immutable ``bytes`` of 8-byte doubles (one allocation: 33
    bytes plus 8 a value, where an ``array('d')`` costs a 64-byte header and a
    separate buffer), the shared empty ``bytes`` while the queue is empty: most
    channels never see unauthorised spend or an overspend, and an empty queue is just
    this one-slot object. Every change builds a new ``bytes``: the queues are short
    (the engine keeps only the few values its rules count, the report lags at most
    64), so the copy costs less than the bookkeeping a growable buffer would need.
    A subclass may set :attr:`maxlen`: appending to a full queue then drops the
    oldest value, like a ``deque(maxlen=...)``.
    """

    __slots__ = ("_values",)

    #: Bound on the number of values (None = unbounded).
    maxlen: int | None = None

    def __init__(self, values: Iterable[float] = ()) -> None:
        self._values = _NO_FLOATS
        for v in values:
            self.append(v)

    def append(self, value: float) -> None:
        values = self._values + _DOUBLE.pack(value)
        if self.maxlen is not None and len(values) > self.maxlen * 8:
            values = values[8:]
        self._values = values

    def extend(self, values: Iterable[float]) -> None:
        for v in values:
            self.append(v)

    def popleft(self) -> float:
        values = self._values
        if not values:
            raise IndexError("pop from an empty FloatQueue")
        value: float = _DOUBLE.unpack_from(values, 0)[0]
        self._values = values[8:]
        return value

    def keep_recent(self, since: float, most: int) -> int:
        """Drop the values at or before ``since`` and all but the newest ``most``;
        returns how many are left. The engine's event-count rules only ask whether
        enough events fell in a window, which the newest few answer, so the queue never
        grows with the event rate (one call instead of a popleft loop per event)."""
        values = self._values
        kept = recent_floats(values, since, most)
        if kept is not values:
            self._values = kept
        return len(kept) // 8

    def clear(self) -> None:
        self._values = _NO_FLOATS

    def __len__(self) -> int:
        return len(self._values) // 8

    def __bool__(self) -> bool:
        return bool(self._values)

    def __getitem__(self, index: int) -> float:
        n = len(self._values) // 8
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("FloatQueue index out of range")
        value: float = _DOUBLE.unpack_from(self._values, index * 8)[0]
        return value

    def __iter__(self) -> Iterator[float]:
        return iter(self.tolist())

    def tolist(self) -> list[float]:
        """The values, oldest first (one C call: the stored value lists them)."""
        values = self._values
        return cast("list[float]", memoryview(values).cast("d").tolist()) if values else []

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FloatQueue):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  # mutable, like a deque

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self)!r})"


_ALERTS: tuple[AlertType, ...] = tuple(AlertType)
_BIT: dict[AlertType, int] = {a: 1 << i for i, a in enumerate(_ALERTS)}


class AlertSet(MutableSet[AlertType]):
    """The active alert types of a channel as a bit mask (one int instead of a set).

    Behaves as a mutable set of :class:`AlertType` (``in``, add, discard, clear,
    iteration in declaration order, equality with any set)."""

    __slots__ = ("_mask",)

    def __init__(self, alerts: Iterable[AlertType] = ()) -> None:
        self._mask = 0
        for a in alerts:
            self.add(a)

    def __contains__(self, alert: object) -> bool:
        return bool(self._mask & _BIT.get(alert, 0))  # type: ignore[call-overload]

    def add(self, alert: AlertType) -> None:
        self._mask |= _BIT[alert]

    def discard(self, alert: AlertType) -> None:
        self._mask &= ~_BIT.get(alert, 0)

    def clear(self) -> None:
        self._mask = 0

    def __iter__(self) -> Iterator[AlertType]:
        mask = self._mask
        return iter([a for a in _ALERTS if mask & _BIT[a]])

    def __len__(self) -> int:
        return self._mask.bit_count()

    @property
    def mask(self) -> int:
        """The set as a bit mask (one bit per alert type, in declaration order)."""
        return self._mask


def sorted_alert_values(mask: int) -> list[str]:
    """The values of the alert types in ``mask``, sorted (as stored): a new list per
    call, sorted once per mask."""
    return list(_sorted_alert_values(mask))


@cache
def _sorted_alert_values(mask: int) -> tuple[str, ...]:
    return tuple(sorted(a.value for a in _ALERTS if mask & _BIT[a]))

    def __repr__(self) -> str:
        return f"AlertSet({set(self)!r})"


class _SharedEmptyDict(dict[Any, Any]):
    """The empty dict every state starts with for its rarely used maps (reservations,
    unreported holds, answered requests...): an empty dict costs 64 bytes per owner,
    this one nothing. It refuses writes, so a writer that forgot :func:`own` fails
    loudly instead of writing into every state at once."""

    __slots__ = ()

    def __reduce__(self) -> str:
        """Copies and pickles are the shared instance itself (``own`` tests identity,
        so a copy would refuse the first write instead of being replaced)."""
        return "NO_ENTRIES"

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("the shared empty dict is never written: own() it first")

    __setitem__ = _refuse
    setdefault = _refuse
    update = _refuse
    __ior__ = _refuse


class _SharedEmptyList(list[Any]):
    """The empty list every campaign's outbox starts with (see :class:`_SharedEmptyDict`)."""

    __slots__ = ()

    def __reduce__(self) -> str:
        """Copies and pickles are the shared instance itself (``own`` tests identity,
        so a copy would refuse the first write instead of being replaced)."""
        return "NO_OUTPUTS"

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("the shared empty list is never written: give the owner its own")

    append = _refuse
    extend = _refuse
    insert = _refuse
    __setitem__ = _refuse
    __iadd__ = _refuse


NO_ENTRIES: Final[dict[Any, Any]] = _SharedEmptyDict()
NO_OUTPUTS: Final[list[Any]] = _SharedEmptyList()

K = TypeVar("K")
V = TypeVar("V")


def int_column(values: list[int]) -> array[int]:
    """``values`` as 4-byte ints when every one fits, else 8-byte ones (OverflowError
    past that): the columns that usually hold small numbers (epoch minutes and hours,
    hourly metrics) cost half as much."""
    try:
        column = array("i", values)
    except OverflowError:
        column = array("q", values)
    return column[:]  # at its exact size (building from a list leaves spare room)


def no_entries() -> dict[Any, Any]:
    """Default for a rarely used map: the shared empty dict."""
    return NO_ENTRIES


def no_outputs() -> list[Any]:
    """Default for an outbox: the shared empty list."""
    return NO_OUTPUTS


def own(entries: dict[K, V]) -> dict[K, V]:
    """``entries`` if it is a dict of its own, else a new one to store in its place
    before the first write (``ch.reservations = res = own(ch.reservations)``)."""
    return {} if entries is NO_ENTRIES else entries


def shared_if_empty(entries: dict[K, V]) -> dict[K, V]:
    """``entries``, or the shared empty dict once it has emptied (a dict keeps its grown
    table after its entries are deleted)."""
    return entries if entries else NO_ENTRIES


#: Widths of packed ints as ``array``/``struct``/``memoryview`` codes, narrowest first,
#: with the values each holds.
_INT_CODES: Final = "bhiq"
_INT_LIMITS: Final = tuple((-(2 ** (8 * w - 1)), 2 ** (8 * w - 1) - 1) for w in (1, 2, 4, 8))
#: One packed int and the ``memoryview`` code by the byte that names the width (native
#: order, as ``memoryview.cast`` reads it: packed ints never leave the process).
_ONE_INT: Final = {ord(code): Struct("=" + code) for code in _INT_CODES}
_VIEW_CODE: Final[dict[int, Literal["b", "h", "i", "q"]]] = {
    ord("b"): "b",
    ord("h"): "h",
    ord("i"): "i",
    ord("q"): "q",
}
#: Two packed ints in a row, by the byte that names their width.
_TWO_INTS: Final = {ord(code): Struct("=2" + code) for code in _INT_CODES}


def _int_code(lo: int, hi: int) -> str:
    """The narrowest code holding every value in ``[lo, hi]`` (OverflowError past 8 bytes)."""
    for code, (low, high) in zip(_INT_CODES, _INT_LIMITS, strict=True):
        if low <= lo and hi <= high:
            return code
    raise OverflowError(f"packed int out of 8 bytes: {lo}..{hi}")


def pack_ints(values: Iterable[int]) -> bytes:
    """``values`` in one ``bytes``: one byte naming the width's code, then the values,
    all as wide as the widest needs (1, 2, 4 or 8 bytes).

    Why: a series written once and read often, such as a day plan's cumulative amounts
    (25 values), costs 33 bytes of header and its values here, where an ``array`` costs
    a 64-byte object and a buffer apart. All zeros, the series is one ``bytes`` shared
    by every series of its length. Read with :func:`ints_view`, :func:`packed_int` or
    :func:`packed_pair`. The code comes first so that a read past the last value fails
    in ``struct`` instead of reading the code.

    Not for series written on every event (a channel's spend per slot stays an
    ``array``): each change would build a new ``bytes``, and every read is a call where
    an ``array`` is indexed in C, which cost a decision and a recorded spend ~10% more
    time when tried."""
    vals = list(values)
    if not any(vals):
        return packed_zeros(len(vals))
    code = _int_code(min(vals), max(vals))
    return code.encode() + array(code, vals).tobytes()


@cache
def packed_zeros(n: int) -> bytes:
    """``n`` zeros packed (one byte each), shared by every series of ``n`` zeros."""
    return b"b" + bytes(n)


def ints_view(packed: bytes) -> memoryview:
    """The values of ``packed`` as a read-only sequence of ints (a ``memoryview``:
    indexing, slicing, ``len``, ``sum``, ``tolist`` and equality by value whatever the
    width), without copying them."""
    return memoryview(packed)[1:].cast(_VIEW_CODE[packed[0]])


def _index_error() -> IndexError:
    return IndexError("packed int index out of range")


def packed_int(packed: bytes, index: int) -> int:
    """Value ``index`` of ``packed`` (negative from the end; IndexError outside the
    series), in one ``struct`` read."""
    one = _ONE_INT[packed[0]]
    if index < 0:
        index += (len(packed) - 1) // one.size
        if index < 0:
            raise _index_error()
    try:
        value: int = one.unpack_from(packed, 1 + index * one.size)[0]
    except StructError:
        raise _index_error() from None
    return value


def packed_pair(packed: bytes, index: int) -> tuple[int, int]:
    """Values ``index`` and ``index + 1`` of ``packed`` (``index`` >= 0; IndexError
    otherwise) in one read: a slot's two boundaries, which the pace rules read
    together."""
    two = _TWO_INTS[packed[0]]
    if index < 0:
        raise _index_error()
    try:
        pair: tuple[int, int] = two.unpack_from(packed, 1 + index * (two.size >> 1))
    except StructError:
        raise _index_error() from None
    return pair
