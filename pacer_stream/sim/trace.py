"""What one strategy did on one seeded day: the common record every metric reads.

Controllers differ (the real engine, vectorised baselines, the oracle), but they all
produce a :class:`Trace`, so every metric is computed once, the same way, for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(slots=True)
class RunawayOutcome:
    campaign: int
    channel: int
    start_minute: int
    #: Minutes from the first *reported* unauthorised spend (the first costed event's
    #: spend time plus its reporting delay) until the bidder was stopped; 0 when it was
    #: stopped before it spent anything, the incident's length when nothing stopped it.
    detect_minutes: float
    #: Unauthorised spend the runaway bidder got out (micros).
    excess_micros: int
    stopped: bool
    #: The incident is on a late-reporting channel.
    late: bool = False
    #: Latency plus the platform's reporting delay of this channel's events (s).
    report_delay_s: float = 0.0
    #: Seconds from local midnight of the first costed unauthorised spend, and of the
    #: stop (None: none / never).
    first_spend_s: float | None = None
    stop_s: float | None = None
    #: The part of ``excess_micros`` spent once the first unauthorised spend could have
    #: been reported (its time + ``report_delay_s``): what a controller could have
    #: stopped. The rest was bought before any controller could know of the bidder.
    excess_after_report_micros: int = 0

    def spent(self, t: float, amount: int) -> None:
        """The broken bidder got ``amount`` out at ``t`` (s from local midnight)."""
        self.excess_micros += amount
        if self.first_spend_s is None:
            self.first_spend_s = t
        elif t >= self.first_spend_s + self.report_delay_s:
            self.excess_after_report_micros += amount

    def stop(self, t: float) -> None:
        """The bidder saw the kill switch at ``t`` (s from local midnight)."""
        if self.stopped:
            return
        self.stopped = True
        self.stop_s = t
        first = self.first_spend_s
        if first is None:
            self.detect_minutes = 0.0
        else:
            self.detect_minutes = max(0.0, (t - first - self.report_delay_s) / 60.0)

    @property
    def detect_from_spend_minutes(self) -> float:
        """Minutes from the first unauthorised spend itself to the stop (the late-platform
        figure: judged against the reporting delay + 1 minute); the incident's length
        when nothing stopped it, 0 when nothing was spent before the stop."""
        if self.stop_s is None:
            return self.detect_minutes
        if self.first_spend_s is None:
            return 0.0
        return max(0.0, (self.stop_s - self.first_spend_s) / 60.0)


@dataclass(slots=True)
class Timeline:
    """Second-level record of one campaign's runaway incident (for the chart)."""

    campaign: int
    channel: int
    start_s: float
    end_s: float
    #: (seconds from local midnight, micros) of every spend on the runaway channel.
    spend: list[tuple[float, int]] = field(default_factory=list)
    #: (seconds, state) of every breaker transition on the runaway channel.
    breaker: list[tuple[float, str]] = field(default_factory=list)
    #: (seconds, alert type) of every alert on the runaway channel.
    alerts: list[tuple[float, str]] = field(default_factory=list)


@dataclass(slots=True)
class PerfOutcome:
    """Collapse scenario, one campaign: when the engine reacted on the watched
    (collapsed) channel. Times are seconds from local midnight, None = never."""

    campaign: int
    channel: int
    collapse_s: float
    #: First moment at or after the collapse the channel was in violation of a
    #: performance threshold (its pacing multiplier throttled from then on).
    throttle_s: float | None = None
    #: First ``performance_threshold`` denial at or after the collapse, and the start of
    #: the violation episode it belonged to (the grace counts from there).
    denial_s: float | None = None
    denial_episode_s: float | None = None
    #: First ``performance_degradation`` alert at or after the collapse.
    alert_s: float | None = None
    #: Violation episodes that started before the collapse (any channel) and on the
    #: other channels (any time): false positives of the floor.
    episodes_before: int = 0
    episodes_other: int = 0
    #: ``performance_threshold`` denials on the other channels.
    denials_other: int = 0
    #: Conversions per channel from the collapse on.
    conversions_after: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Trace:
    strategy: str
    #: True spend by the minute it happened [C, H, M] (micros, runaway included).
    spend: np.ndarray
    #: Realised conversions [C, H].
    conversions: np.ndarray
    #: Planned cumulative campaign spend at each minute boundary [C, M + 1].
    plan: np.ndarray
    #: The channel could still spend at the start of the minute [C, H, M] (not blocked
    #: by a breaker or stop, budget left).
    able: np.ndarray
    #: Final channel budgets [C, H] (differ from the configured ones after reallocation;
    #: the campaign sums never change).
    budget: np.ndarray
    #: Channel budgets the day started from [C, H]: the configured ones, or the split
    #: the controller learned from the days before (pacer-stream moves it at the day's
    #: first tick), before any intraday move.
    start_budget: np.ndarray
    #: Spend the controller's own books hold, and the spend of the unique events sent.
    recorded_micros: int
    unique_micros: int
    #: Largest single spend event per channel [C, H] (overspend of one in-flight event).
    max_event: np.ndarray
    runaways: list[RunawayOutcome] = field(default_factory=list)
    timeline: Timeline | None = None
    counters: dict[str, int] = field(default_factory=dict)
    #: Collapse scenario only: one record per campaign.
    perf: list[PerfOutcome] = field(default_factory=list)


def empty_trace(strategy: str, n_c: int, n_h: int, n_m: int, budget: np.ndarray) -> Trace:
    return Trace(
        strategy=strategy,
        spend=np.zeros((n_c, n_h, n_m), dtype=np.int64),
        conversions=np.zeros((n_c, n_h), dtype=np.int64),
        plan=np.zeros((n_c, n_m + 1), dtype=np.float64),
        able=np.ones((n_c, n_h, n_m), dtype=bool),
        budget=budget.copy(),
        start_budget=budget.copy(),
        recorded_micros=0,
        unique_micros=0,
        max_event=np.zeros((n_c, n_h), dtype=np.int64),
    )
