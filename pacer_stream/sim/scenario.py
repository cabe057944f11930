"""What one simulated day looks like: sizes, the date, time zones and fault switches.

Every number that shapes the day lives here, with the reason for its value, so the
report can be reproduced from the command line alone and nobody tunes a figure inside
the simulation code.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from pacer_stream.core.types import ChannelType, PacingStrategy

#: A Tuesday with no DST transition in any of the zones below: every campaign's local
#: day has exactly 24 hourly slots (DST days are the core's unit tests' business).
SIM_DATE = date(2026, 6, 16)

#: Campaign time zones (IANA). The simulated day of a campaign is its local day.
ZONES: tuple[str, ...] = (
    "UTC",
    "America/New_York",
    "America/Los_Angeles",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Tokyo",
    "Australia/Sydney",
)

#: Channels in the order campaigns use them (the first ``channels`` are used).
CHANNELS: tuple[ChannelType, ...] = (
    ChannelType.GOOGLE_ADS,
    ChannelType.FACEBOOK_ADS,
    ChannelType.TIKTOK_ADS,
    ChannelType.DISPLAY,
    ChannelType.NATIVE,
    ChannelType.VIDEO,
    ChannelType.SEARCH,
    ChannelType.SHOPPING,
)

#: Multi-day runs (``--days N``) start so that the second evaluation day is the US
#: spring-forward day (a 23-hour local day in America/New_York and Los_Angeles): every
#: multi-day report crosses a DST switch.
DST_DAY = date(2026, 3, 8)

MINUTES = 1440
#: Opportunity batches per campaign/channel/minute: the bid engine asks for (and the
#: platform reports) auctions in up to this many batches a minute. Four keeps one batch
#: well under 1% of a channel budget while one day stays a few hundred thousand calls.
CHUNKS = 4

#: The product's strategies, each run through the engine (row name: the value in lower
#: case). ``pacer-stream`` is the row of the default one (ADAPTIVE_HYBRID).
PRODUCT_STRATEGIES: tuple[PacingStrategy, ...] = (
    PacingStrategy.EVEN_DISTRIBUTION,
    PacingStrategy.HISTORICAL_PATTERN,
    PacingStrategy.PERFORMANCE_WEIGHTED,
    PacingStrategy.PREDICTIVE_ML,
    PacingStrategy.ADAPTIVE_HYBRID,
)
DEFAULT_STRATEGY = PacingStrategy.ADAPTIVE_HYBRID
#: Strategies whose plans use a trained forecast (retrained every local midnight).
LEARNING: frozenset[PacingStrategy] = frozenset(
    {PacingStrategy.PREDICTIVE_ML, PacingStrategy.ADAPTIVE_HYBRID}
)
ORACLE_FREE = "oracle-free"
ORACLE_SPLIT = "oracle-split"


def row_name(strategy: PacingStrategy) -> str:
    """Report row of a product strategy."""
    return strategy.value.lower()


STRATEGIES: tuple[str, ...] = (
    "pacer-stream",
    *(row_name(s) for s in PRODUCT_STRATEGIES if s is not DEFAULT_STRATEGY),
    "asap",
    "even-gate",
    "traffic-gate",
    "original-rules",
    "throttle",
    ORACLE_SPLIT,
    ORACLE_FREE,
)

METRICS: tuple[str, ...] = (
    "utilisation",
    "overspend_share",
    "tracking_error",
    "exhausted_before_18",
    "exhausted_before_22",
    "alive",
    "conversions_per_unit",
    "oracle_share",
    "runaway_detect_minutes",
    "runaway_excess_share",
    "double_counted_micros",
    "reallocation_gain",
)

#: Direction of "worse" per metric, for the worst case over seeds.
HIGHER_IS_BETTER: dict[str, bool] = {
    "utilisation": True,
    "overspend_share": False,
    "tracking_error": False,
    "exhausted_before_18": False,
    "exhausted_before_22": False,
    "alive": True,
    "conversions_per_unit": True,
    "oracle_share": True,
    "runaway_detect_minutes": False,
    "runaway_excess_share": False,
    "double_counted_micros": False,
    "reallocation_gain": True,
}


@dataclass(frozen=True, slots=True)
class Faults:
    """Which faults are injected (all on by default: the full run)."""

    #: A bidder that stops asking for authorisation: 20x request rate, 3x cost.
    runaway: bool = True
    #: 1% of spend events delivered twice (same event id).
    duplicates: bool = True
    #: The worker stops processing for 2 minutes; events queue and are applied late.
    stall: bool = True
    #: Some platforms report every spend event 5 minutes late.
    late: bool = True

    runaway_rate: float = 20.0
    runaway_cost: float = 3.0
    runaway_minutes: int = 15
    #: Share of campaigns that get a runaway bidder on one channel (at least one).
    runaway_share: float = 0.05
    duplicate_share: float = 0.01
    stall_minutes: int = 2
    #: UTC hour of the stall: 10:00 UTC falls inside every zone's local day of SIM_DATE.
    stall_utc_hour: int = 10
    late_minutes: int = 5
    #: Share of campaign/channels whose platform reports late.
    late_share: float = 0.10

    @classmethod
    def none(cls) -> Faults:
        return cls(runaway=False, duplicates=False, stall=False, late=False)

    @property
    def any(self) -> bool:
        return self.runaway or self.duplicates or self.stall or self.late


@dataclass(frozen=True, slots=True)
class Collapse:
    """Scenario: one channel's conversion rate collapses mid-day.

    On each campaign's channel with the lowest normal conversion rate, conversions fall
    to ``factor`` of normal from ``start_minute`` (local). Performance thresholds are
    campaign-wide in the core (``Thresholds`` belongs to the campaign), so the floor,
    ``floor_share`` x that channel's normal rate, is below every other channel's normal
    rate only when the collapsed channel is the lowest-rate one.
    """

    start_minute: int = 12 * 60
    factor: float = 0.1
    floor_share: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.start_minute < MINUTES:
            raise ValueError("start_minute must be inside the day")
        if not 0 <= self.factor < 1:
            raise ValueError("factor must be in [0, 1)")
        if not 0 < self.floor_share <= 1:
            raise ValueError("floor_share must be in (0, 1]")


#: Bid landscape of the bid engine that applies the pacing multiplier: a bid
#: scaled by m wins m ** ELASTICITY times the clicks at m ** (1 - ELASTICITY) times the
#: cost per click, so its spend scales by m.
BID_ELASTICITY = 0.5


@dataclass(frozen=True, slots=True)
class Scenario:
    """One simulated day (the seed is separate: the same scenario runs over many)."""

    campaigns: int = 100
    channels: int = 3
    faults: Faults = field(default_factory=Faults)
    #: Reallocation timer of pacer-stream (simulated minutes).
    reallocate_every: int = 15
    #: Delivery latency of a spend event in seconds (platform -> Kafka -> worker).
    latency_s: float = 1.0
    #: Optional extras (off by default; they add runs, never change the default ones):
    #: pacer-stream with a bid engine that applies the pacing multiplier, and the
    #: conversion-collapse scenario.
    multiplier: bool = False
    collapse: Collapse | None = None
    #: Consecutive local days per seed, and how many of the first ones only build
    #: history (the report covers the other ``days - warmup_days``).
    days: int = 1
    warmup_days: int = 0

    def __post_init__(self) -> None:
        if self.days < 1 or not 0 <= self.warmup_days < self.days:
            raise ValueError("need days >= 1 and 0 <= warmup_days < days")
        if self.campaigns < 1:
            raise ValueError("campaigns must be >= 1")
        if not 1 <= self.channels <= len(CHANNELS):
            raise ValueError(f"channels must be between 1 and {len(CHANNELS)}")

    @property
    def start(self) -> date:
        """The first local day: SIM_DATE for one day, else the second evaluation day is
        the DST switch."""
        if self.days == 1:
            return SIM_DATE
        return DST_DAY - timedelta(days=self.warmup_days + min(1, self.days - self.warmup_days - 1))

    def date_of(self, day: int) -> date:
        return self.start + timedelta(days=day)

    def with_faults(self, faults: Faults) -> Scenario:
        return replace(self, faults=faults)
