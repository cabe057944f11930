"""Plain-data history snapshots, their validation, and the hourly frame models learn from.

A :class:`HistorySnapshot` is what crosses from the event loop to a training worker: an
immutable tuple of ``(epoch_hour, spend_micros, clicks, conversions)`` rows plus the
campaign's time zone. Taking one is a copy of at most ~700 sparse buckets, cheap enough to
do on the event loop; everything expensive happens in :func:`~.training.train`.

Bad rows (NaN, infinities, negative counts, non-numbers) are rejected with
:class:`InvalidHistory` (code ``invalid_history``), or dropped and counted when the caller
asks for ``drop_invalid=True``. Rows with no activity at all carry no information and are
skipped silently. Duplicate hours are summed (a bucket is a sum anyway).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import numpy.typing as npt

from pacer_stream.core.calendar import local_day, zone
from pacer_stream.core.history import CLICKS, CONVERSIONS, SPEND
from pacer_stream.errors import InvalidArgument

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MICROS = 1_000_000
HOURS_PER_WEEK = 168


class InvalidHistory(InvalidArgument):
    """History that cannot be learned from (NaN, negative or non-numeric values)."""

    code = "invalid_history"


Row = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class HistorySnapshot:
    """Immutable training input for one campaign/channel (plain data, picklable)."""

    tz: str
    #: (epoch_hour, spend_micros, clicks, conversions), sorted by hour, each hour once,
    #: only hours with some activity and strictly before ``until_hour``.
    rows: tuple[Row, ...]
    #: Exclusive upper bound (epoch hour) of the data the snapshot may contain.
    until_hour: int
    #: Rows dropped as invalid (only with ``drop_invalid=True``).
    dropped: int = 0

    @property
    def hours(self) -> int:
        return len(self.rows)

    @classmethod
    def from_history(
        cls,
        buckets: Mapping[int, Sequence[object]],
        tz: str,
        until_hour: int,
        *,
        drop_invalid: bool = False,
    ) -> HistorySnapshot:
        """Snapshot ``HourlyHistory.buckets`` (epoch hour -> [spend, clicks, conv, ...])."""
        rows: list[tuple[object, object, object, object]] = []
        for h, b in buckets.items():
            if len(b) <= CONVERSIONS:
                if drop_invalid:
                    rows.append((h, math.nan, 0, 0))
                    continue
                raise InvalidHistory(f"history bucket of hour {h!r} has {len(b)} metrics")
            rows.append((h, b[SPEND], b[CLICKS], b[CONVERSIONS]))
        return cls.from_rows(tz, rows, until_hour, drop_invalid=drop_invalid)

    @classmethod
    def from_rows(
        cls,
        tz: str,
        rows: Iterable[Sequence[object]],
        until_hour: int,
        *,
        drop_invalid: bool = False,
    ) -> HistorySnapshot:
        """Validate and normalise rows of ``(epoch_hour, spend_micros, clicks, conversions)``."""
        zone(tz)
        if isinstance(until_hour, bool) or not isinstance(until_hour, int):
            raise InvalidHistory(f"until_hour must be an int epoch hour, got {until_hour!r}")
        merged: dict[int, list[int]] = {}
        dropped = 0
        for row in rows:
            try:
                clean = _clean_row(row)
            except InvalidHistory:
                if not drop_invalid:
                    raise
                dropped += 1
                continue
            h, spend, clicks, conv = clean
            if h >= until_hour or (spend == 0 and clicks == 0 and conv == 0):
                continue
            acc = merged.setdefault(h, [0, 0, 0])
            acc[0] += spend
            acc[1] += clicks
            acc[2] += conv
        out = tuple((h, v[0], v[1], v[2]) for h, v in sorted(merged.items()))
        return cls(tz, out, until_hour, dropped)


def _clean_row(row: Sequence[object]) -> Row:
    if isinstance(row, (str, bytes)) or not isinstance(row, Sequence) or len(row) < 4:
        raise InvalidHistory(f"history row must be (hour, spend, clicks, conversions): {row!r}")
    h = _count(row[0], "epoch hour", row[0], allow_negative=True)
    return (
        h,
        _count(row[1], "spend", h),
        _count(row[2], "clicks", h),
        _count(row[3], "conversions", h),
    )


def _count(value: object, what: str, hour: object, *, allow_negative: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidHistory(f"{what} of hour {hour!r} is not a number: {value!r}")
    f = float(value)
    if math.isnan(f) or math.isinf(f):
        raise InvalidHistory(f"{what} of hour {hour!r} is {value!r}")
    if f != int(f):
        raise InvalidHistory(f"{what} of hour {hour!r} must be a whole number, got {value!r}")
    if f < 0 and not allow_negative:
        raise InvalidHistory(f"{what} of hour {hour!r} is negative ({value!r})")
    return int(f) if not isinstance(value, (int, np.integer)) else int(value)


# ---------------------------------------------------------------------------- frames
@dataclass(frozen=True, slots=True)
class Frame:
    """Column view of a snapshot: one entry per hour with activity, in time order."""

    epoch_hour: IntArray
    hour_of_day: IntArray
    weekday: IntArray
    #: Local calendar day as a proleptic ordinal (date.toordinal()).
    day: IntArray
    spend: FloatArray  # currency units
    clicks: FloatArray
    conversions: FloatArray

    @property
    def n(self) -> int:
        return int(self.epoch_hour.shape[0])


def build_frame(snap: HistorySnapshot) -> Frame:
    z = zone(snap.tz)
    n = len(snap.rows)
    eh = np.empty(n, dtype=np.int64)
    hod = np.empty(n, dtype=np.int64)
    wd = np.empty(n, dtype=np.int64)
    day = np.empty(n, dtype=np.int64)
    spend = np.empty(n, dtype=np.float64)
    clicks = np.empty(n, dtype=np.float64)
    conv = np.empty(n, dtype=np.float64)
    for i, (h, s, c, v) in enumerate(snap.rows):
        dt = datetime.fromtimestamp(h * 3600.0, z)
        eh[i] = h
        hod[i] = dt.hour
        wd[i] = dt.weekday()
        day[i] = dt.date().toordinal()
        spend[i] = s / MICROS
        clicks[i] = c
        conv[i] = v
    return Frame(eh, hod, wd, day, spend, clicks, conv)


@dataclass(frozen=True, slots=True)
class Rates:
    """Pooled conversion rate and cost per click, the priors every estimate shrinks to."""

    cr: float
    cpc: float


#: Pseudo-clicks of the pooled rate mixed into a previous-day level.
LEVEL_PSEUDO_CLICKS = 100.0
#: Pseudo-clicks of the level mixed into a same-hour-last-week value.
LAST_WEEK_PSEUDO_CLICKS = 20.0


@dataclass(frozen=True, slots=True)
class Context:
    """Day-ahead context features of some hours, as ratios to the pooled rates.

    ``level_*``: the previous local day's rate (shrunk to the pooled rate);
    ``lw_*``: the same hour one week earlier (shrunk to the level). Both are known before
    the day starts, so training rows and a planned day use them the same way.
    """

    level_cr: FloatArray
    level_cpc: FloatArray
    lw_cr: FloatArray
    lw_cpc: FloatArray
    #: Raw (unshrunk) same-hour-last-week rates, NaN when that hour had no clicks:
    #: the seasonal-naive baseline the models are compared with.
    naive_cr: FloatArray
    naive_cpc: FloatArray


def _shrink(num: float, den: float, prior: float, k: float) -> float:
    return (num + k * prior) / (den + k)


def context_features(
    hours: Sequence[int],
    days: Sequence[int],
    lookup: Mapping[int, Sequence[float]],
    day_totals: Mapping[int, tuple[float, float, float]],
    rates: Rates,
) -> Context:
    """Context features of ``hours`` (epoch hours) lying in local ``days`` (ordinals).

    ``lookup`` maps an epoch hour to (spend units, clicks, conversions); ``day_totals``
    maps a day ordinal to the same totals.
    """
    n = len(hours)
    level_cr = np.empty(n)
    level_cpc = np.empty(n)
    lw_cr = np.empty(n)
    lw_cpc = np.empty(n)
    naive_cr = np.full(n, np.nan)
    naive_cpc = np.full(n, np.nan)
    cr0 = max(rates.cr, 1e-12)
    cpc0 = max(rates.cpc, 1e-12)
    cache: dict[int, tuple[float, float]] = {}
    for i in range(n):
        d = days[i]
        lv = cache.get(d)
        if lv is None:
            s, c, v = day_totals.get(d - 1, (0.0, 0.0, 0.0))
            k = LEVEL_PSEUDO_CLICKS
            lv = (_shrink(v, c, rates.cr, k), _shrink(s, c, rates.cpc, k))
            cache[d] = lv
        lcr, lcpc = lv
        level_cr[i] = lcr / cr0
        level_cpc[i] = lcpc / cpc0
        prev = lookup.get(hours[i] - HOURS_PER_WEEK)
        if prev is None:
            lw_cr[i] = lcr / cr0
            lw_cpc[i] = lcpc / cpc0
            continue
        s, c, v = prev[0], prev[1], prev[2]
        k = LAST_WEEK_PSEUDO_CLICKS
        lw_cr[i] = _shrink(v, c, lcr, k) / cr0
        lw_cpc[i] = _shrink(s, c, lcpc, k) / cpc0
        if c > 0:
            naive_cr[i] = v / c
            naive_cpc[i] = s / c
    return Context(level_cr, level_cpc, lw_cr, lw_cpc, naive_cr, naive_cpc)


def frame_lookups(
    frame: Frame,
) -> tuple[dict[int, tuple[float, float, float]], dict[int, tuple[float, float, float]]]:
    """(epoch hour -> totals, local day -> totals) of a frame."""
    by_hour: dict[int, tuple[float, float, float]] = {}
    by_day: dict[int, tuple[float, float, float]] = {}
    for i in range(frame.n):
        t = (float(frame.spend[i]), float(frame.clicks[i]), float(frame.conversions[i]))
        by_hour[int(frame.epoch_hour[i])] = t
        d = int(frame.day[i])
        s, c, v = by_day.get(d, (0.0, 0.0, 0.0))
        by_day[d] = (s + t[0], c + t[1], v + t[2])
    return by_hour, by_day


def slot_hour(ts: float) -> int:
    """The epoch hour whose bucket starts at or just after ``ts`` (a slot boundary).

    History buckets are keyed by UTC epoch hour and a bucket belongs to the local day and
    hour of its start, so in whole-hour zones this is exactly ``ts / 3600``.
    """
    return math.ceil(ts / 3600 - 1e-9)


def history_lookups(
    buckets: Mapping[int, Sequence[int]], tz: str, day: date, before_hour: int
) -> tuple[dict[int, tuple[float, float, float]], dict[int, tuple[float, float, float]]]:
    """What a planned local ``day`` needs from live history: the buckets of the same hours
    a week earlier and the totals of the previous local day (all before ``before_hour``)."""
    prev = local_day(tz, day - timedelta(days=1))
    this = local_day(tz, day)
    by_hour: dict[int, tuple[float, float, float]] = {}
    lo = slot_hour(this.start) - HOURS_PER_WEEK
    hi = slot_hour(this.end) - HOURS_PER_WEEK
    for h in range(lo, hi):
        b = buckets.get(h)
        if b is not None and h < before_hour:
            by_hour[h] = (b[SPEND] / MICROS, float(b[CLICKS]), float(b[CONVERSIONS]))
    s = c = v = 0.0
    for h in range(slot_hour(prev.start), min(slot_hour(prev.end), before_hour)):
        b = buckets.get(h)
        if b is not None:
            s += b[SPEND] / MICROS
            c += b[CLICKS]
            v += b[CONVERSIONS]
    return by_hour, {prev.date.toordinal(): (s, c, v)}
