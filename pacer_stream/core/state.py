"""Mutable state of one campaign and its channels (the value of the worker's table).

Everything here is bounded: today's per-slot arrays (<= 25 entries), a per-minute ring,
a queue of recent overspend times, the active reservations (each expires after its TTL),
sparse hourly history over a fixed horizon, and the dedupe window.

It is also compact, because a worker holds one value per campaign/channel in memory
(about 1.5 KB with a shared day's plan and history, 1.8 KB with a plan of its own, 2 KB
with realistic amounts; ``pacer-stream bench --only memory``):
per-slot series are arrays (no int objects), the minute rings are one array on the
channel, the queues of times are the small containers of ``core.compact`` (a ``deque``
costs about 760 bytes even empty), the active alerts an int mask, the fields most
channels leave at their defaults an extras object created on first write, a campaign's
channels a slot rather than a dict, and the maps most channels leave empty
(reservations, unreported holds, answered requests, the outbox) share one empty
container until their first entry (``compact.own``).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from enum import StrEnum
from struct import Struct
from typing import overload

from pacer_stream.core.allocation.base import DayPlan, StrategyResult
from pacer_stream.core.breaker import PRISTINE, Breaker
from pacer_stream.core.calendar import LocalDay
from pacer_stream.core.compact import (
    NO_ENTRIES,
    AlertSet,
    FloatQueue,
    ints_view,
    no_entries,
    no_outputs,
    pack_float,
    packed_zeros,
    recent_floats,
)
from pacer_stream.core.history import HourlyAmounts, HourlyHistory
from pacer_stream.core.report_lag import Lags, new_lags
from pacer_stream.core.types import (
    AlertType,
    ChannelType,
    Output,
    PacingStrategy,
    Thresholds,
)
from pacer_stream.core.windows import (
    UNAUTHORISED,
    UNMET,
    VELOCITY,
    DedupeWindow,
    MinuteRing,
    MinuteRings,
)


@dataclass(slots=True)
class Reservation:
    reservation_id: str
    amount: int
    expires_at: float
    created_at: float


class AnswerStatus(StrEnum):
    """Where the reservation granted to a request stands (for retries of the request)."""

    LIVE = "live"
    SETTLED = "settled"
    EXPIRED = "expired"
    RELEASED = "released"


@dataclass(slots=True)
class Answer:
    """What a granted reservation request was answered, kept so that a retry of the same
    request gets the same hold back and nothing more.

    A request id is a retry only with the same channel and amount; the status says
    whether the hold still exists (a retry after it was settled, expired or released
    authorises nothing new)."""

    channel: ChannelType
    amount: int
    reservation_id: str
    answered_at: float
    status: AnswerStatus = AnswerStatus.LIVE


@dataclass(slots=True)
class Unreported:
    """A reservation that expired before its spend was reported: it keeps counting
    against the daily cap until ``drop_at`` (late-reporting platforms)."""

    amount: int
    drop_at: float
    #: When the reservation was made: spend that settles it counts no earlier.
    created_at: float


class _FrozenQueue(FloatQueue):
    """The empty queue a channel without extras reads (see :class:`ChannelState`):
    shared, so it refuses to grow; a writer asks the channel for its own first."""

    __slots__ = ()

    def __reduce__(self) -> str:
        """Copies and pickles are the shared instance itself (writers test identity)."""
        return "_NO_TIMES"

    def append(self, value: float) -> None:
        raise TypeError("the shared empty queue is never written: own it first")


class _FrozenLags(Lags):
    """The empty lags a channel without extras reads (see :class:`_FrozenQueue`)."""

    __slots__ = ()

    def __reduce__(self) -> str:
        """Copies and pickles are the shared instance itself (writers test identity)."""
        return "_NO_LAGS"

    def append(self, value: float) -> None:
        raise TypeError("the shared empty lags are never written: own them first")


class _FrozenHours(HourlyAmounts):
    """The empty unmet demand by hour a channel without extras reads."""

    __slots__ = ()

    def __reduce__(self) -> str:
        """Copies and pickles are the shared instance itself (writers test identity)."""
        return "_NO_UNMET_HOURS"

    def add(self, epoch_hour: int, amount: int) -> None:
        raise TypeError("the shared empty hours are never written: own them first")


_NO_TIMES: FloatQueue = _FrozenQueue()
_NO_LAGS: Lags = _FrozenLags()
_NO_UNMET_HOURS: HourlyAmounts = _FrozenHours()
#: The cumulative plan of a channel not planned yet (no boundary).
_NO_BOUNDARIES = packed_zeros(0)
#: The per-slot spend of a channel not planned yet (replaced, never written).
_NO_SPENT: array[int] = array("q")
#: Interned ``capacity_cache`` values without a capacity (see ``ChannelState``).
_NO_CAPACITY: dict[int, tuple[int, None]] = {}
_NO_CAPACITY_MAX = 64


_ALERT_BIT: dict[AlertType, int] = {a: 1 << i for i, a in enumerate(AlertType)}


class _ChannelAlerts(AlertSet):
    """The active alerts of a channel as a set view of its ``_alerts`` mask: the
    channel holds an int, not a set object."""

    __slots__ = ("_ch",)

    def __init__(self, ch: ChannelState) -> None:
        self._ch = ch

    @property
    def _mask(self) -> int:
        return self._ch._alerts

    @_mask.setter
    def _mask(self, mask: int) -> None:
        self._ch._alerts = mask

    # The rules ask these on every spend: straight to the channel's mask.
    def __contains__(self, alert: object) -> bool:
        return bool(self._ch._alerts & _ALERT_BIT.get(alert, 0))  # type: ignore[call-overload]

    def add(self, alert: AlertType) -> None:
        self._ch._alerts |= _ALERT_BIT[alert]

    def discard(self, alert: AlertType) -> None:
        self._ch._alerts &= ~_ALERT_BIT.get(alert, 0)


class _ChannelTimes(FloatQueue):
    """The unauthorised-spend times of a channel as a queue view of its ``_ut`` slot:
    the channel holds the packed ``bytes`` itself, not a queue object around them (40
    bytes less per channel; the view lives only while the engine uses it)."""

    __slots__ = ("_ch",)

    def __init__(self, ch: ChannelState) -> None:
        self._ch = ch

    @property
    def _values(self) -> bytes:
        return self._ch._ut

    @_values.setter
    def _values(self, values: bytes) -> None:
        self._ch._ut = values


class ChannelExtras:
    """The fields of a channel that most channels leave at their defaults all day:
    holds (reservations and unreported ones) and what follows from them (the reserved
    total among them), overspend times, unmet demand by hour, a performance violation,
    a strategy of its own. A channel creates this object on the first write of one of
    them, so a plain channel pays one empty pointer instead of eleven fields and three
    small objects (about 240 bytes)."""

    __slots__ = (
        "overspend_times",
        "perf_violation_alerted",
        "perf_violation_reason",
        "perf_violation_since",
        "report_lags",
        "reservations",
        "reserved_total",
        "strategy",
        "unmet_hours",
        "unreported",
        "unreported_total",
    )

    def __init__(self) -> None:
        self.strategy: PacingStrategy | None = None
        self.reserved_total = 0
        self.reservations: dict[str, Reservation] = no_entries()
        self.unreported: dict[str, Unreported] = no_entries()
        self.unreported_total = 0
        self.report_lags: Lags = _NO_LAGS
        self.overspend_times: FloatQueue = _NO_TIMES
        self.unmet_hours: HourlyAmounts = _NO_UNMET_HOURS
        self.perf_violation_since: float | None = None
        self.perf_violation_reason = ""
        self.perf_violation_alerted = False


#: Every field of a channel in its stored order (equality and repr go through them).
CHANNEL_FIELDS: tuple[str, ...] = (
    "channel",
    "base_budget",
    "budget",
    "strategy",
    "day",
    "active_from",
    "plan",
    "result",
    "cum_plan",
    "spent",
    "spent_total",
    "clicks_today",
    "conversions_today",
    "impressions_today",
    "revenue_today",
    "reserved_total",
    "reservations",
    "unreported",
    "unreported_total",
    "report_lags",
    "velocity",
    "unauthorised",
    "unmet",
    "unmet_hours",
    "unauthorised_times",
    "overspend_times",
    "breaker",
    "pace_level",
    "active_alerts",
    "alert_seq",
    "perf_violation_since",
    "perf_violation_reason",
    "perf_violation_alerted",
    "history",
    "allowance_key",
    "allowance_value",
)


class ChannelState(MinuteRings):
    """One channel of a campaign: its budget, today's plan and spend, the windows the
    rules read, its breaker and its history.

    A plain class with ``__slots__`` rather than a dataclass because a worker holds
    one per campaign/channel in memory and most of the fields cost nothing unless
    used: the channel is its own :class:`MinuteRings` (the three minute rings in one
    buffer: ``velocity``, ``unauthorised`` and ``unmet`` are views of it), the active
    alerts are a bit mask in a slot (``active_alerts`` is a set view of it), the
    per-slot spend is 4 bytes a slot until a slot passes 2**31 - 1 micros
    (:meth:`add_spent` widens it), the fields most channels leave at their defaults
    live in a :class:`ChannelExtras` created on first write, the breaker is the one
    shared pristine breaker until a transition may leave that state
    (:meth:`own_breaker`), and the allowance cache key is three slots rather than a
    tuple. Reading an extra of a
    channel without extras gives its default (a shared empty container for the
    containers, which refuses writes); writers of the containers ask for the
    channel's own (``own_report_lags``, ``own_overspend_times``,
    ``own_unmet_hours``); assigning any extra a non-default value creates the extras.
    """

    __slots__ = (
        "_ak_budget",
        "_ak_slot",
        "_ak_spent",
        "_alerts",
        "_capacity_cache",
        "_ut",
        "_x",
        "active_from",
        "alert_seq",
        "allowance_value",
        "base_budget",
        "baseline_cache",
        "breaker",
        "budget",
        "channel",
        "clicks_today",
        "conversions_today",
        "day",
        "history",
        "impressions_today",
        "pace_level",
        "plan",
        "result",
        "revenue_today",
        "spent",
        "spent_total",
    )

    def __init__(
        self,
        channel: ChannelType,
        base_budget: int = 0,
        budget: int = 0,
        strategy: PacingStrategy | None = None,
        day: LocalDay | None = None,
        active_from: float | None = None,
        plan: DayPlan | None = None,
        result: StrategyResult | None = None,
        spent: array[int] | None = None,
        spent_total: int = 0,
        clicks_today: int = 0,
        conversions_today: int = 0,
        impressions_today: int = 0,
        revenue_today: int = 0,
        reserved_total: int = 0,
        reservations: dict[str, Reservation] | None = None,
        unreported: dict[str, Unreported] | None = None,
        unreported_total: int = 0,
        report_lags: Lags | None = None,
        velocity: MinuteRing | None = None,
        unauthorised: MinuteRing | None = None,
        unmet: MinuteRing | None = None,
        unmet_hours: HourlyAmounts | None = None,
        unauthorised_times: FloatQueue | None = None,
        overspend_times: FloatQueue | None = None,
        breaker: Breaker | None = None,
        pace_level: int = 0,
        active_alerts: AlertSet | None = None,
        alert_seq: int = 0,
        perf_violation_since: float | None = None,
        perf_violation_reason: str = "",
        perf_violation_alerted: bool = False,
        history: HourlyHistory | None = None,
        allowance_key: tuple[int, int, int] = (-1, -1, -1),
        baseline_cache: tuple[int, int, int] = (-1, 0, 0),
        allowance_value: int = 0,
        capacity_cache: tuple[int, tuple[int, ...] | None] = (-1, None),
    ) -> None:
        self.channel = channel
        #: Budget from configuration (0 = no budget: spend is recorded, never authorised).
        self.base_budget = base_budget
        #: Today's budget: base + today's reallocation deltas.
        self.budget = budget
        self._x: ChannelExtras | None = None
        if strategy is not None:
            self.strategy = strategy
        self.day = day
        #: When the channel got its budget, if that was during the current day: the plan
        #: then covers only the rest of the day (a mid-day start is not "underpacing").
        self.active_from = active_from
        self.plan = plan
        self.result = result
        #: Spend per slot of today (replaced at the day's start, never appended to).
        self.spent: array[int] = _NO_SPENT if spent is None else spent
        self.spent_total = spent_total
        self.clicks_today = clicks_today
        self.conversions_today = conversions_today
        self.impressions_today = impressions_today
        self.revenue_today = revenue_today
        if reserved_total:
            self.reserved_total = reserved_total
        MinuteRings.__init__(self)
        #: Spend per minute: velocity (all spend), unauthorised spend (no reservation, or
        #: above the reserved amount: the breaker's runaway and repeated-overspend rules
        #: look only at this, so authorised spend never trips it) and unmet demand
        #: (amounts refused by the hourly or velocity line: the evidence that a channel
        #: could use more budget).
        for k, ring in ((VELOCITY, velocity), (UNAUTHORISED, unauthorised), (UNMET, unmet)):
            if ring is not None:
                ring.copy_into(self, k)
        self._ut = b""  # no unauthorised spend times (the empty queue's storage)
        if unauthorised_times is not None:
            self.unauthorised_times = unauthorised_times
        #: The shared :data:`~pacer_stream.core.breaker.PRISTINE` breaker until the
        #: first transition that can leave it (:meth:`own_breaker`).
        self.breaker: Breaker = PRISTINE if breaker is None else breaker
        self.pace_level = pace_level
        self._alerts = 0
        if active_alerts is not None:
            self.active_alerts = active_alerts
        self.alert_seq = alert_seq
        self.history = HourlyHistory() if history is None else history
        self.allowance_key = allowance_key
        self.allowance_value = allowance_value
        #: (day start hour, clicks, conversions) of the 7-day baseline before today: read
        #: once per day, so recording a spend never re-sums the history (derived, not saved).
        self.baseline_cache = baseline_cache
        self.capacity_cache = capacity_cache
        if reservations:
            self.reservations = reservations
        if unreported:
            self.unreported = unreported
        if unreported_total:
            self.unreported_total = unreported_total
        if report_lags:
            self.report_lags = report_lags
        if unmet_hours is not None and unmet_hours.amounts:
            self.unmet_hours = unmet_hours
        if overspend_times:
            self.overspend_times = overspend_times
        if perf_violation_since is not None:
            self.perf_violation_since = perf_violation_since
        if perf_violation_reason:
            self.perf_violation_reason = perf_violation_reason
        if perf_violation_alerted:
            self.perf_violation_alerted = perf_violation_alerted

    # -- the extras ------------------------------------------------------------------
    def extras(self) -> ChannelExtras:
        """The channel's own extras, created on first use."""
        x = self._x
        if x is None:
            x = self._x = ChannelExtras()
        return x

    def extras_if_any(self) -> ChannelExtras | None:
        """The channel's extras, None while every extra is at its default (readers
        that go through all of them, like the codec, skip them at once)."""
        return self._x

    @property
    def alert_mask(self) -> int:
        """The active alerts as a bit mask (see ``compact.AlertSet``)."""
        return self._alerts

    def own_breaker(self) -> Breaker:
        """The channel's own breaker, to write to: the shared pristine one is replaced
        by a copy first (copy-on-write). Call it only where a write may follow (a trip,
        a force): a channel that merely asks keeps sharing."""
        br = self.breaker
        if br is PRISTINE:
            br = self.breaker = Breaker()
        return br

    def own_report_lags(self) -> Lags:
        """The channel's own report lags, to append to."""
        x = self.extras()
        if x.report_lags is _NO_LAGS:
            x.report_lags = new_lags()
        return x.report_lags

    def own_overspend_times(self) -> FloatQueue:
        """The channel's own overspend times, to append to."""
        x = self.extras()
        if x.overspend_times is _NO_TIMES:
            x.overspend_times = FloatQueue()
        return x.overspend_times

    def own_unmet_hours(self) -> HourlyAmounts:
        """The channel's own unmet demand by hour, to add to."""
        x = self.extras()
        if x.unmet_hours is _NO_UNMET_HOURS:
            x.unmet_hours = HourlyAmounts()
        return x.unmet_hours

    @property
    def strategy(self) -> PacingStrategy | None:
        """The channel's own strategy (None: the campaign's)."""
        x = self._x
        return None if x is None else x.strategy

    @strategy.setter
    def strategy(self, value: PacingStrategy | None) -> None:
        if self._x is not None or value is not None:
            self.extras().strategy = value

    @property
    def reserved_total(self) -> int:
        """Micros held by live reservations (0 without extras: no reservation)."""
        x = self._x
        return 0 if x is None else x.reserved_total

    @reserved_total.setter
    def reserved_total(self, value: int) -> None:
        if self._x is not None or value != 0:
            self.extras().reserved_total = value

    @property
    def reservations(self) -> dict[str, Reservation]:
        """Live reservations (the shared empty dict until the first: ``compact.own``)."""
        x = self._x
        return NO_ENTRIES if x is None else x.reservations

    @reservations.setter
    def reservations(self, value: dict[str, Reservation]) -> None:
        if self._x is not None or value is not NO_ENTRIES:
            self.extras().reservations = value

    @property
    def unreported(self) -> dict[str, Unreported]:
        """Reservations that expired before their spend was reported, by reservation id.
        They still count against the daily cap for ``report_grace_s``, because a
        platform that reports late has probably spent the money already."""
        x = self._x
        return NO_ENTRIES if x is None else x.unreported

    @unreported.setter
    def unreported(self, value: dict[str, Unreported]) -> None:
        if self._x is not None or value is not NO_ENTRIES:
            self.extras().unreported = value

    def held(self) -> tuple[int, int, int]:
        """(holds, reserved micros, unreported micros): what every decision reads of
        the holds, in one call (a plain channel has no extras and holds nothing)."""
        x = self._x
        if x is None:
            return 0, 0, 0
        return len(x.reservations) + len(x.unreported), x.reserved_total, x.unreported_total

    @property
    def unreported_total(self) -> int:
        x = self._x
        return 0 if x is None else x.unreported_total

    @unreported_total.setter
    def unreported_total(self, value: int) -> None:
        if self._x is not None or value != 0:
            self.extras().unreported_total = value

    @property
    def report_lags(self) -> Lags:
        """Recent report lags (seconds from reservation to the spend settling it): the
        grace of expired reservations follows them (``core.report_lag``)."""
        x = self._x
        return _NO_LAGS if x is None else x.report_lags

    @report_lags.setter
    def report_lags(self, value: Lags) -> None:
        if self._x is not None or value is not _NO_LAGS:
            self.extras().report_lags = value

    @property
    def overspend_times(self) -> FloatQueue:
        x = self._x
        return _NO_TIMES if x is None else x.overspend_times

    @overspend_times.setter
    def overspend_times(self, value: FloatQueue) -> None:
        if self._x is not None or value is not _NO_TIMES:
            self.extras().overspend_times = value

    @property
    def unmet_hours(self) -> HourlyAmounts:
        """The refusals of the hourly, velocity and daily-cap lines by epoch hour, over
        the history horizon: with the spend history, the demand each hour offered
        (``allocation.capacity``)."""
        x = self._x
        return _NO_UNMET_HOURS if x is None else x.unmet_hours

    @unmet_hours.setter
    def unmet_hours(self, value: HourlyAmounts) -> None:
        if self._x is not None or value is not _NO_UNMET_HOURS:
            self.extras().unmet_hours = value

    @property
    def perf_violation_since(self) -> float | None:
        """Since when a performance threshold has been violated (None = not violated)."""
        x = self._x
        return None if x is None else x.perf_violation_since

    @perf_violation_since.setter
    def perf_violation_since(self, value: float | None) -> None:
        if self._x is not None or value is not None:
            self.extras().perf_violation_since = value

    @property
    def perf_violation_reason(self) -> str:
        x = self._x
        return "" if x is None else x.perf_violation_reason

    @perf_violation_reason.setter
    def perf_violation_reason(self, value: str) -> None:
        if self._x is not None or value != "":
            self.extras().perf_violation_reason = value

    @property
    def perf_violation_alerted(self) -> bool:
        x = self._x
        return False if x is None else x.perf_violation_alerted

    @perf_violation_alerted.setter
    def perf_violation_alerted(self, value: bool) -> None:
        if self._x is not None or value:
            self.extras().perf_violation_alerted = value

    @property
    def unauthorised_times(self) -> FloatQueue:
        """Times of unauthorised spend events in the velocity window: a runaway is a
        *rate*, so one odd event (however large) never trips the breaker on velocity
        alone. A queue view of the channel's packed times (writes go to the channel)."""
        return _ChannelTimes(self)

    @unauthorised_times.setter
    def unauthorised_times(self, times: FloatQueue) -> None:
        self._ut = FloatQueue(times)._values

    def count_unauthorised(self, ts: float | None, since: float, most: int) -> int:
        """Note unauthorised spend at ``ts`` (None: nothing new) and count the times
        after ``since``, keeping at most the newest ``most``: the runaway rule's question
        on every spend event, without a queue view around the packed times."""
        values = self._ut
        if ts is not None:
            values += pack_float(ts)
        self._ut = values = recent_floats(values, since, most)
        return len(values) // 8

    # -- the rings, alerts and spend per slot ---------------------------------------
    @property
    def rings(self) -> MinuteRings:
        """The channel's minute rings (the channel itself)."""
        return self

    @rings.setter
    def rings(self, rings: MinuteRings) -> None:
        """Make the channel's rings hold what ``rings`` holds (a copy)."""
        self._rbuf = array(rings._rbuf.typecode, rings._rbuf) if rings._rbuf else rings._rbuf
        self._rlayout = rings._rlayout

    @property
    def velocity(self) -> MinuteRing:
        """Spend per minute, all of it (the velocity line)."""
        return MinuteRing(rings=self, k=VELOCITY)

    @velocity.setter
    def velocity(self, ring: MinuteRing) -> None:
        ring.copy_into(self, VELOCITY)

    @property
    def unauthorised(self) -> MinuteRing:
        """Spend nobody authorised, per minute: the breaker's runaway and
        repeated-overspend rules look only at this."""
        return MinuteRing(rings=self, k=UNAUTHORISED)

    @unauthorised.setter
    def unauthorised(self, ring: MinuteRing) -> None:
        ring.copy_into(self, UNAUTHORISED)

    @property
    def unmet(self) -> MinuteRing:
        """Amounts refused by the hourly or velocity line, per minute."""
        return MinuteRing(rings=self, k=UNMET)

    @unmet.setter
    def unmet(self, ring: MinuteRing) -> None:
        ring.copy_into(self, UNMET)

    @property
    def active_alerts(self) -> AlertSet:
        """The active alert types: a set view of the channel's bit mask (writes go to
        the channel)."""
        return _ChannelAlerts(self)

    @active_alerts.setter
    def active_alerts(self, alerts: Iterable[AlertType]) -> None:
        self._alerts = AlertSet(alerts).mask

    def alert_active(self, alert: AlertType) -> bool:
        """``alert in active_alerts`` without building the set view (asked on every
        spend event)."""
        return bool(self._alerts & _ALERT_BIT[alert])

    @property
    def cum_plan(self) -> memoryview:
        """Cumulative planned spend at each slot boundary (len = slots + 1), empty
        before the first plan: a read-only view of the plan's (shared by channels with
        equal plans, ``planning.shared_plan``; derived, not a field of its own)."""
        plan = self.plan
        return ints_view(_NO_BOUNDARIES) if plan is None else plan.cum

    def add_spent(self, slot: int, amount: int) -> None:
        """Add ``amount`` to today's spend of ``slot``, widening the per-slot column to
        8 bytes the first time a slot passes 4 (spend per slot is usually far below
        2**31 micros, so most channels keep half the bytes)."""
        spent = self.spent
        try:
            spent[slot] += amount
        except OverflowError:
            self.spent = spent = array("q", spent)
            spent[slot] += amount

    # -- caches ----------------------------------------------------------------------
    @property
    def allowance_key(self) -> tuple[int, int, int]:
        """(slot, spent before slot, budget) -> ``allowance_value``, the allowance of
        the slot after rollover (three slots, not a tuple kept per channel)."""
        return (self._ak_slot, self._ak_spent, self._ak_budget)

    @allowance_key.setter
    def allowance_key(self, key: tuple[int, int, int]) -> None:
        self._ak_slot, self._ak_spent, self._ak_budget = key

    @property
    def capacity_cache(self) -> tuple[int, tuple[int, ...] | None]:
        """(day start hour, capacity per slot) from ``allocation.capacity``: history
        before today changes rarely, so a mid-day re-plan does not re-read it (derived,
        not saved). Without a capacity the pair is interned per day start: every
        channel planned that day without one shares it."""
        return self._capacity_cache

    @capacity_cache.setter
    def capacity_cache(self, value: tuple[int, tuple[int, ...] | None]) -> None:
        start, capacity = value
        if capacity is None:
            shared = _NO_CAPACITY.get(start)
            if shared is None:
                if len(_NO_CAPACITY) >= _NO_CAPACITY_MAX:
                    _NO_CAPACITY.clear()
                shared = _NO_CAPACITY[start] = (start, None)
            value = shared
        self._capacity_cache = value

    @property
    def remaining(self) -> int:
        """What is left of today's budget, never below 0 (spend nobody authorised can
        take the channel past its budget; "remaining" is then 0, not negative)."""
        x = self._x
        left = self.budget - self.spent_total
        if x is not None:
            left -= x.reserved_total + x.unreported_total
        return max(0, left)

    def __eq__(self, other: object) -> bool:
        """Equal fields (the derived caches excluded, as they are not saved)."""
        if not isinstance(other, ChannelState):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in CHANNEL_FIELDS)

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        inner = ", ".join(f"{f}={_shown(getattr(self, f))!r}" for f in CHANNEL_FIELDS)
        return f"ChannelState({inner})"


def _shown(value: object) -> object:
    """A field as its repr shows it (a view's values, not its address)."""
    return value.tolist() if isinstance(value, memoryview) else value


_NO_CHANNELS: tuple[ChannelState, ...] = ()


class ChannelMap(MutableMapping[ChannelType, ChannelState]):
    """A campaign's channels by type, in insertion order: a mapping over one slot.

    Why not a dict: a dict of one entry costs 224 bytes, and most campaigns have one
    to three channels. Each channel already knows its type, so no keys are stored:
    the slot holds the one channel itself, or a tuple of them (48 bytes for two, 8
    more per channel). Lookups scan (at most one entry per channel type, a handful);
    writes replace the slot.
    """

    __slots__ = ("_chs",)

    def __init__(self, channels: Iterable[tuple[ChannelType, ChannelState]] = ()) -> None:
        self._chs: ChannelState | tuple[ChannelState, ...] = _NO_CHANNELS
        for key, ch in channels:
            self[key] = ch

    def _all(self) -> tuple[ChannelState, ...]:
        chs = self._chs
        return (chs,) if isinstance(chs, ChannelState) else chs

    def get(self, key: ChannelType, default: ChannelState | None = None) -> ChannelState | None:  # type: ignore[override]
        chs = self._chs
        if isinstance(chs, ChannelState):  # one channel, the usual case
            return chs if chs.channel == key else default
        for ch in chs:
            if ch.channel == key:
                return ch
        return default

    def __getitem__(self, key: ChannelType) -> ChannelState:
        ch = self.get(key)
        if ch is None:
            raise KeyError(key)
        return ch

    def __contains__(self, key: object) -> bool:
        return any(ch.channel == key for ch in self._all())

    def _store(self, chs: tuple[ChannelState, ...]) -> None:
        self._chs = chs[0] if len(chs) == 1 else chs

    def __setitem__(self, key: ChannelType, ch: ChannelState) -> None:
        if ch.channel != key:
            raise ValueError(f"channel {ch.channel} stored under {key}")
        chs = self._all()
        for i, old in enumerate(chs):
            if old.channel == key:
                self._store((*chs[:i], ch, *chs[i + 1 :]))
                return
        self._store((*chs, ch))

    def __delitem__(self, key: ChannelType) -> None:
        chs = self._all()
        for i, old in enumerate(chs):
            if old.channel == key:
                self._store(chs[:i] + chs[i + 1 :])
                return
        raise KeyError(key)

    def __iter__(self) -> Iterator[ChannelType]:
        return iter([ch.channel for ch in self._all()])

    def __len__(self) -> int:
        return len(self._all())

    def values(self) -> tuple[ChannelState, ...]:  # type: ignore[override]
        """The channels in insertion order (a tuple: nothing to copy)."""
        return self._all()

    def items(self) -> list[tuple[ChannelType, ChannelState]]:  # type: ignore[override]
        return [(ch.channel, ch) for ch in self._all()]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ChannelMap):
            return self._all() == other._all()
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"ChannelMap({dict(self.items())!r})"


_MARK = Struct("<q")
#: Interned tuples of topic names (a worker reads a handful of input topics).
_TOPICS: dict[tuple[str, ...], tuple[str, ...]] = {}


class Offsets(MutableMapping[str, int]):
    """A campaign's input offset high-water marks by topic: a mapping over two slots.

    Why not a dict: a worker keeps one per campaign, a dict of two marks costs 184
    bytes and an int object per mark (240 in all), an empty one 64. Here the topic
    names are one tuple shared by every campaign that saw the same topics in the same
    order, and the marks one ``bytes`` of 8-byte ints in that order (about 100 bytes
    with two marks, 48 empty). A write builds a new ``bytes`` (at most one per input
    record); a new topic, a new tuple (interned)."""

    __slots__ = ("_marks", "_topics")

    def __init__(self, marks: Mapping[str, int] | None = None) -> None:
        self._topics: tuple[str, ...] = ()
        self._marks = b""
        if marks:
            for topic, mark in marks.items():
                self[topic] = mark

    @overload  # type: ignore[override]
    def get(self, topic: str, default: None = None) -> int | None: ...
    @overload
    def get(self, topic: str, default: int) -> int: ...
    def get(self, topic: str, default: int | None = None) -> int | None:
        """The mark of ``topic``, else ``default`` (an int default gives an int)."""
        topics = self._topics
        if topic in topics:
            mark: int = _MARK.unpack_from(self._marks, 8 * topics.index(topic))[0]
            return mark
        return default

    def __getitem__(self, topic: str) -> int:
        mark = self.get(topic)
        if mark is None:
            raise KeyError(topic)
        return mark

    def __setitem__(self, topic: str, mark: int) -> None:
        topics, marks = self._topics, self._marks
        if topic in topics:
            at = 8 * topics.index(topic)
            self._marks = marks[:at] + _MARK.pack(mark) + marks[at + 8 :]
            return
        self._topics = self._interned((*topics, topic))
        self._marks = marks + _MARK.pack(mark)

    def __delitem__(self, topic: str) -> None:
        topics = self._topics
        if topic not in topics:
            raise KeyError(topic)
        i = topics.index(topic)
        self._topics = self._interned(topics[:i] + topics[i + 1 :])
        self._marks = self._marks[: 8 * i] + self._marks[8 * i + 8 :]

    @staticmethod
    def _interned(topics: tuple[str, ...]) -> tuple[str, ...]:
        found = _TOPICS.get(topics)
        if found is None:
            if len(_TOPICS) >= 256:  # bounded, whatever a caller names
                _TOPICS.clear()
            found = _TOPICS[topics] = topics
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._topics)

    def __len__(self) -> int:
        return len(self._topics)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Offsets({dict(self.items())!r})"


@dataclass(slots=True)
class CampaignState:
    campaign_id: str
    timezone: str = "UTC"
    strategy: PacingStrategy = PacingStrategy.ADAPTIVE_HYBRID
    thresholds: Thresholds = field(default_factory=Thresholds)
    configured: bool = False
    channels: ChannelMap = field(default_factory=ChannelMap)
    emergency_stopped: bool = False
    stop_reason: str = ""
    dedupe: DedupeWindow = field(default_factory=DedupeWindow)
    #: Input offset high-water marks, kept inside the state they guard: a record at or
    #: below the mark was already applied (crash-replay protection).
    offsets: Offsets = field(default_factory=Offsets)
    #: Recently granted reservation requests by request id, oldest first (bounded by
    #: count and by age, see ``engine.ANSWER_RETENTION_S``).
    answered: dict[str, Answer] = field(default_factory=no_entries)
    #: Outputs produced by lazy time transitions during read-only calls (decide,
    #: snapshot, allowance...): handed out by the next call that returns outputs, so a
    #: breaker transition is never swallowed by a read.
    outbox: list[Output] = field(default_factory=no_outputs)
