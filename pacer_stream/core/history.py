"""Hourly history of one campaign/channel: the memory strategies and forecasts learn from.

Kept sparse (only hours that saw activity) and bounded by a horizon (default 28 days +
today), keyed by the epoch hour. Recording is O(1); reading for an allocation is
O(horizon) but happens once per day or budget change, never per decision.

It is packed, because a worker holds one history per campaign/channel in memory and a
day of it is most of a channel's state: a dict of five-int lists costs about 200 bytes
an hour (a dict slot, a list, five int objects). Here the hours are rows of one byte
buffer, each column as narrow as its values allow (1, 2, 4 or 8 bytes, widened when a
value no longer fits), and the hour column only while an hour is missing: an hour of
a small channel takes 6-16 bytes, one spending thousands of currency units an hour
with clicks, impressions and revenue about 18-20, and the buffer is one object
whatever the number of hours (two arrays cost two headers).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from operator import itemgetter
from struct import Struct
from struct import error as StructError

from pacer_stream.core.compact import no_entries, own

SPEND, CLICKS, CONVERSIONS, IMPRESSIONS, REVENUE = range(5)
N_METRICS = 5

#: Column widths as ``struct`` codes, narrowest first, and the values each holds.
_CODES = "bhiq"
_LIMITS = tuple((-(2 ** (8 * w - 1)), 2 ** (8 * w - 1) - 1) for w in (1, 2, 4, 8))
#: The columns of a history with no hour yet: five metrics, no hour column (its hours,
#: when it has some, are consecutive), every one as narrow as it gets.
_NARROWEST = "b" * N_METRICS
#: A row's hour offset, and its five metrics (read in C: the codec reads every row).
_FIRST = itemgetter(0)
_METRICS = itemgetter(slice(1, None))
#: The buffer of every history with no hour yet (never changed: ``add`` replaces it).
_NO_ROWS = b""
#: Rows up to this many bytes are an immutable ``bytes``, rebuilt on each change (24
#: bytes less); longer ones a ``bytearray`` updated in place (see ``HourlyHistory``).
IN_PLACE_BYTES = 512


def _stored(rows: bytes | bytearray) -> bytes | bytearray:
    """``rows`` as the buffer type its size calls for (a copy when it changes type)."""
    if len(rows) > IN_PLACE_BYTES:
        return rows if type(rows) is bytearray else bytearray(rows)
    return rows if type(rows) is bytes else bytes(rows)


class _Consecutive(Struct):
    """The layout of rows without an hour column: row ``i`` is hour ``base + i`` (its
    type is the mark, so a history needs no slot to know which layout it has)."""

    __slots__ = ()


@cache
def _row_struct(codes: str) -> Struct:
    """The row layout for these column codes, little-endian and unpadded: six codes
    (hour offset, five metrics) for hours with gaps, five (metrics only,
    :class:`_Consecutive`) for consecutive hours. At most 4**6 + 4**5 layouts exist,
    each shared by every history using it."""
    if len(codes) == N_METRICS:
        return _Consecutive("<" + codes)
    return Struct("<" + codes)


@cache
def _hour_struct(code: str) -> Struct:
    """Reads the hour offset alone (the first column of a row with one)."""
    return Struct("<" + code)


def _code_for(value: int) -> str:
    """The narrowest column code holding ``value`` (OverflowError past 8 bytes)."""
    for code, (lo, hi) in zip(_CODES, _LIMITS, strict=True):
        if lo <= value <= hi:
            return code
    raise OverflowError(f"history value {value} does not fit 8 bytes")


def _widest(a: str, b: str) -> str:
    return a if _CODES.index(a) >= _CODES.index(b) else b


class HourlyHistory:
    """Per epoch hour, the five metrics (spend micros, clicks, conversions, impressions,
    revenue micros) of the hours that saw activity, oldest first.

    One ``bytes`` of rows sorted by hour, laid out by :attr:`_codes` (one ``struct``
    code per column). While the hours held are consecutive (a channel that spends every
    hour, the usual busy one), a row is its five metrics and row ``i`` is hour
    ``base + i``; once an hour is missing, each row starts with its hour as an offset
    from ``base`` (the first hour the history held, so the offsets are small), and the
    rows go back to the shorter layout when the hours are consecutive again (a gap
    filled by a late report, or pruned away). That column costs 1 byte an hour for a
    day, 2 past 127 hours: 24 bytes a day, ~1.4 KB over the 29-day horizon. A column
    starts one byte wide and is widened (the rows re-packed, once per width) when a
    value does not fit; the engine refuses any event that would take a total past the
    largest exact JSON integer, so 8 bytes always suffice. The buffer is rebuilt at its
    exact size when an hour is added or pruned (once an hour). Up to
    :data:`IN_PLACE_BYTES` it is a ``bytes`` (33 bytes of header where a ``bytearray``
    takes 57), rebuilt also when the current hour's row is updated: copying a day of
    rows (~170 bytes) per spend event costs less than the event's other work. A longer
    history is a ``bytearray`` whose current row is updated in place, so a spend never
    copies weeks of rows. Hours normally arrive in order (append, or update the last
    hour); an out-of-order hour is placed by bisection. Pruning is relative to
    :attr:`newest` (the highest hour ever recorded, so it is monotone) and drops the
    hours before the horizon from the front.

    :attr:`buckets` is a read-only mapping view (epoch hour -> list of the five
    metrics) for readers that want one; the methods read the buffer directly.
    """

    __slots__ = ("_base", "_buf", "_newest", "_row", "horizon_hours")

    def __init__(
        self,
        horizon_hours: int = 29 * 24,
        buckets: Mapping[int, Sequence[int]] | None = None,
        newest: int = 0,
    ) -> None:
        self.horizon_hours = horizon_hours
        #: :attr:`newest` when it is not the last hour held (None: it is; see there).
        self._newest: int | None = newest
        self._base = 0
        #: The row layout (shared: one per combination of column widths).
        self._row = _row_struct(_NARROWEST)
        self._buf: bytes | bytearray = _NO_ROWS
        if buckets:
            self._load(buckets)
        self._settle(newest)

    @property
    def newest(self) -> int:
        """Highest epoch hour ever recorded: pruning is relative to it, so it is
        monotone. It is the last hour held whenever an hour is held (recording moves
        both, pruning never drops the newest hour), so it is kept apart only when it
        is not (a value loaded that way, or no hour held): one int object less per
        history."""
        newest = self._newest
        if newest is not None:
            return newest
        last = self._last_hour()
        assert last is not None  # kept apart whenever no hour is held
        return last

    def _last_hour(self) -> int | None:
        """The last hour held (None: none is)."""
        buf = self._buf
        if not buf:
            return None
        row = self._row
        if type(row) is _Consecutive:
            return self._base + len(buf) // row.size - 1
        last: int = row.unpack_from(buf, len(buf) - row.size)[0]
        return self._base + last

    def _settle(self, newest: int) -> None:
        """Keep ``newest`` apart only if it is not the last hour held."""
        self._newest = None if self._last_hour() == newest else newest

    def _load(self, buckets: Mapping[int, Sequence[int]]) -> None:
        """Set the rows from ``buckets`` (any order; a shorter bucket, from an older
        format, is padded with zeros). Raises ValueError for a bucket of more than
        five metrics and OverflowError for a value no column can hold."""
        hours = sorted(buckets)
        base = hours[0]
        rows: list[tuple[int, ...]] = []
        for h in hours:
            row = list(buckets[h])
            if len(row) > N_METRICS:
                raise ValueError(f"history bucket of hour {h} has {len(row)} metrics")
            rows.append((h - base, *row, *([0] * (N_METRICS - len(row)))))
        self._base = base
        self._repack(rows)

    def __reduce__(self) -> tuple[Callable[..., HourlyHistory], tuple[object, ...]]:
        """Copy and pickle by value (the row layout is a ``struct.Struct``, which
        neither copies nor pickles)."""
        return _restore, (
            self.horizon_hours,
            self.newest,
            self._base,
            self._codes,
            bytes(self._buf),
        )

    @property
    def _codes(self) -> str:
        """The column codes of the row layout: hour offset and five metrics, or the five
        metrics alone while the hours are consecutive."""
        return self._row.format[1:]

    def _unpacked(self) -> list[tuple[int, ...]]:
        """The rows as (hour offset from the base, five metrics), whatever the layout."""
        row = self._row
        if type(row) is _Consecutive:
            return [(i, *r) for i, r in enumerate(row.iter_unpack(self._buf))]
        return list(row.iter_unpack(self._buf))

    def _repack(self, rows: list[tuple[int, ...]]) -> None:
        """Store ``rows`` (hour offsets from the base, sorted and distinct, and metrics),
        widening columns as they need; without an hour column if the hours are
        consecutive (the base then moves to the first of them)."""
        codes = self._codes
        metric_codes = codes[-N_METRICS:]
        if not rows:
            self._row, self._buf = _row_struct(metric_codes), _NO_ROWS
        elif rows[-1][0] - rows[0][0] == len(rows) - 1:
            self._base += rows[0][0]
            self._pack(metric_codes, list(map(_METRICS, rows)))
        else:
            hour_code = codes[0] if len(codes) > N_METRICS else _CODES[0]
            self._pack(hour_code + metric_codes, rows)

    def _pack(self, codes: str, rows: list[tuple[int, ...]]) -> None:
        """Store ``rows`` as they are, in columns of at least ``codes``' widths (wider
        where a value needs it)."""
        self._row = layout = _row_struct(_fit(codes, rows))
        self._buf = _stored(b"".join([layout.pack(*r) for r in rows]))

    def add(
        self,
        epoch_hour: int,
        spend: int,
        clicks: int,
        conversions: int,
        impressions: int,
        revenue: int,
    ) -> None:
        newest = self.newest
        buf = self._buf
        layout = self._row
        size = layout.size
        n = len(buf) // size
        if not n:
            self._base = epoch_hour
        offset = epoch_hour - self._base
        if type(layout) is _Consecutive:
            if 0 <= offset <= n:  # an hour held (usually the last), or the next one
                self._add_consecutive(offset, n, spend, clicks, conversions, impressions, revenue)
                if epoch_hour > newest:
                    self._newest = None  # the hour just added is the last one held
                    self._prune()
                return
            # a gap, or an hour before the first: the rows need their hours
            self._repack_with_hours()
            buf = self._buf
            layout = self._row
            size = layout.size
        last = layout.unpack_from(buf, (n - 1) * size) if n else None
        if last is not None and last[0] == offset:  # the usual case: the current hour
            row = (
                offset,
                last[1] + spend,
                last[2] + clicks,
                last[3] + conversions,
                last[4] + impressions,
                last[5] + revenue,
            )
            try:
                if type(buf) is bytearray:
                    layout.pack_into(buf, (n - 1) * size, *row)
                else:
                    self._buf = buf[: (n - 1) * size] + layout.pack(*row)
            except StructError:  # a value past its column: widen, once per width
                rows = self._unpacked()
                rows[-1] = row
                self._repack(rows)
        else:
            row = (offset, spend, clicks, conversions, impressions, revenue)
            # a new hour at the end, or one before the last: rare (late reports)
            i = n if last is None or last[0] < offset else self._index(offset, n)
            old = layout.unpack_from(buf, i * size) if i < n else None
            if old is not None and old[0] == offset:  # that hour is held: add to it
                row = (offset, *(a + b for a, b in zip(old[1:], row[1:], strict=True)))
                try:
                    if type(buf) is bytearray:
                        layout.pack_into(buf, i * size, *row)
                    else:
                        self._buf = buf[: i * size] + layout.pack(*row) + buf[(i + 1) * size :]
                except StructError:
                    rows = self._unpacked()
                    rows[i] = row
                    self._repack(rows)
            else:
                try:
                    packed = layout.pack(*row)
                except StructError:
                    rows = self._unpacked()
                    rows.insert(i, row)
                    self._repack(rows)
                else:
                    self._buf = _stored(buf[: i * size] + packed + buf[i * size :])
                    self._drop_hours_if_consecutive()
        if epoch_hour > newest:
            self._newest = None  # the hour just added is the last one held
            self._prune()
        elif self._newest is None and self._last_hour() != newest:
            self._newest = newest  # an earlier hour was the first one held

    def _add_consecutive(
        self,
        i: int,
        n: int,
        spend: int,
        clicks: int,
        conversions: int,
        impressions: int,
        revenue: int,
    ) -> None:
        """Add to row ``i`` of consecutive rows, or append it (``i == n``)."""
        buf = self._buf
        layout = self._row
        size = layout.size
        if i < n:
            old = layout.unpack_from(buf, i * size)
            row = (
                old[0] + spend,
                old[1] + clicks,
                old[2] + conversions,
                old[3] + impressions,
                old[4] + revenue,
            )
        else:
            row = (spend, clicks, conversions, impressions, revenue)
        try:
            if i == n:
                self._buf = _stored(buf + layout.pack(*row))
            elif type(buf) is bytearray:
                layout.pack_into(buf, i * size, *row)
            else:
                self._buf = buf[: i * size] + layout.pack(*row) + buf[(i + 1) * size :]
        except StructError:  # a value past its column: widen, once per width
            rows = self._unpacked()
            rows[i:] = [(i, *row), *rows[i + 1 :]]
            self._repack(rows)

    def _repack_with_hours(self) -> None:
        """The consecutive rows with an hour column (before a gap or an earlier hour)."""
        self._pack(_CODES[0] + self._codes, self._unpacked())

    def _drop_hours_if_consecutive(self) -> None:
        """Drop the hour column once the hours held are consecutive again."""
        buf = self._buf
        layout = self._row
        n = len(buf) // layout.size
        if type(layout) is not _Consecutive and n:
            hour = _hour_struct(self._codes[0])
            first = hour.unpack_from(buf, 0)[0]
            if hour.unpack_from(buf, (n - 1) * layout.size)[0] - first == n - 1:
                self._repack(self._unpacked())

    def _index(self, offset: int, n: int) -> int:
        """Row index of the first hour offset >= ``offset``."""
        layout = self._row
        if type(layout) is _Consecutive:
            return min(max(offset, 0), n)
        hour = _hour_struct(self._codes[0])
        size = layout.size
        buf = self._buf
        return bisect_left(range(n), offset, key=lambda i: hour.unpack_from(buf, i * size)[0])

    def _row_index(self, epoch_hour: int) -> int:
        return self._index(epoch_hour - self._base, len(self))

    def _first_hour(self) -> int:
        layout = self._row
        if type(layout) is _Consecutive:
            return self._base
        first: int = _hour_struct(self._codes[0]).unpack_from(self._buf, 0)[0]
        return self._base + first

    def _prune(self) -> None:
        if not self._buf:
            return
        oldest = self.newest - self.horizon_hours
        if self._first_hour() < oldest:
            cut = self._row_index(oldest)
            self._buf = _stored(self._buf[cut * self._row.size :])
            if type(self._row) is _Consecutive:
                self._base += cut  # row i is hour base + i
            if not self._buf:  # a jump past the whole horizon (newest held apart)
                self._buf = _NO_ROWS
                self._row = _row_struct(_NARROWEST)
            else:
                self._drop_hours_if_consecutive()  # the gap may have gone with them

    def get(self, epoch_hour: int) -> list[int] | None:
        """The five metrics of ``epoch_hour`` (a copy), or None if it saw nothing."""
        buf = self._buf
        if not buf:
            return None
        layout = self._row
        size = layout.size
        n = len(buf) // size
        offset = epoch_hour - self._base
        if type(layout) is _Consecutive:
            return list(layout.unpack_from(buf, offset * size)) if 0 <= offset < n else None
        row = layout.unpack_from(buf, (n - 1) * size)
        if row[0] != offset:  # not the current hour (which every spend event asks for)
            i = self._index(offset, n)
            if i == n:
                return None
            row = layout.unpack_from(buf, i * size)
            if row[0] != offset:
                return None
        return list(row[1:])

    def items(self) -> Iterator[tuple[int, list[int]]]:
        """``(epoch hour, five metrics)`` of every hour held, oldest first."""
        return self._rows(len(self))

    def before(self, epoch_hour: int) -> Iterator[tuple[int, list[int]]]:
        """Buckets strictly before ``epoch_hour`` (the history a plan may learn from)."""
        return self._rows(self._row_index(epoch_hour))

    def _rows(self, stop: int) -> Iterator[tuple[int, list[int]]]:
        base = self._base
        layout = self._row
        rows = layout.iter_unpack(self._buf[: stop * layout.size])
        if type(layout) is _Consecutive:
            for i, metrics in enumerate(rows):
                yield base + i, list(metrics)
        else:
            for row in rows:
                yield row[0] + base, list(row[1:])

    def hours(self) -> list[int]:
        """The epoch hours held, oldest first."""
        return self.columns()[0]

    def rows(self) -> list[tuple[int, ...]]:
        """The five metrics of each hour held, in the order of :meth:`hours`."""
        return self.columns()[1]

    def columns(self) -> tuple[list[int], list[tuple[int, ...]]]:
        """:meth:`hours` and :meth:`rows` from one pass over the buffer (the stored
        value is written often)."""
        layout = self._row
        if type(layout) is _Consecutive:
            metrics = list(layout.iter_unpack(self._buf))
            return list(range(self._base, self._base + len(metrics))), metrics
        rows = list(layout.iter_unpack(self._buf))
        hours = list(map(self._base.__add__, map(_FIRST, rows)))
        return hours, list(map(_METRICS, rows))

    def hours_with_data(self, before_epoch_hour: int) -> int:
        return self._row_index(before_epoch_hour)

    def totals(self, from_hour: int, to_hour: int) -> list[int]:
        """Sum of every metric over ``[from_hour, to_hour)``."""
        lo = self._row_index(from_hour)
        hi = self._row_index(to_hour)
        if lo >= hi:
            return [0] * N_METRICS
        layout = self._row
        part = list(layout.iter_unpack(self._buf[lo * layout.size : hi * layout.size]))
        columns = list(zip(*part, strict=True))
        return [sum(col) for col in columns[-N_METRICS:]]

    @property
    def buckets(self) -> Mapping[int, list[int]]:
        """Read-only view: epoch hour -> its five metrics (copies), oldest hour first."""
        return HistoryBuckets(self)

    def __len__(self) -> int:
        """Hours held."""
        return len(self._buf) // self._row.size

    def __eq__(self, other: object) -> bool:
        """Equal hours and metrics (whatever the column widths or the base)."""
        if not isinstance(other, HourlyHistory):
            return NotImplemented
        return (
            self.horizon_hours == other.horizon_hours
            and self.newest == other.newest
            and list(self.items()) == list(other.items())
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return (
            f"HourlyHistory(horizon_hours={self.horizon_hours}, "
            f"buckets={dict(self.items())!r}, newest={self.newest})"
        )


def _restore(horizon_hours: int, newest: int, base: int, codes: str, rows: bytes) -> HourlyHistory:
    """The history :meth:`HourlyHistory.__reduce__` describes (six codes: rows with an
    hour column, five: consecutive rows, as a value pickled before had only the six)."""
    history = HourlyHistory(horizon_hours)
    if rows:
        history._base = base
        history._row = _row_struct(codes)
        history._buf = _stored(rows)
    history._settle(newest)
    return history


def _fit(codes: str, rows: Iterable[tuple[int, ...]]) -> str:
    """``codes`` widened so that every column holds its values in ``rows``."""
    widths = list(codes)
    for row in rows:
        for k, v in enumerate(row):
            lo, hi = _LIMITS[_CODES.index(widths[k])]
            if not lo <= v <= hi:
                widths[k] = _widest(widths[k], _code_for(v))
    return "".join(widths)


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


@dataclass(slots=True, eq=False)
class HourlyAmounts:
    """Sparse micros per epoch hour (requests a budget rule refused: unmet demand), over
    the same horizon as :class:`HourlyHistory`. Bounded: older hours are pruned.

    Equality is by value whatever the subclass (a channel's shared read-only empty one
    equals an own empty one)."""

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

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HourlyAmounts):
            return NotImplemented
        return self.horizon_hours == other.horizon_hours and self.amounts == other.amounts

    __hash__ = None  # type: ignore[assignment]  # mutable
