"""The original-compatible facade: names, enum values, dataclass fields, sync/async shape,
configurable attributes, alert callbacks, typed errors."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

import pacer_stream
from pacer_stream import (
    BudgetPacer,
    ChannelType,
    CircuitBreakerState,
    HourlyAllocation,
    PacingAlert,
    PacingStrategy,
    SpendTransaction,
)
from pacer_stream.errors import (
    InvalidAmount,
    InvalidArgument,
    InvalidBudget,
    PacerError,
    UnknownCampaign,
    UnknownChannel,
    WrongType,
)

DAY = datetime(2026, 3, 2, tzinfo=UTC)
G = ChannelType.GOOGLE_ADS
FB = ChannelType.FACEBOOK_ADS


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def pacer_at(hours: float, **kw: object) -> tuple[BudgetPacer, Clock]:
    clock = Clock(DAY + timedelta(hours=hours))
    return BudgetPacer(clock=clock, **kw), clock  # type: ignore[arg-type]


def tx(amount: str, when: datetime, channel: ChannelType = G, **kw: object) -> SpendTransaction:
    return SpendTransaction("c1", channel, Decimal(amount), when, **kw)  # type: ignore[arg-type]


# -- names and enums ---------------------------------------------------------------------
def test_public_names() -> None:
    for name in ("BudgetPacer", "ChannelType", "PacingStrategy", "SpendTransaction",
                 "PacingAlert", "HourlyAllocation", "CircuitBreakerState"):
        assert name in pacer_stream.__all__
        assert getattr(pacer_stream, name) is not None


def test_channel_values_are_the_originals() -> None:
    assert {c.name: c.value for c in ChannelType} == {
        "GOOGLE_ADS": "google_ads",
        "FACEBOOK_ADS": "facebook_ads",
        "TIKTOK_ADS": "tiktok_ads",
        "DISPLAY": "display",
        "NATIVE": "native",
        "VIDEO": "video",
        "SEARCH": "search",
        "SHOPPING": "shopping",
    }


def test_strategy_and_breaker_names() -> None:
    assert [s.name for s in PacingStrategy] == [
        "EVEN_DISTRIBUTION",
        "PERFORMANCE_WEIGHTED",
        "HISTORICAL_PATTERN",
        "PREDICTIVE_ML",
        "ADAPTIVE_HYBRID",
    ]
    assert {s.name for s in CircuitBreakerState} == {"CLOSED", "OPEN", "HALF_OPEN"}


# -- dataclasses ----------------------------------------------------------------------------
def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def test_spend_transaction_fields_as_documented() -> None:
    documented = ["campaign_id", "channel", "amount", "timestamp", "clicks", "conversions",
                  "cost_per_click", "conversion_rate"]
    assert field_names(SpendTransaction)[: len(documented)] == documented
    t = SpendTransaction("c", G, Decimal("1"), DAY)  # positional, as in the docs
    assert (t.clicks, t.conversions, t.cost_per_click, t.conversion_rate) == (0, 0, 0.0, 0.0)
    assert t.transaction_id is None  # the optional idempotency key
    # every field after the documented ones is optional
    extra = [f for f in dataclasses.fields(SpendTransaction) if f.name not in documented]
    assert all(f.default is not dataclasses.MISSING for f in extra)


def test_pacing_alert_has_the_documented_fields_in_order() -> None:
    documented = ["alert_type", "campaign_id", "channel", "current_spend", "pace_ratio",
                  "recommended_action", "severity"]
    names = field_names(PacingAlert)
    assert [n for n in names if n in documented] == documented


def test_pacing_alert_can_be_built_from_the_documented_fields() -> None:
    a = PacingAlert(alert_type="warning_overpacing", campaign_id="c", channel=G,
                    current_spend=Decimal(1), pace_ratio=1.6, recommended_action="x",
                    severity="medium")
    assert a.budget_consumed_pct == 0.0 and a.projected_overspend == 0
    b = PacingAlert("critical_overpacing", "c", G, Decimal(2), 2.1, "y", "high")
    assert (b.pace_ratio, b.severity) == (2.1, "high")


def test_hourly_allocation_fields() -> None:
    names = field_names(HourlyAllocation)
    assert names[:6] == ["hour", "base_allocation_pct", "performance_multiplier",
                         "predicted_conversion_rate", "predicted_cost_per_click",
                         "confidence_score"]


# -- sync / async shape -----------------------------------------------------------------------
def test_sync_and_async_methods() -> None:
    for name in ("allocate_hourly_budget", "check_pace", "can_spend", "record_spend"):
        assert callable(getattr(BudgetPacer, name))
        assert not inspect.iscoroutinefunction(getattr(BudgetPacer, name)), name
    for name in ("reallocate_unused", "emergency_stop", "resume"):
        assert inspect.iscoroutinefunction(getattr(BudgetPacer, name)), name
    params = list(inspect.signature(BudgetPacer.allocate_hourly_budget).parameters)
    assert params[1:5] == ["campaign_id", "channel", "daily_budget", "strategy"]
    assert list(inspect.signature(BudgetPacer.can_spend).parameters)[1:] == [
        "campaign_id", "channel", "amount"]
    assert list(inspect.signature(BudgetPacer).parameters)[:2] == ["alert_callback", "clock"]


def test_allocate_returns_hourly_allocations_summing_to_the_budget() -> None:
    pacer, _ = pacer_at(0)
    allocs = pacer.allocate_hourly_budget("c1", G, Decimal("1000.00"),
                                          PacingStrategy.EVEN_DISTRIBUTION)
    assert isinstance(allocs, list) and len(allocs) == 24
    assert all(isinstance(a, HourlyAllocation) for a in allocs)
    assert [a.hour for a in allocs] == list(range(24))
    assert sum(a.amount for a in allocs) == Decimal("1000.00")
    assert all(isinstance(a.amount, Decimal) for a in allocs)
    assert math.isclose(sum(a.base_allocation_pct for a in allocs), 1.0)
    assert max(a.base_allocation_pct for a in allocs) <= 0.15
    assert all(a.confidence_score == 1.0 for a in allocs)
    # default strategy is accepted positionally-free
    assert len(pacer.allocate_hourly_budget("c2", G, Decimal("10"))) == 24


def test_budget_amounts_round_half_even_and_sum_exactly() -> None:
    pacer, _ = pacer_at(0)
    allocs = pacer.allocate_hourly_budget("c1", G, Decimal("333.3333335"),
                                          PacingStrategy.EVEN_DISTRIBUTION)
    assert sum(a.amount for a in allocs) == Decimal("333.333334")  # half-even at 6 places


def test_return_shapes() -> None:
    pacer, clock = pacer_at(10)
    pacer.allocate_hourly_budget("c1", G, Decimal("1000"), PacingStrategy.EVEN_DISTRIBUTION)
    pacer.allocate_hourly_budget("c1", FB, Decimal("1000"), PacingStrategy.EVEN_DISTRIBUTION)
    ratio, alert = pacer.check_pace("c1", G)
    assert isinstance(ratio, float) and alert is None
    ok, reason = pacer.can_spend("c1", G, Decimal("1.00"))
    assert ok is True and isinstance(reason, str)
    assert pacer.record_spend(tx("1.00", clock.now, clicks=3, conversions=1)) is True
    result = asyncio.run(pacer.reallocate_unused("c1"))
    assert isinstance(result, dict)
    assert all(isinstance(k, ChannelType) and isinstance(v, Decimal) for k, v in result.items())
    assert sum(result.values(), Decimal(0)) == 0
    assert asyncio.run(pacer.emergency_stop("c1", "test")) is True


def test_circuit_breakers_view() -> None:
    pacer, clock = pacer_at(10)
    pacer.allocate_hourly_budget("c1", G, Decimal("1000"))
    assert pacer.circuit_breakers["c1"][G].state is CircuitBreakerState.CLOSED
    pacer.record_spend(tx("950.00", clock.now - timedelta(hours=1)))
    assert pacer.circuit_breakers["c1"][G].state is CircuitBreakerState.OPEN
    ok, reason = pacer.can_spend("c1", G, Decimal("100.00"))
    assert not ok and "circuit breaker" in reason
    assert "c1" in pacer.circuit_breakers
    with pytest.raises(KeyError):
        pacer.circuit_breakers["nope"]


def test_emergency_stop_and_resume() -> None:
    pacer, _ = pacer_at(10)
    pacer.allocate_hourly_budget("c1", G, Decimal("1000"))
    pacer.allocate_hourly_budget("c1", FB, Decimal("1000"))
    assert asyncio.run(pacer.emergency_stop("c1", "Manual intervention required"))
    for c in (G, FB):
        assert pacer.circuit_breakers["c1"][c].state is CircuitBreakerState.OPEN
        ok, reason = pacer.can_spend("c1", c, Decimal("1"))
        assert not ok and "Manual intervention required" in reason
    assert asyncio.run(pacer.resume("c1")) is True
    assert pacer.can_spend("c1", G, Decimal("1"))[0]
    assert asyncio.run(pacer.resume("c1")) is False  # nothing to resume


# -- configurable attributes ------------------------------------------------------------------
def test_configurable_attribute_defaults() -> None:
    pacer = BudgetPacer()
    assert pacer.max_hourly_spend_pct == 0.15
    assert pacer.frontload_protection_hours == 4
    assert pacer.emergency_stop_threshold == 0.90
    assert pacer.pace_warning_threshold == 1.5


def _peaked_pacer() -> BudgetPacer:
    """A campaign whose history puts ~40% of the traffic into hour 12."""
    pacer, _ = pacer_at(0)
    for d in range(1, 8):
        for hour in range(24):
            when = DAY - timedelta(days=d) + timedelta(hours=hour)
            clicks = 400 if hour == 12 else 25
            pacer.record_spend(tx("1.00", when, clicks=clicks, conversions=clicks // 20))
    pacer.allocate_hourly_budget("c1", G, Decimal("1000"), PacingStrategy.HISTORICAL_PATTERN)
    return pacer


def test_lowering_max_hourly_spend_pct_changes_the_plan() -> None:
    pacer = _peaked_pacer()
    before = pacer.hourly_allocations("c1", G)
    assert before[12].amount == Decimal("150.000000")
    pacer.max_hourly_spend_pct = 0.12
    after = pacer.hourly_allocations("c1", G)
    assert after[12].amount == Decimal("120.000000")
    assert sum(a.amount for a in after) == Decimal("1000")
    assert pacer.thresholds.max_hourly_spend_pct == 0.12


def test_frontload_protection_hours_takes_effect() -> None:
    pacer, _ = pacer_at(0)
    pacer.allocate_hourly_budget("c1", G, Decimal("2400"), PacingStrategy.EVEN_DISTRIBUTION)
    assert pacer.hourly_allocations("c1", G)[5].amount > Decimal("100")
    pacer.frontload_protection_hours = 6
    allocs = pacer.hourly_allocations("c1", G)
    assert all(a.amount <= Decimal("50") for a in allocs[:6])
    assert allocs[6].amount > Decimal("100")


def test_thresholds_take_effect_on_alerts() -> None:
    alerts: list[PacingAlert] = []
    pacer, clock = pacer_at(0, alert_callback=alerts.append)
    pacer.pace_warning_threshold = 1.3
    pacer.emergency_stop_threshold = 0.5
    pacer.max_hourly_spend_pct = 1.0
    pacer.frontload_protection_hours = 0
    pacer.allocate_hourly_budget("c1", G, Decimal("2400"), PacingStrategy.EVEN_DISTRIBUTION)
    clock.now = DAY + timedelta(hours=6)  # planned 600
    pacer.record_spend(tx("840", DAY + timedelta(hours=5)))  # ratio 1.4, 35% spent
    assert [a.alert_type for a in alerts] == ["warning_overpacing"]
    pacer.record_spend(tx("460", DAY + timedelta(hours=5)))  # 54% spent, 29% ahead
    assert "emergency_stop_required" in [a.alert_type for a in alerts]


def test_invalid_attribute_values_raise_and_change_nothing() -> None:
    pacer = BudgetPacer()
    with pytest.raises(ValueError, match="max_hourly_spend_pct"):
        pacer.max_hourly_spend_pct = 1.5
    with pytest.raises(TypeError):
        pacer.frontload_protection_hours = 2.5
    assert pacer.max_hourly_spend_pct == 0.15
    assert pacer.frontload_protection_hours == 4


# -- alert callbacks ---------------------------------------------------------------------------
def _overpace(pacer: BudgetPacer, clock: Clock) -> None:
    pacer.allocate_hourly_budget("c1", G, Decimal("1000"))
    clock.now = DAY + timedelta(hours=10)
    pacer.record_spend(tx("950.00", DAY + timedelta(hours=9)))


def test_sync_callback_receives_every_alert_once() -> None:
    got: list[PacingAlert] = []
    pacer, clock = pacer_at(0, alert_callback=got.append)
    _overpace(pacer, clock)
    kinds = [a.alert_type for a in got]
    assert "circuit_breaker_open" in kinds and "emergency_stop_required" in kinds
    assert len(kinds) == len(set(kinds))
    for a in got:
        assert isinstance(a, PacingAlert)
        assert a.campaign_id == "c1" and a.channel is G
        assert a.current_spend == Decimal("950.000000")
        assert a.severity in {"low", "medium", "high", "critical"}
    n = len(got)
    pacer.check_pace("c1", G)
    pacer.check_pace("c1", G)
    assert len(got) == n  # no repeats for the same condition
    assert pacer.alerts == got


def test_check_pace_returns_the_current_alert() -> None:
    pacer, clock = pacer_at(0)
    _overpace(pacer, clock)
    ratio, alert = pacer.check_pace("c1", G)
    assert ratio > 1.5
    assert alert is not None and alert.alert_type == "circuit_breaker_open"


def test_async_callback_from_sync_code_without_a_loop() -> None:
    got: list[PacingAlert] = []

    async def handler(alert: PacingAlert) -> None:
        got.append(alert)

    pacer, clock = pacer_at(0, alert_callback=handler)
    _overpace(pacer, clock)
    assert "circuit_breaker_open" in [a.alert_type for a in got]


async def test_async_callback_inside_a_running_loop() -> None:
    got: list[PacingAlert] = []

    async def handler(alert: PacingAlert) -> None:
        got.append(alert)

    pacer, clock = pacer_at(0, alert_callback=handler)
    _overpace(pacer, clock)  # sync call inside the loop: callbacks scheduled as tasks
    pending = asyncio.all_tasks() - {asyncio.current_task()}
    await asyncio.gather(*pending)
    assert "circuit_breaker_open" in [a.alert_type for a in got]
    got.clear()
    await pacer.emergency_stop("c1", "stop")  # async method: callbacks awaited
    pacer.allocate_hourly_budget("c1", FB, Decimal("10"))
    await pacer.resume("c1")
    await pacer.emergency_stop("c1", "again")
    assert [a.alert_type for a in got] == ["circuit_breaker_open"] * 2


# -- typed errors with helpful messages ----------------------------------------------------------
@pytest.mark.parametrize(
    ("amount", "error", "words"),
    [
        (Decimal("-1"), InvalidAmount, "positive"),
        (Decimal("0"), InvalidAmount, "positive"),
        (Decimal("NaN"), InvalidAmount, "finite"),
        (Decimal("Infinity"), InvalidAmount, "finite"),
        (1.5, WrongType, "decimal.Decimal"),
        (100, WrongType, "decimal.Decimal"),
        ("5.00", WrongType, "decimal.Decimal"),
    ],
)
def test_bad_amounts(amount: object, error: type[Exception], words: str) -> None:
    pacer, clock = pacer_at(10)
    pacer.allocate_hourly_budget("c1", G, Decimal("1000"))
    with pytest.raises(error, match=words) as exc:
        pacer.can_spend("c1", G, amount)  # type: ignore[arg-type]
    assert isinstance(exc.value, PacerError)
    assert isinstance(exc.value, TypeError if error is WrongType else ValueError)
    assert "amount" in str(exc.value)
    with pytest.raises(error):
        pacer.reserve("c1", G, amount)  # type: ignore[arg-type]
    if amount != Decimal("0"):  # a zero-amount spend is a fact (clicks without cost)
        with pytest.raises(error):
            pacer.record_spend(SpendTransaction("c1", G, amount, clock.now))  # type: ignore[arg-type]


def test_unknown_channel_strings() -> None:
    pacer, _ = pacer_at(10)
    pacer.allocate_hourly_budget("c1", G, Decimal("1000"))
    with pytest.raises(UnknownChannel, match="expected one of: google_ads") as exc:
        pacer.can_spend("c1", "myspace", Decimal("1"))  # type: ignore[arg-type]
    assert isinstance(exc.value, LookupError) and isinstance(exc.value, PacerError)
    with pytest.raises(UnknownChannel):
        pacer.allocate_hourly_budget("c1", "myspace", Decimal("1"))  # type: ignore[arg-type]
    with pytest.raises(UnknownChannel):
        pacer.check_pace("c1", 3)  # type: ignore[arg-type]
    # the original's string values are accepted
    assert pacer.can_spend("c1", "google_ads", Decimal("1"))[0]  # type: ignore[arg-type]


def test_unknown_campaigns() -> None:
    pacer, _ = pacer_at(10)
    with pytest.raises(UnknownCampaign, match="nope") as exc:
        pacer.check_pace("nope", G)
    assert isinstance(exc.value, LookupError)
    with pytest.raises(UnknownCampaign):
        asyncio.run(pacer.reallocate_unused("nope"))
    with pytest.raises(UnknownCampaign):
        asyncio.run(pacer.emergency_stop("nope", "x"))
    # can_spend fails safe: a denial, not an exception
    ok, reason = pacer.can_spend("nope", G, Decimal("1"))
    assert not ok and "unknown campaign" in reason


@pytest.mark.parametrize("budget", [Decimal("0"), Decimal("-10"), Decimal("0.0000001")])
def test_non_positive_budgets(budget: Decimal) -> None:
    pacer, _ = pacer_at(0)
    with pytest.raises(InvalidArgument, match="daily_budget") as exc:
        pacer.allocate_hourly_budget("c1", G, budget)
    assert isinstance(exc.value, ValueError)
    if budget <= 0:
        assert isinstance(exc.value, InvalidBudget)
    with pytest.raises(WrongType):
        pacer.allocate_hourly_budget("c1", G, 100.0)  # type: ignore[arg-type]
    with pytest.raises(WrongType):
        pacer.allocate_hourly_budget("c1", G, Decimal(10), "even")  # type: ignore[arg-type]


def test_bad_transactions() -> None:
    pacer, _ = pacer_at(10)
    with pytest.raises(WrongType):
        pacer.record_spend({"campaign_id": "c1"})  # type: ignore[arg-type]
    with pytest.raises(WrongType, match="timestamp"):
        pacer.record_spend(SpendTransaction("c1", G, Decimal("1"), "2026-03-02"))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="clicks"):
        pacer.record_spend(tx("1", DAY + timedelta(hours=9), clicks=-1))


# -- time: naive datetimes are UTC ----------------------------------------------------------------
def test_naive_datetimes_are_read_as_utc() -> None:
    naive_clock = Clock(datetime(2026, 3, 2, 10, 0))  # like datetime.utcnow()
    pacer = BudgetPacer(clock=naive_clock)
    pacer.allocate_hourly_budget("c1", G, Decimal("2400"), PacingStrategy.EVEN_DISTRIBUTION)
    assert pacer.record_spend(SpendTransaction("c1", G, Decimal("5"), datetime(2026, 3, 2, 9, 30)))
    status = pacer.status("c1")
    assert status["google_ads"]["spent"] == Decimal("5")
    perf = pacer.performance("c1", G)
    assert perf.today.spend_micros == 5_000_000
    # the same instant given aware lands in the same hour
    assert pacer.record_spend(SpendTransaction("c1", G, Decimal("5"),
                                               datetime(2026, 3, 2, 9, 30, tzinfo=UTC)))
    assert perf.hourly[9].spend_micros == 5_000_000
    assert pacer.performance("c1", G).hourly[9].spend_micros == 10_000_000


def test_transaction_id_makes_recording_idempotent() -> None:
    pacer, clock = pacer_at(10)
    pacer.allocate_hourly_budget("c1", G, Decimal("1000"))
    t = tx("3.50", clock.now, transaction_id="t-1")
    assert pacer.record_spend(t) is True
    assert pacer.record_spend(t) is False
    assert pacer.status("c1")["google_ads"]["spent"] == Decimal("3.5")
    # without an id every call is a new fact, as in the original
    assert pacer.record_spend(tx("1", clock.now)) and pacer.record_spend(tx("1", clock.now))
    assert pacer.status("c1")["google_ads"]["spent"] == Decimal("5.5")


def test_reserve_and_settle_through_the_facade() -> None:
    pacer, clock = pacer_at(12)
    pacer.allocate_hourly_budget("c1", G, Decimal("1000"))
    r = pacer.reserve("c1", G, Decimal("2.00"), request_id="q1")
    assert r.allowed and r.code == "ok" and r.reservation_id
    assert r.expires_at == clock.now + timedelta(seconds=60)
    assert r.remaining == Decimal("998")
    assert pacer.reserve("c1", G, Decimal("2.00"), request_id="q1").reservation_id == \
        r.reservation_id
    pacer.record_spend(tx("1.50", clock.now, reservation_id=r.reservation_id))
    status = pacer.status("c1")["google_ads"]
    assert status["reserved"] == 0 and status["spent"] == Decimal("1.5")
    r2 = pacer.reserve("c1", G, Decimal("2.00"))
    assert pacer.release("c1", G, r2.reservation_id)  # type: ignore[arg-type]
    denied = pacer.reserve("c1", G, Decimal("5000"))
    assert not denied.allowed and denied.code == "daily_budget_exhausted"
