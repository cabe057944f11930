"""Every code example of the original Budget Pacer documentation, run against pacer-stream
with only the import line changed (``from budget_pacer import`` -> ``from pacer_stream
import``).

The twelve ``python`` blocks of the original documentation are copied below verbatim, in
document order (only trailing blanks at line ends were dropped). The documentation reads as
one session: later snippets use ``pacer`` from the first one, ``datetime`` and
``SpendTransaction`` are used but never imported, and the alert handler calls two
functions the reader is meant to supply. The tests provide exactly that context and
nothing else; the example text itself is executed as written (snippets with a top-level
``await`` are compiled as an asyncio REPL would compile them).

The clock is injected the way a test injects it into any program that constructs
``BudgetPacer()`` itself: ``pacer_stream``'s ``BudgetPacer`` is replaced by a subclass
whose default clock is the test's clock, and the ``datetime`` the docs forgot to import
answers ``utcnow()`` from the same clock. One test also runs the whole session on the real
wall clock, unpatched. The endless monitoring loop runs with ``asyncio.sleep`` patched to
advance the clock and to stop the loop after a few iterations, so its body really runs.
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import inspect
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

import pacer_stream
import pacer_stream.api
from pacer_stream import ChannelType, CircuitBreakerState, SpendTransaction
from pacer_stream.api import BudgetPacer, PacingAlert

EXAMPLES: dict[str, str] = {
    "allocate": """\
from budget_pacer import BudgetPacer, ChannelType, PacingStrategy
from decimal import Decimal

pacer = BudgetPacer()
allocations = pacer.allocate_hourly_budget(
    campaign_id="campaign_001",
    channel=ChannelType.GOOGLE_ADS,
    daily_budget=Decimal('1000.00'),
    strategy=PacingStrategy.ADAPTIVE_HYBRID
)
""",
    "check_pace": """\
pace_ratio, alert = pacer.check_pace("campaign_001", ChannelType.GOOGLE_ADS)
if pace_ratio > 1.5:
    print(f"Warning: Spending {pace_ratio:.1f}x faster than target pace")
""",
    "reallocate": """\
reallocation_results = await pacer.reallocate_unused("campaign_001")
for channel, amount in reallocation_results.items():
    action = "increased" if amount > 0 else "decreased"
    print(f"{channel}: Budget {action} by ${abs(amount):.2f}")
""",
    "circuit_breaker": """\
# Automatic trigger
can_spend, reason = pacer.can_spend("campaign_001", ChannelType.GOOGLE_ADS, Decimal('100.00'))
if not can_spend and "circuit breaker" in reason:
    print("Circuit breaker has opened - spending blocked")

# Manual emergency stop
success = await pacer.emergency_stop("campaign_001", "Manual intervention required")
""",
    "spend_authorization": """\
can_spend, reason = pacer.can_spend(
    campaign_id="campaign_001",
    channel=ChannelType.GOOGLE_ADS,
    amount=Decimal('150.00')
)

if can_spend:
    # Record the transaction
    transaction = SpendTransaction(
        campaign_id="campaign_001",
        channel=ChannelType.GOOGLE_ADS,
        amount=Decimal('150.00'),
        timestamp=datetime.utcnow(),
        clicks=60,
        conversions=5
    )
    pacer.record_spend(transaction)
else:
    print(f"Spend blocked: {reason}")
""",
    "alert_handler": """\
async def alert_handler(alert):
    if alert.severity == "critical":
        # Implement immediate action
        await emergency_response(alert)
    elif alert.severity == "high":
        # Implement corrective measures
        await adjust_bids(alert)
""",
    "basic_integration": """\
import asyncio
from budget_pacer import BudgetPacer, ChannelType, PacingStrategy
from decimal import Decimal

async def main():
    # Initialize pacer
    pacer = BudgetPacer()

    # Set up campaign
    allocations = pacer.allocate_hourly_budget(
        campaign_id="my_campaign",
        channel=ChannelType.GOOGLE_ADS,
        daily_budget=Decimal('1000.00'),
        strategy=PacingStrategy.ADAPTIVE_HYBRID
    )

    # Authorization check before spending
    can_spend, reason = pacer.can_spend(
        "my_campaign",
        ChannelType.GOOGLE_ADS,
        Decimal('50.00')
    )

    if can_spend:
        print("Spend authorized - proceed with transaction")
    else:
        print(f"Spend blocked: {reason}")

asyncio.run(main())
""",
    "multichannel": """\
async def setup_multichannel_campaign():
    pacer = BudgetPacer()
    campaign_id = "multichannel_campaign"

    # Set up multiple channels
    channels = [
        (ChannelType.GOOGLE_ADS, Decimal('2000.00'), PacingStrategy.PREDICTIVE_ML),
        (ChannelType.FACEBOOK_ADS, Decimal('1500.00'), PacingStrategy.PERFORMANCE_WEIGHTED),
        (ChannelType.TIKTOK_ADS, Decimal('1000.00'), PacingStrategy.ADAPTIVE_HYBRID),
    ]

    for channel, budget, strategy in channels:
        allocations = pacer.allocate_hourly_budget(
            campaign_id, channel, budget, strategy
        )
        print(f"Set up {channel.value} with ${budget} budget")

    # Simulate spending and monitoring
    while True:
        # Check if spending is allowed
        for channel, budget, _ in channels:
            spend_amount = Decimal('25.00')  # Example spend
            can_spend, reason = pacer.can_spend(campaign_id, channel, spend_amount)

            if can_spend:
                # Record transaction (implement actual spending logic)
                print(f"Authorized ${spend_amount} spend on {channel.value}")
            else:
                print(f"Blocked spend on {channel.value}: {reason}")

        # Check for budget reallocation opportunities
        reallocation = await pacer.reallocate_unused(campaign_id)
        if reallocation:
            print(f"Reallocated budget: {reallocation}")

        await asyncio.sleep(300)  # Check every 5 minutes
""",
    "configuration": """\
pacer = BudgetPacer()

# Customize pacing parameters
pacer.max_hourly_spend_pct = 0.12  # Max 12% per hour (default: 15%)
pacer.frontload_protection_hours = 6  # Protect first 6 hours (default: 4)
pacer.emergency_stop_threshold = 0.85  # Stop at 85% of budget (default: 90%)
pacer.pace_warning_threshold = 1.3  # Alert at 1.3x pace (default: 1.5x)
""",
    "performance_thresholds": """\
# Set performance-based limits
min_conversion_rate = 0.02  # 2% minimum
max_cost_per_click = 5.00   # $5.00 maximum
target_roas = 3.0          # 3:1 return on ad spend

# These can be integrated into authorization logic
""",
    "spend_transaction_class": """\
@dataclass
class SpendTransaction:
    campaign_id: str
    channel: ChannelType
    amount: Decimal
    timestamp: datetime
    clicks: int = 0
    conversions: int = 0
    cost_per_click: float = 0.0
    conversion_rate: float = 0.0
""",
    "pacing_alert_class": """\
@dataclass
class PacingAlert:
    alert_type: str
    campaign_id: str
    channel: Optional[ChannelType]
    current_spend: Decimal
    pace_ratio: float
    recommended_action: str
    severity: str
""",
}


DAY = datetime(2026, 3, 2, tzinfo=UTC)


def runnable(name: str) -> str:
    """The example with only its import line changed."""
    src = EXAMPLES[name].replace("from budget_pacer import", "from pacer_stream import")
    changed = [
        (a, b)
        for a, b in zip(EXAMPLES[name].splitlines(), src.splitlines(), strict=True)
        if a != b
    ]
    assert all(a.startswith("from budget_pacer import") for a, _ in changed)
    return src


def imports_of(name: str) -> str:
    """The import lines of an example (later snippets rely on them)."""
    return "\n".join(line for line in runnable(name).splitlines()
                     if line.startswith(("import ", "from ")))


def compiled(name: str) -> Any:
    return compile(runnable(name), f"<doc example {name}>", "exec",
                   flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def run(name: str, ns: dict[str, Any]) -> None:
    """Run an example in ``ns``; one with a top-level ``await`` runs in an event loop."""
    result = eval(compiled(name), ns)  # exec-mode code: None, or a coroutine
    if inspect.iscoroutine(result):
        asyncio.run(result)


class DocClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def at(self, hour: int, minute: int = 0) -> None:
        self.now = DAY + timedelta(hours=hour, minutes=minute)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> DocClock:
    """Every ``BudgetPacer()`` the examples construct runs on this clock."""
    clk = DocClock(DAY)

    class ClockedPacer(BudgetPacer):
        def __init__(self, alert_callback: Any = None, clock: Any = None, **kw: Any) -> None:
            super().__init__(alert_callback, clock or clk, **kw)

    monkeypatch.setattr(pacer_stream.api, "BudgetPacer", ClockedPacer)
    return clk


def session(clock: DocClock | None) -> dict[str, Any]:
    """What a reader of the docs has at hand besides the examples: ``datetime`` and
    ``SpendTransaction`` (used, never imported by the docs) and the two functions the
    alert-handling example expects the reader to write."""
    calls: list[tuple[str, PacingAlert]] = []

    async def emergency_response(alert: PacingAlert) -> None:
        calls.append(("emergency_response", alert))

    async def adjust_bids(alert: PacingAlert) -> None:
        calls.append(("adjust_bids", alert))

    dt: type[datetime] = datetime
    if clock is not None:
        class FrozenDatetime(datetime):
            @classmethod
            def utcnow(cls) -> FrozenDatetime:  # type: ignore[override]
                now = clock().astimezone(UTC).replace(tzinfo=None)
                return cls(*now.timetuple()[:6], now.microsecond)

        dt = FrozenDatetime
    return {
        "__name__": "__doc_session__",
        "datetime": dt,
        "SpendTransaction": SpendTransaction,
        "emergency_response": emergency_response,
        "adjust_bids": adjust_bids,
        "handler_calls": calls,
    }


def record(ns: dict[str, Any], amount: str, when: datetime, **kw: Any) -> None:
    """Set-up spend for a scenario (not part of any example)."""
    ns["pacer"].record_spend(SpendTransaction(
        "campaign_001", kw.pop("channel", ChannelType.GOOGLE_ADS), Decimal(amount), when, **kw))


def test_all_twelve_examples_are_here() -> None:
    assert len(EXAMPLES) == 12
    assert sum("from budget_pacer import" in src for src in EXAMPLES.values()) == 2
    for name in EXAMPLES:
        compiled(name)  # every example is valid Python as written


# -- 1. allocate_hourly_budget -----------------------------------------------------------
def test_allocate_example(clock: DocClock) -> None:
    ns = session(clock)
    run("allocate", ns)
    allocations = ns["allocations"]
    assert len(allocations) == 24
    assert sum(a.amount for a in allocations) == Decimal("1000.00")
    assert isinstance(ns["pacer"], BudgetPacer)


# -- 2. check_pace ------------------------------------------------------------------------
@pytest.mark.parametrize("overpacing", [False, True])
def test_check_pace_example(clock: DocClock, overpacing: bool,
                            capsys: pytest.CaptureFixture[str]) -> None:
    ns = session(clock)
    run("allocate", ns)
    clock.at(10)
    record(ns, "600.00" if overpacing else "200.00", DAY + timedelta(hours=9))
    run("check_pace", ns)
    out = capsys.readouterr().out
    if overpacing:
        assert ns["pace_ratio"] > 1.5
        assert f"Warning: Spending {ns['pace_ratio']:.1f}x faster than target pace" in out
    else:
        assert ns["pace_ratio"] <= 1.5 and out == ""


# -- 3. reallocate_unused -------------------------------------------------------------------
def test_reallocate_example(clock: DocClock, capsys: pytest.CaptureFixture[str]) -> None:
    ns = session(clock)
    run("allocate", ns)
    ns["pacer"].allocate_hourly_budget("campaign_001", ChannelType.FACEBOOK_ADS,
                                       Decimal("1000.00"))
    clock.at(12)
    record(ns, "300.00", DAY + timedelta(hours=11), clicks=300, conversions=2)
    record(ns, "300.00", DAY + timedelta(hours=11), clicks=300, conversions=60,
           channel=ChannelType.FACEBOOK_ADS)
    run("reallocate", ns)
    results = ns["reallocation_results"]
    assert results[ChannelType.GOOGLE_ADS] < 0 < results[ChannelType.FACEBOOK_ADS]
    assert sum(results.values()) == 0
    out = capsys.readouterr().out
    assert f"google_ads: Budget decreased by ${abs(results[ChannelType.GOOGLE_ADS]):.2f}" in out
    assert "facebook_ads: Budget increased by $" in out


# -- 4. circuit breaker + emergency stop -------------------------------------------------------
@pytest.mark.parametrize("tripped", [False, True])
def test_circuit_breaker_example(clock: DocClock, tripped: bool,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    ns = session(clock)
    run("allocate", ns)
    clock.at(18, 55)  # the hour's whole allowance (> 100) is released
    if tripped:  # runaway spend reported by the platform, far ahead of plan
        record(ns, "950.00", DAY + timedelta(hours=17))
    run("circuit_breaker", ns)
    out = capsys.readouterr().out
    if tripped:
        assert not ns["can_spend"] and "circuit breaker" in ns["reason"]
        assert "Circuit breaker has opened - spending blocked" in out
    else:
        assert ns["can_spend"] is True and out == ""
    assert ns["success"] is True
    breakers = ns["pacer"].circuit_breakers["campaign_001"]
    assert breakers[ChannelType.GOOGLE_ADS].state is CircuitBreakerState.OPEN
    assert not ns["pacer"].can_spend("campaign_001", ChannelType.GOOGLE_ADS, Decimal("1"))[0]


# -- 5. spend authorization ------------------------------------------------------------------
@pytest.mark.parametrize(("hour", "minute", "authorised"), [(0, 0, False), (18, 55, True)])
def test_spend_authorization_example(clock: DocClock, hour: int, minute: int,
                                     authorised: bool,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    ns = session(clock)
    run("allocate", ns)  # at midnight: the whole day is planned
    clock.at(hour, minute)
    run("spend_authorization", ns)
    out = capsys.readouterr().out
    spent = ns["pacer"].status("campaign_001")["google_ads"]["spent"]
    if authorised:
        assert ns["can_spend"] is True and out == ""
        assert ns["transaction"].amount == Decimal("150.00")
        assert spent == Decimal("150.00")
    else:
        assert ns["can_spend"] is False
        assert out.startswith("Spend blocked: hourly allowance reached")
        assert spent == 0


# -- 6. alert handling --------------------------------------------------------------------------
def test_alert_handler_example(clock: DocClock) -> None:
    ns = session(clock)
    run("alert_handler", ns)
    handler = ns["alert_handler"]
    assert inspect.iscoroutinefunction(handler)
    pacer = BudgetPacer(alert_callback=handler, clock=clock)
    pacer.max_hourly_spend_pct = 1.0
    pacer.frontload_protection_hours = 0
    pacer.allocate_hourly_budget("campaign_001", ChannelType.GOOGLE_ADS, Decimal("2400"))
    clock.at(10)
    # 2.1x the plan: critical_overpacing, severity "high" -> adjust_bids
    pacer.record_spend(SpendTransaction("campaign_001", ChannelType.GOOGLE_ADS,
                                        Decimal("2100"), DAY + timedelta(hours=9)))
    # an emergency stop opens the breakers: severity "critical" -> emergency_response
    asyncio.run(pacer.emergency_stop("campaign_001", "test"))
    called = [(name, a.alert_type, a.severity) for name, a in ns["handler_calls"]]
    assert ("adjust_bids", "critical_overpacing", "high") in called
    assert ("emergency_response", "circuit_breaker_open", "critical") in called
    assert all((sev == "critical") == (name == "emergency_response") for name, _, sev in called)


# -- 7. basic integration -----------------------------------------------------------------------
@pytest.mark.parametrize(("hour", "authorised"), [(0, False), (23, True)])
def test_basic_integration_example(clock: DocClock, hour: int, authorised: bool,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    clock.at(hour)
    ns = session(clock)
    run("basic_integration", ns)  # ends with asyncio.run(main())
    out = capsys.readouterr().out
    if authorised:
        assert out == "Spend authorized - proceed with transaction\n"
    else:
        assert out.startswith("Spend blocked: hourly allowance reached")


# -- 8. the endless multichannel loop, bounded ----------------------------------------------------
class StopLoop(Exception):
    pass


def test_multichannel_example_runs_its_loop(clock: DocClock, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    ns = session(clock)
    # the snippet relies on the imports of the basic integration example above it
    exec(imports_of("basic_integration"), ns)
    run("multichannel", ns)
    clock.at(9)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.now += timedelta(seconds=seconds)  # time passes while the loop waits
        if len(sleeps) == 12:
            raise StopLoop

    monkeypatch.setattr(asyncio, "sleep", sleep)
    with pytest.raises(StopLoop):
        asyncio.run(ns["setup_multichannel_campaign"]())
    assert sleeps == [300] * 12
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == [
        "Set up google_ads with $2000.00 budget",
        "Set up facebook_ads with $1500.00 budget",
        "Set up tiktok_ads with $1000.00 budget",
    ]
    decisions = [line for line in out[3:] if line.startswith(("Authorized", "Blocked"))]
    assert len(decisions) == 12 * 3  # three channels checked on every iteration
    assert any(line.startswith("Authorized $25.00 spend on google_ads") for line in decisions)
    assert clock.now == DAY + timedelta(hours=10)


# -- 9/10. configuration ---------------------------------------------------------------------------
def test_configuration_example(clock: DocClock) -> None:
    ns = session(clock)
    exec(imports_of("allocate"), ns)  # the snippet uses the names imported above it
    run("configuration", ns)
    pacer = ns["pacer"]
    assert pacer.max_hourly_spend_pct == 0.12
    assert pacer.frontload_protection_hours == 6
    assert pacer.emergency_stop_threshold == 0.85
    assert pacer.pace_warning_threshold == 1.3
    # and they take effect: a new plan honours the 12% cap and 6 protected hours
    allocs = pacer.allocate_hourly_budget("c", ChannelType.GOOGLE_ADS, Decimal("2400"))
    assert max(a.amount for a in allocs) <= Decimal("288")
    assert all(a.amount <= Decimal("50") for a in allocs[:6])


def test_performance_thresholds_example() -> None:
    ns = session(None)
    run("performance_thresholds", ns)
    assert (ns["min_conversion_rate"], ns["max_cost_per_click"], ns["target_roas"]) == (
        0.02, 5.00, 3.0)


# -- 11/12. the documented data classes ------------------------------------------------------
def documented_fields(name: str) -> list[tuple[str, str | None]]:
    cls = ast.parse(EXAMPLES[name]).body[0]
    assert isinstance(cls, ast.ClassDef)
    return [
        (st.target.id, ast.unparse(st.value) if st.value is not None else None)
        for st in cls.body
        if isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name)
    ]


def test_spend_transaction_matches_the_documented_class() -> None:
    doc = documented_fields("spend_transaction_class")
    ours = dataclasses.fields(SpendTransaction)
    assert [f.name for f in ours[: len(doc)]] == [n for n, _ in doc]
    for (name, default), f in zip(doc, ours, strict=False):
        if default is None:
            assert f.default is dataclasses.MISSING, name
        else:
            assert f.default == ast.literal_eval(default), name


def test_pacing_alert_has_every_documented_field_in_order() -> None:
    doc = [n for n, _ in documented_fields("pacing_alert_class")]
    ours = [f.name for f in dataclasses.fields(PacingAlert)]
    assert [n for n in ours if n in doc] == doc


# -- the whole documentation as one session, on the real wall clock, unpatched ----------------
def test_whole_documentation_session_on_the_wall_clock(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ns = session(None)
    for name in ("allocate", "check_pace", "reallocate", "circuit_breaker",
                 "spend_authorization", "alert_handler", "basic_integration", "multichannel",
                 "configuration", "performance_thresholds"):
        run(name, ns)
    iterations = 0

    async def sleep(seconds: float) -> None:
        nonlocal iterations
        iterations += 1
        if iterations == 3:
            raise StopLoop

    monkeypatch.setattr(asyncio, "sleep", sleep)
    with pytest.raises(StopLoop):
        asyncio.run(ns["setup_multichannel_campaign"]())
    out = capsys.readouterr().out
    assert "Set up tiktok_ads with $1000.00 budget" in out
    assert out.count("spend on tiktok_ads") + out.count("Blocked spend on tiktok_ads") >= 3
    # the campaign of the first examples was stopped by the emergency-stop example
    assert not ns["pacer"].can_spend("campaign_001", ChannelType.GOOGLE_ADS, Decimal("1"))[0]
