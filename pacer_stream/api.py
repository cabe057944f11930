"""``BudgetPacer``: the original-compatible in-process facade over the core engine.

Same names, enum values, dataclass fields and sync/async shape as the original Budget
Pacer, so its documented examples run with only the import line changed. Differences
that fix the original's known flaws:

* Money crosses this boundary as ``Decimal`` and is held as integer micros inside
  (rounded half-even; allocations always sum to the budget exactly).
* Time comes from an injectable ``clock`` (default: the wall clock in UTC), never from
  inside the rules, so a day can be replayed in seconds. Naive datetimes (such as the
  original examples' ``datetime.utcnow()``) are read as UTC.
* ``can_spend`` is a pure check; ``reserve`` holds budget for concurrent callers.
* Normal spending up to 100% of the budget is allowed; the breaker trips on spend
  *ahead of plan*, runaway velocity or repeated overspend, not at 90% of the day.
* ``SpendTransaction.transaction_id`` makes ``record_spend`` idempotent.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pacer_stream.core.engine import PacingEngine
from pacer_stream.core.ids import check_campaign_id
from pacer_stream.core.money import check_micros, from_micros, to_micros
from pacer_stream.core.performance import PerformanceSnapshot
from pacer_stream.core.state import CampaignState
from pacer_stream.core.types import (
    Alert,
    CampaignConfig,
    ChannelConfig,
    ChannelType,
    CircuitBreakerState,
    Code,
    Output,
    PacingStrategy,
    SpendEvent,
    Thresholds,
)
from pacer_stream.errors import (
    InvalidAmount,
    InvalidBudget,
    UnknownCampaign,
    UnknownChannel,
    WrongType,
)

__all__ = [
    "BudgetPacer",
    "ChannelType",
    "CircuitBreakerState",
    "HourlyAllocation",
    "PacingAlert",
    "PacingStrategy",
    "SpendReservation",
    "SpendTransaction",
]

AlertCallback = Callable[["PacingAlert"], Awaitable[None] | None]
Clock = Callable[[], datetime]


@dataclass
class SpendTransaction:
    """A spend fact (fields of the original, plus optional ids and extra metrics)."""

    campaign_id: str
    channel: ChannelType
    amount: Decimal
    timestamp: datetime
    clicks: int = 0
    conversions: int = 0
    cost_per_click: float = 0.0
    conversion_rate: float = 0.0
    transaction_id: str | None = None
    impressions: int | None = None
    revenue: Decimal | None = None
    reservation_id: str | None = None


@dataclass
class PacingAlert:
    """The original's seven documented fields, positional and in their order; the
    extra fields are keyword-only with defaults, so code that builds an alert from the
    documented fields keeps working."""

    alert_type: str
    campaign_id: str
    channel: ChannelType | None
    current_spend: Decimal
    pace_ratio: float
    recommended_action: str
    severity: str
    budget_consumed_pct: float = field(default=0.0, kw_only=True)
    time_elapsed_pct: float = field(default=0.0, kw_only=True)
    projected_overspend: Decimal = field(default=Decimal(0), kw_only=True)
    alert_id: str = field(default="", kw_only=True)
    timestamp: datetime | None = field(default=None, kw_only=True)


@dataclass
class HourlyAllocation:
    hour: int
    base_allocation_pct: float
    performance_multiplier: float
    predicted_conversion_rate: float
    predicted_cost_per_click: float
    confidence_score: float
    amount: Decimal = Decimal(0)
    model_version: str | None = None


@dataclass(frozen=True)
class SpendReservation:
    allowed: bool
    code: str
    reason: str
    reservation_id: str | None
    expires_at: datetime | None
    remaining: Decimal


@dataclass
class _CampaignSetup:
    channels: dict[ChannelType, ChannelConfig] = field(default_factory=dict)
    strategy: PacingStrategy = PacingStrategy.ADAPTIVE_HYBRID


class BreakerView:
    """Read-only live view of one channel's breaker (``.state`` as in the original)."""

    def __init__(self, state: CampaignState, channel: ChannelType) -> None:
        self._state = state
        self._channel = channel

    @property
    def state(self) -> CircuitBreakerState:
        return self._state.channels[self._channel].breaker.state

    @property
    def cause(self) -> str | None:
        c = self._state.channels[self._channel].breaker.cause
        return c.value if c else None

    @property
    def forced(self) -> bool:
        return self._state.channels[self._channel].breaker.forced

    def __repr__(self) -> str:
        return f"BreakerView({self._channel.value}: {self.state.value})"


class _BreakerMap(Mapping[str, Mapping[ChannelType, BreakerView]]):
    def __init__(self, pacer: BudgetPacer) -> None:
        self._pacer = pacer

    def __getitem__(self, campaign_id: str) -> Mapping[ChannelType, BreakerView]:
        st = self._pacer._states[campaign_id]
        return {c: BreakerView(st, c) for c in st.channels}

    def __iter__(self) -> Iterator[str]:
        return iter(self._pacer._states)

    def __len__(self) -> int:
        return len(self._pacer._states)


_THRESHOLD_ATTRS = (
    "max_hourly_spend_pct",
    "frontload_protection_hours",
    "emergency_stop_threshold",
    "pace_warning_threshold",
)


class BudgetPacer:
    """In-process budget pacer with the original Budget Pacer's API."""

    _thresholds: Thresholds

    def __init__(
        self,
        alert_callback: AlertCallback | None = None,
        clock: Clock | None = None,
        *,
        thresholds: Thresholds | None = None,
        engine: PacingEngine | None = None,
    ) -> None:
        object.__setattr__(self, "_thresholds", thresholds or Thresholds())
        self.alert_callback = alert_callback
        self._clock: Clock = clock or (lambda: datetime.now(UTC))
        self._engine = engine or PacingEngine()
        self._states: dict[str, CampaignState] = {}
        self._setups: dict[str, _CampaignSetup] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.alerts: list[PacingAlert] = []

    # -- configurable attributes (take effect immediately) ---------------------------
    def __getattr__(self, name: str) -> Any:
        if name in _THRESHOLD_ATTRS or name in Thresholds.__dataclass_fields__:
            return getattr(self.__dict__["_thresholds"], name)
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in Thresholds.__dataclass_fields__:
            new = replace(self._thresholds, **{name: value})  # validates
            object.__setattr__(self, "_thresholds", new)
            now = self._now()
            for cid, st in self._states.items():
                self._apply(cid, st.timezone, now)
            return
        object.__setattr__(self, name, value)

    @property
    def thresholds(self) -> Thresholds:
        return self._thresholds

    @property
    def circuit_breakers(self) -> Mapping[str, Mapping[ChannelType, BreakerView]]:
        return _BreakerMap(self)

    # -- original API ----------------------------------------------------------------
    def allocate_hourly_budget(
        self,
        campaign_id: str,
        channel: ChannelType,
        daily_budget: Decimal,
        strategy: PacingStrategy = PacingStrategy.ADAPTIVE_HYBRID,
        *,
        timezone: str | None = None,
    ) -> list[HourlyAllocation]:
        """Set the channel's daily budget and strategy; return today's hourly plan."""
        _check_campaign_id(campaign_id)
        channel = _channel(channel)
        if not isinstance(strategy, PacingStrategy):
            raise WrongType(f"strategy must be a PacingStrategy, got {strategy!r}")
        if isinstance(daily_budget, Decimal) and daily_budget.is_finite() and daily_budget <= 0:
            raise InvalidBudget(f"daily_budget must be positive, got {daily_budget}")
        micros = to_micros(daily_budget, what="daily_budget", allow_zero=False)
        now = self._now()
        setup = self._setups.setdefault(campaign_id, _CampaignSetup())
        setup.channels[channel] = ChannelConfig(micros, strategy)
        setup.strategy = strategy
        st = self._states.get(campaign_id)
        tz = timezone or (st.timezone if st else "UTC")
        self._apply(campaign_id, tz, now)
        return self.hourly_allocations(campaign_id, channel)

    def hourly_allocations(self, campaign_id: str, channel: ChannelType) -> list[HourlyAllocation]:
        st = self._state(campaign_id)
        ch = self._engine.hourly_plan(st, _channel(channel), self._now())
        plan, result, day = ch.plan, ch.result, ch.day
        assert plan is not None and result is not None and day is not None
        total = sum(plan.amounts)
        out = []
        for i, amount in enumerate(plan.amounts):
            out.append(
                HourlyAllocation(
                    hour=day.hours_of_day[i],
                    base_allocation_pct=(amount / total) if total else 0.0,
                    performance_multiplier=result.multipliers[i],
                    predicted_conversion_rate=result.predicted_conversion_rate[i],
                    predicted_cost_per_click=result.predicted_cost_per_click[i],
                    confidence_score=result.confidence,
                    amount=from_micros(amount),
                    model_version=result.model_version,
                )
            )
        return out

    def check_pace(
        self, campaign_id: str, channel: ChannelType
    ) -> tuple[float, PacingAlert | None]:
        """(pace ratio, alert for the current condition or None). New alerts also go to
        the callback, once per state change."""
        st = self._state(campaign_id)
        channel = _channel(channel)
        now = self._now()
        self._emit(self._engine.tick(st, now))
        ratio, alert = self._engine.current_alert(st, channel, now)
        return ratio, _to_pacing_alert(alert) if alert else None

    def can_spend(
        self, campaign_id: str, channel: ChannelType, amount: Decimal
    ) -> tuple[bool, str]:
        """Would ``amount`` be authorised now? A pure check; reserves nothing.

        An unknown campaign or a channel without a budget is a denial (a bid engine must
        fail safe); an invalid amount or a value that is not a channel raises."""
        channel = _channel(channel)
        micros = _amount(amount)
        st = self._states.get(campaign_id)
        d = self._engine.decide(st, channel, micros, self._now(), with_multiplier=False)
        return d.allowed, d.reason

    def reserve(
        self,
        campaign_id: str,
        channel: ChannelType,
        amount: Decimal,
        request_id: str | None = None,
    ) -> SpendReservation:
        """Authorise and hold ``amount`` until a spend settles it or the TTL expires."""
        channel = _channel(channel)
        micros = _amount(amount)
        st = self._states.get(campaign_id)
        d, outputs = self._engine.reserve(
            st, channel, micros, request_id or uuid.uuid4().hex, self._now()
        )
        self._emit(outputs)
        return SpendReservation(
            d.allowed,
            d.code.value,
            d.reason,
            d.reservation_id,
            d.expires_at,
            from_micros(d.remaining_micros),
        )

    def release(self, campaign_id: str, channel: ChannelType, reservation_id: str) -> bool:
        return self._engine.release(
            self._state(campaign_id), _channel(channel), reservation_id, self._now()
        )

    def record_spend(self, transaction: SpendTransaction) -> bool:
        """Record a spend. Returns False when ``transaction_id`` was already recorded."""
        if not isinstance(transaction, SpendTransaction):
            raise WrongType(
                f"record_spend takes a SpendTransaction, got {type(transaction).__name__}"
            )
        tx = transaction
        _check_campaign_id(tx.campaign_id)
        channel = _channel(tx.channel)
        micros = to_micros(tx.amount, what="amount")
        if not isinstance(tx.timestamp, datetime):
            raise WrongType(f"timestamp must be a datetime, got {type(tx.timestamp).__name__}")
        when = tx.timestamp if tx.timestamp.tzinfo else tx.timestamp.replace(tzinfo=UTC)
        revenue = to_micros(tx.revenue, what="revenue") if tx.revenue is not None else None
        st = self._states.get(tx.campaign_id)
        if st is None:
            st = self._engine.new_campaign(tx.campaign_id)
            st.thresholds = self._thresholds
            self._states[tx.campaign_id] = st
        event = SpendEvent(
            event_id=tx.transaction_id or uuid.uuid4().hex,
            campaign_id=tx.campaign_id,
            channel=channel,
            amount_micros=micros,
            event_time=when,
            clicks=tx.clicks,
            conversions=tx.conversions,
            impressions=tx.impressions,
            revenue_micros=revenue,
            reservation_id=tx.reservation_id,
        )
        result = self._engine.record_spend(st, event, self._now())
        self._emit(result.outputs)
        return result.applied

    async def reallocate_unused(self, campaign_id: str) -> dict[ChannelType, Decimal]:
        st = self._state(campaign_id)
        deltas, outputs = self._engine.reallocate(st, self._now())
        await self._emit_async(outputs)
        return {c: from_micros(d) if d >= 0 else -from_micros(-d) for c, d in deltas.items()}

    async def emergency_stop(self, campaign_id: str, reason: str) -> bool:
        st = self._state(campaign_id)
        await self._emit_async(self._engine.emergency_stop(st, reason, self._now()))
        return True

    async def resume(self, campaign_id: str) -> bool:
        st = self._state(campaign_id)
        was_stopped = st.emergency_stopped
        await self._emit_async(self._engine.resume(st, self._now()))
        return was_stopped

    def get_pacing_multiplier(self, campaign_id: str, channel: ChannelType) -> float:
        """Bid/throttle multiplier in [0, max_multiplier] that keeps the channel on plan:
        above 1 when underpacing with budget left, below 1 when overpacing, 0 when
        blocked (see ``pacer_stream.core.multiplier``)."""
        st = self._state(campaign_id)
        return self._engine.pacing_multiplier(st, _channel(channel), self._now())

    def performance(self, campaign_id: str, channel: ChannelType) -> PerformanceSnapshot:
        """Impressions, clicks, conversions, spend, revenue and CTR / conversion rate /
        CPC / CPA / ROAS for today, the last 7 days and the 28-day baseline, plus
        today's hourly view. Ratios are None where undefined (e.g. no clicks)."""
        st = self._state(campaign_id)
        return self._engine.performance(st, _channel(channel), self._now())

    def status(self, campaign_id: str) -> dict[str, Any]:
        """Per-channel pace snapshot (Decimal amounts) for operators."""
        st = self._state(campaign_id)
        now = self._now()
        out: dict[str, Any] = {"campaign_id": campaign_id, "stopped": st.emergency_stopped}
        for c in st.channels:
            s = self._engine.snapshot(st, c, now)
            out[c.value] = {
                "budget": from_micros(s.budget_micros),
                "spent": from_micros(s.spent_micros),
                "reserved": from_micros(s.reserved_micros),
                "planned": from_micros(s.planned_micros),
                "pace_ratio": s.pace_ratio,
                "breaker": s.breaker.value,
                "pacing_multiplier": s.pacing_multiplier,
                "performance": s.performance,
            }
        return out

    # -- internals -------------------------------------------------------------------
    def _now(self) -> datetime:
        now = self._clock()
        if not isinstance(now, datetime):
            raise WrongType(f"clock must return a datetime, got {type(now).__name__}")
        return now if now.tzinfo else now.replace(tzinfo=UTC)

    def _state(self, campaign_id: str) -> CampaignState:
        _check_campaign_id(campaign_id)
        st = self._states.get(campaign_id)
        if st is None or not st.configured:
            raise UnknownCampaign(f"unknown campaign {campaign_id!r}: allocate a budget first")
        return st

    def _apply(self, campaign_id: str, tz: str, now: datetime) -> None:
        setup = self._setups.get(campaign_id)
        if setup is None:
            return
        cfg = CampaignConfig(
            campaign_id, dict(setup.channels), setup.strategy, tz, self._thresholds
        )
        st, outputs = self._engine.configure(self._states.get(campaign_id), cfg, now)
        self._states[campaign_id] = st
        self._emit(outputs)

    def _alerts_of(self, outputs: list[Output]) -> list[PacingAlert]:
        return [_to_pacing_alert(o) for o in outputs if isinstance(o, Alert)]

    def _emit(self, outputs: list[Output]) -> None:
        for alert in self._alerts_of(outputs):
            self.alerts.append(alert)
            if self.alert_callback is None:
                continue
            result = self.alert_callback(alert)
            if inspect.isawaitable(result):
                self._schedule(result)

    async def _emit_async(self, outputs: list[Output]) -> None:
        for alert in self._alerts_of(outputs):
            self.alerts.append(alert)
            if self.alert_callback is None:
                continue
            result = self.alert_callback(alert)
            if inspect.isawaitable(result):
                await result

    def _schedule(self, awaitable: Awaitable[None]) -> None:
        """Run an async callback from sync code: as a task when a loop is running (kept
        referenced until done), otherwise to completion right here."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(_as_coroutine(awaitable))
            return
        task = loop.create_task(_as_coroutine(awaitable))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _as_coroutine(awaitable: Awaitable[None]) -> None:
    await awaitable


def _to_pacing_alert(a: Alert) -> PacingAlert:
    return PacingAlert(
        alert_type=a.alert_type.value,
        campaign_id=a.campaign_id,
        channel=a.channel,
        current_spend=from_micros(a.current_spend_micros),
        budget_consumed_pct=a.budget_consumed_pct,
        time_elapsed_pct=a.time_elapsed_pct,
        pace_ratio=a.pace_ratio,
        projected_overspend=from_micros(a.projected_overspend_micros),
        recommended_action=a.recommended_action,
        severity=a.severity.value,
        alert_id=a.alert_id,
        timestamp=a.at,
    )


def _channel(channel: object) -> ChannelType:
    if isinstance(channel, ChannelType):
        return channel
    if isinstance(channel, str):
        try:
            return ChannelType(channel)
        except ValueError:
            pass
    valid = ", ".join(c.value for c in ChannelType)
    raise UnknownChannel(f"unknown channel {channel!r}; expected one of: {valid}")


def _amount(amount: object) -> int:
    if isinstance(amount, Decimal) and amount.is_finite() and amount <= 0:
        raise InvalidAmount(f"amount must be positive, got {amount}")
    micros = to_micros(amount, what="amount", allow_zero=False)  # type: ignore[arg-type]
    return check_micros(micros, what="amount", allow_zero=False)


def _check_campaign_id(campaign_id: object) -> None:
    check_campaign_id(campaign_id)  # the one id rule (core.ids)


# Keep the machine codes importable from the facade for callers of ``reserve``.
Codes = Code
