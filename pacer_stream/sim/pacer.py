"""pacer-stream on the simulated day, through the real core engine, in-process.

The simulator plays three parts around :class:`~pacer_stream.core.engine.PacingEngine`
and takes no pacing decision itself:

* **the bid engine**: each minute, per channel, it calls ``reserve`` for each of the
  minute's auction batches (in arrival order) and, when allowed, the platform reports
  the batch's actual cost with the reservation id. A runaway bidder skips all of that
  and sends spend events until the breaker state it follows turns OPEN;
* **the ad platform**: spend events are delivered after a latency (5 minutes more on a
  late-reporting platform), 1% of them twice, and not at all during the stall;
* **the worker's clock and timers**: ``tick`` every simulated minute, ``reallocate``
  every 15 (or never, for the static-split comparison run).

Campaigns: ``ADAPTIVE_HYBRID``, the product's default strategy. The simulated day has no
earlier history, so the hybrid's data coverage is 0 and it plans like EVEN (frontload
protection and the 15% hour cap included); everything after that (rollover, velocity,
breakers, reallocation) is the engine's own behaviour.

Optional scenarios (off by default, so the default run is unchanged): a bid engine that
applies the pacing multiplier of each decision (``sim.bidding``), per-campaign
thresholds (the collapse scenario's performance floor) and a watch on one channel per
campaign that records when the engine throttled, denied and alerted on it.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from pacer_stream.adapters.forecast_runner import ForecastRunner
from pacer_stream.core.allocation import default_registry
from pacer_stream.core.engine import PacingEngine
from pacer_stream.core.forecast.service import ModelRegistry, snapshots_of
from pacer_stream.core.forecast.training import train
from pacer_stream.core.pacing import planned_at
from pacer_stream.core.state import CampaignState
from pacer_stream.core.types import (
    Alert,
    AlertType,
    BreakerTransition,
    CampaignConfig,
    ChannelConfig,
    CircuitBreakerState,
    Code,
    Decision,
    Output,
    PacingStrategy,
    SpendEvent,
    Thresholds,
)
from pacer_stream.sim.bidding import BidEngine
from pacer_stream.sim.faults import FaultPlan, Runaway
from pacer_stream.sim.scenario import CHUNKS, LEARNING, MINUTES
from pacer_stream.sim.trace import PerfOutcome, RunawayOutcome, Timeline, Trace, empty_trace
from pacer_stream.sim.traffic import Traffic

STRATEGY = PacingStrategy.ADAPTIVE_HYBRID
#: Batch k of a minute happens at (k + 0.5) x BATCH_S seconds into the minute.
BATCH_S = 60.0 / CHUNKS
OPEN = CircuitBreakerState.OPEN


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def run_pacer(
    traffic: Traffic,
    plan: FaultPlan,
    *,
    reallocate: bool = True,
    timeline_campaign: int | None = None,
    engine: PacingEngine | None = None,
    name: str | None = None,
    apply_multiplier: bool = False,
    thresholds: Sequence[Thresholds] | None = None,
    watch: Sequence[int] | None = None,
    watch_from_minute: int = 0,
) -> Trace:
    """Run every campaign of the day through the engine and return the trace.

    ``apply_multiplier``: the bid engine applies each decision's pacing multiplier
    (``sim.bidding``) instead of taking or skipping batches as offered.
    ``thresholds``: per-campaign engine thresholds (default: the engine's defaults).
    ``watch``: per campaign, a channel whose performance-threshold reactions from
    ``watch_from_minute`` on are recorded in ``trace.perf``.
    """
    engine = engine or PacingEngine()
    n_c, n_h = traffic.n_campaigns, traffic.n_channels
    if name is None:
        name = "pacer-stream" if reallocate else "pacer-stream-static"
    trace = empty_trace(name, n_c, n_h, MINUTES, traffic.budget)
    for c in range(n_c):
        camp = _Campaign(engine, traffic, plan, trace, c, reallocate, c == timeline_campaign)
        if apply_multiplier:
            camp.bidder = BidEngine(traffic, c)
        if thresholds is not None:
            camp.thresholds = thresholds[c]
        if watch is not None:
            camp.perf = PerfOutcome(
                c, watch[c], 60.0 * watch_from_minute, conversions_after=[0] * n_h
            )
            camp.watch_from_minute = watch_from_minute
        camp.run()
        if camp.perf is not None:
            trace.perf.append(camp.perf)
    return trace


def run_pacer_days(
    days: Sequence[tuple[Traffic, FaultPlan]],
    *,
    strategy: PacingStrategy = STRATEGY,
    reallocate: bool = True,
    timeline_campaign: int | None = None,
    name: str | None = None,
    train_seed: int = 0,
    on_campaign: Callable[[int, CampaignState, ModelRegistry], None] | None = None,
) -> list[Trace]:
    """Run every campaign over consecutive local days with one strategy; one trace per day.

    Engine state (history, rollover, breakers, reallocated budgets) and events in flight
    carry over from day to day. Before each local day starts, forecasts are retrained
    the way the worker does it (:func:`retrain`): the engine plans the new day with them
    when the day rolls over. ``on_campaign(c, state, models)`` sees each campaign's engine
    state and the forecasts' models after its last day (e.g. for the learned-weights
    chart).
    """
    registry = ModelRegistry()
    learning = strategy in LEARNING
    engine = (
        PacingEngine(strategies=default_registry(registry.forecaster()))
        if learning
        else PacingEngine()
    )
    runner = ForecastRunner(registry, seed=train_seed) if learning else None
    first, _ = days[0]
    n_c, n_h = first.n_campaigns, first.n_channels
    if name is None:
        name = "pacer-stream" if reallocate else "pacer-stream-static"
    traces = [empty_trace(name, n_c, n_h, MINUTES, t.budget) for t, _ in days]
    for c in range(n_c):
        camp = _Campaign(engine, first, days[0][1], traces[0], c, reallocate, False)
        camp.strategy = strategy
        camp.configure()
        for d, (traffic, plan) in enumerate(days):
            if d:
                camp.next_day(traffic, plan, traces[d])
                if runner is not None:
                    retrain(runner, camp.state, _dt(camp.start))
            if c == timeline_campaign and d == len(days) - 1 and camp.runaways:
                r = next(iter(camp.runaways.values()))
                camp.timeline = Timeline(c, r.channel, r.start_minute * 60.0, r.end_minute * 60.0)
            camp.run_day(last=d == len(days) - 1)
            if camp.timeline is not None:
                traces[d].timeline = camp.timeline
                camp.timeline = None
        if on_campaign is not None:
            on_campaign(c, camp.state, registry)
    return traces


def retrain(runner: ForecastRunner, state: CampaignState, now: datetime) -> int:
    """What the worker's training timer does at local midnight, synchronously (the
    simulated clock stands still while it runs, so it is off the hot path by
    construction): every due campaign/channel is trained on its history snapshot and
    the model installed. The soft time budget is disabled (a frozen clock) so a run is
    reproducible on any machine. Returns how many models were installed."""
    installed = 0
    for key, snap in snapshots_of(state, now, wanted=runner.may_be_due):
        if runner.due(key, snap):
            model = train(snap, now, seed=runner.seed, clock=_frozen_clock)
            if runner.registry.install(key, model) is not None:
                installed += 1
    return installed


def _frozen_clock() -> float:
    return 0.0


class _Campaign:
    """One campaign's day: an event queue, the engine state and the bid engine."""

    def __init__(
        self,
        engine: PacingEngine,
        traffic: Traffic,
        plan: FaultPlan,
        trace: Trace,
        c: int,
        reallocate: bool,
        keep_timeline: bool,
    ) -> None:
        self.engine = engine
        self.traffic = traffic
        self.plan = plan
        self.trace = trace
        self.c = c
        self.reallocate = reallocate
        self.cid = traffic.campaign_id(c)
        self.start = float(traffic.day_start[c])
        self.channels = traffic.channels
        self.budgets = [int(b) for b in traffic.budget[c]]
        self.total_budget = sum(self.budgets)
        #: (due seconds from midnight, seq, channel index, event, is the first copy)
        self.queue: list[tuple[float, int, int, SpendEvent, bool]] = []
        self.seq = 0
        self.spent = [0] * len(self.channels)
        self.runaways = {r.channel: r for r in plan.runaway_at(c)}
        self.outcomes: dict[int, RunawayOutcome] = {}
        self.timeline: Timeline | None = None
        if keep_timeline and self.runaways:
            r = next(iter(self.runaways.values()))
            self.timeline = Timeline(c, r.channel, r.start_minute * 60.0, r.end_minute * 60.0)
        self.counters = trace.counters
        self.latency = traffic.scenario.latency_s
        self.state: CampaignState
        # Optional scenarios (set by run_pacer).
        self.bidder: BidEngine | None = None
        self.thresholds: Thresholds | None = None
        self.perf: PerfOutcome | None = None
        self.watch_from_minute = 0
        self.last_since: list[float | None] = [None] * len(self.channels)
        self.strategy = STRATEGY
        #: (trace, local day start, local day end) of every day played (for _finish).
        self.days: list[tuple[Trace, float, float]] = []

    # ------------------------------------------------------------------ main loop
    def run(self) -> None:
        """One day from a fresh campaign; every event in flight is applied at the end."""
        self.configure()
        self.run_day(last=True)

    def configure(self) -> None:
        config = CampaignConfig(
            self.cid,
            {
                ch: ChannelConfig(b, self.strategy)
                for ch, b in zip(self.channels, self.budgets, strict=True)
            },
            self.strategy,
            self.traffic.zones[self.c],
            **({"thresholds": self.thresholds} if self.thresholds is not None else {}),
        )
        self.state, outs = self.engine.configure(None, config, _dt(self.start))
        self._outputs(outs, 0.0)

    def next_day(self, traffic: Traffic, plan: FaultPlan, trace: Trace) -> None:
        """Move to the following local day: same engine state and event queue (events
        still in flight arrive early in the new day), new traffic, faults and trace."""
        shift = float(traffic.day_start[self.c]) - self.start
        self.queue = [(due - shift, seq, h, e, first) for due, seq, h, e, first in self.queue]
        heapq.heapify(self.queue)
        self.traffic, self.plan, self.trace = traffic, plan, trace
        self.start = float(traffic.day_start[self.c])
        self.spent = [0] * len(self.channels)
        self.runaways = {r.channel: r for r in plan.runaway_at(self.c)}
        self.outcomes = {}
        self.counters = trace.counters

    def run_day(self, *, last: bool) -> None:
        """Play the current local day; ``last``: apply every event still in flight."""
        eng = self.engine
        c = self.c
        self.days.append(
            (self.trace, self.start, self.start + 60.0 * int(self.traffic.day_minutes[c]))
        )
        stall = set(self.plan.stall_minutes(self.c))
        cost = self.traffic.cost[self.c].tolist()
        clicks = self.traffic.clicks[self.c].tolist()
        conv = self.traffic.conversions[self.c].tolist()
        dup_mask = self.plan.duplicate[self.c].tolist()
        dup_delay = self.plan.duplicate_delay[self.c].tolist()
        every = self.traffic.scenario.reallocate_every
        trace, c = self.trace, self.c
        chs = [self.state.channels[ch] for ch in self.channels]
        n_minutes = min(MINUTES, int(self.traffic.day_minutes[c]))
        started = False
        for m in range(n_minutes):
            rel = 60.0 * m
            t0 = self.start + rel
            if m in stall:
                self._sample(m, t0, chs)
                self.counters["stalled_minutes"] = self.counters.get("stalled_minutes", 0) + 1
                continue
            self._drain(rel)
            now = _dt(t0)
            self._outputs(eng.tick(self.state, now), rel)
            if not started:  # the day's first tick rolled the day (and moved its split)
                started = True
                for h, ch in enumerate(chs):
                    trace.start_budget[c, h] = ch.budget
            if self.reallocate and m and m % every == 0:
                deltas, outs = eng.reallocate(self.state, now)
                self._outputs(outs, rel)
                assert sum(deltas.values()) == 0, f"reallocation created money: {deltas}"
                assert sum(ch.budget for ch in chs) == self.total_budget, "budget not conserved"
            self._sample(m, t0, chs)
            for h in range(len(self.channels)):
                r = self.runaways.get(h)
                if r is not None and r.start_minute <= m < r.end_minute:
                    continue
                if self.bidder is not None:
                    self._bid(h, m, now, rel, dup_mask[h][m], dup_delay[h][m])
                    continue
                costs = cost[h][m]
                for k in range(CHUNKS):
                    x = costs[k]
                    if not x:
                        continue
                    dup = dup_delay[h][m][k] if dup_mask[h][m][k] else None
                    self._buy(h, m, k, now, rel, (x, clicks[h][m][k], conv[h][m][k]), dup)
            for h, r in self.runaways.items():
                if r.start_minute <= m < r.end_minute:
                    self._runaway(h, r, m)
        # The plan ends at the whole (reallocated) budget; read it before the events
        # still in flight are applied after midnight (which rolls the engine's day).
        trace.plan[c, n_minutes:] = float(sum(ch.budget for ch in chs))
        if n_minutes < MINUTES:  # a 23-hour local day: the grid's last hour is not in it
            trace.able[c, :, n_minutes:] = trace.able[c, :, n_minutes - 1 : n_minutes]
        for h, ch in enumerate(chs):
            trace.budget[c, h] = ch.budget
        if last:
            self._drain(float("inf"))
        self._finish(last)

    # ------------------------------------------------------------------ pieces
    def _bid(
        self,
        h: int,
        m: int,
        now: datetime,
        rel: float,
        dup_mask: list[bool],
        dup_delay: list[float],
    ) -> None:
        """The bid engine that applies the pacing multiplier (``sim.bidding``): each
        batch is bought at the multiplier of the latest decision on the channel."""
        eng, bidder, ch = self.engine, self.bidder, self.channels[h]
        assert bidder is not None
        if bidder.last_decided[h] < m - 1:
            # Nothing asked last minute (multiplier 0 or every batch outbid): poll.
            bidder.multiplier[h] = eng.pacing_multiplier(self.state, ch, now)
        for k in range(CHUNKS):
            bought = bidder.offer(h, m, k)
            if bought is None:
                continue
            dup = dup_delay[k] if dup_mask[k] else None
            decision = self._buy(h, m, k, now, rel, bought, dup)
            bidder.decided(h, m, decision.pacing_multiplier)

    def _buy(
        self,
        h: int,
        m: int,
        k: int,
        now: datetime,
        rel: float,
        batch: tuple[int, int, int],
        duplicate_after: float | None,
    ) -> Decision:
        """One batch of the minute: the bid engine asks the engine to reserve its cost
        and, if granted, the platform spends it (``batch``: cost, clicks, conversions)."""
        amount, n_clicks, n_conv = batch
        ch = self.channels[h]
        rid = f"{self.cid}/{self.traffic.day}/{h}/{m}/{k}"
        decision, outs = self.engine.reserve(self.state, ch, amount, rid, now)
        if outs:
            self._outputs(outs, rel)
        if self.perf is not None:
            self._watch_decision(h, decision.code, rel)
        if not decision.allowed:
            key = f"denied_{decision.code.value}"
            self.counters[key] = self.counters.get(key, 0) + 1
            return decision
        at = rel + (k + 0.5) * BATCH_S
        event = SpendEvent(
            event_id=rid,
            campaign_id=self.cid,
            channel=ch,
            amount_micros=amount,
            event_time=_dt(self.start + at),
            clicks=n_clicks,
            conversions=n_conv,
            reservation_id=decision.reservation_id,
        )
        self._spend(h, m, at, event, duplicate_after)
        return decision

    def _watch(self, h: int, rel: float) -> None:
        """Collapse scenario: note violation episodes (the multiplier is throttled while
        one lasts) on channel ``h`` as of ``rel`` seconds after local midnight."""
        perf = self.perf
        assert perf is not None
        since = self.state.channels[self.channels[h]].perf_violation_since
        if since is None:
            return
        if since != self.last_since[h]:
            self.last_since[h] = since
            if since - self.start < perf.collapse_s:
                perf.episodes_before += 1
            if h != perf.channel:
                perf.episodes_other += 1
        if h == perf.channel and perf.throttle_s is None and rel >= perf.collapse_s:
            perf.throttle_s = max(since - self.start, perf.collapse_s)

    def _watch_decision(self, h: int, code: Code, rel: float) -> None:
        perf = self.perf
        assert perf is not None
        self._watch(h, rel)
        if code is not Code.PERFORMANCE_THRESHOLD:
            return
        if h != perf.channel:
            perf.denials_other += 1
        elif perf.denial_s is None and rel >= perf.collapse_s:
            perf.denial_s = rel
            since = self.state.channels[self.channels[h]].perf_violation_since
            perf.denial_episode_s = None if since is None else since - self.start

    def _sample(self, m: int, t0: float, chs: list) -> None:  # type: ignore[type-arg]
        trace, c = self.trace, self.c
        if self.perf is not None:
            for h in range(len(chs)):
                self._watch(h, t0 - self.start)
        trace.plan[c, m] = float(sum(planned_at(ch, t0) for ch in chs))
        stopped = self.state.emergency_stopped
        for h, ch in enumerate(chs):
            trace.able[c, h, m] = (
                not stopped and ch.breaker.state is not OPEN and ch.budget - self.spent[h] > 0
            )

    def _spend(
        self, h: int, m: int, rel: float, event: SpendEvent, duplicate_after: float | None
    ) -> None:
        """The platform: account the true spend and queue the event's delivery."""
        amount = event.amount_micros
        trace, c = self.trace, self.c
        trace.spend[c, h, m] += amount
        trace.conversions[c, h] += event.conversions
        if self.perf is not None and m >= self.watch_from_minute:
            self.perf.conversions_after[h] += event.conversions
        if amount > trace.max_event[c, h]:
            trace.max_event[c, h] = amount
        trace.unique_micros += amount
        self.spent[h] += amount
        sent = rel + self.latency + self.plan.delay_s(c, h)
        self._push(self.plan.deliver_at(c, sent), h, event, True)
        if duplicate_after is not None:
            self._push(self.plan.deliver_at(c, sent + duplicate_after), h, event, False)
        if self.timeline is not None and h == self.timeline.channel:
            self.timeline.spend.append((rel, amount))

    def _push(self, due: float, h: int, event: SpendEvent, first: bool) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (due, self.seq, h, event, first))

    def _drain(self, until: float) -> None:
        """The worker: apply every event delivered by ``until`` in delivery order."""
        q = self.queue
        eng, state = self.engine, self.state
        while q and q[0][0] <= until:
            due, _, _, event, _ = heapq.heappop(q)
            res = eng.record_spend(state, event, _dt(self.start + due))
            if res.duplicate:
                self.counters["duplicates_ignored"] = self.counters.get("duplicates_ignored", 0) + 1
            self._outputs(res.outputs, due)
            if self.perf is not None:
                self._watch(self.channels.index(event.channel), due)

    def _runaway(self, h: int, r: Runaway, m: int) -> None:
        """The broken bidder: sends its batches without asking, while the breaker state
        it follows is not OPEN (and the campaign is not stopped)."""
        per_minute = len(r.times) // r.minutes
        lo = (m - r.start_minute) * per_minute
        ch = self.state.channels[self.channels[h]]
        out = self.outcomes.get(h)
        if out is None:
            delay = self.latency + self.plan.delay_s(self.c, h)
            out = RunawayOutcome(
                self.c, h, r.start_minute, float(r.minutes), 0, False, r.late, delay
            )
            self.outcomes[h] = out
        for i in range(lo, lo + per_minute):
            t = float(r.times[i])
            self._drain(t)
            if self.state.emergency_stopped or ch.breaker.state is OPEN:
                out.stop(max(r.start_minute * 60.0, ch.breaker.since - self.start))
                continue
            amount = int(r.cost[i])
            if amount <= 0:
                continue
            out.spent(t, amount)
            event = SpendEvent(
                event_id=f"{self.cid}/{self.traffic.day}/{h}/runaway/{i}",
                campaign_id=self.cid,
                channel=self.channels[h],
                amount_micros=amount,
                event_time=_dt(self.start + t),
                clicks=int(r.clicks[i]),
                conversions=int(r.conversions[i]),
            )
            dup = float(r.duplicate_delay[i]) if r.duplicate[i] else None
            self._spend(h, int(t // 60), t, event, dup)

    def _outputs(self, outs: list[Output], rel: float) -> None:
        tl = self.timeline
        for o in outs:
            if isinstance(o, Alert):
                key = f"alert_{o.alert_type.value}"
                self.counters[key] = self.counters.get(key, 0) + 1
                perf = self.perf
                if (
                    perf is not None
                    and o.alert_type is AlertType.PERFORMANCE_DEGRADATION
                    and o.channel == self.channels[perf.channel]
                    and perf.alert_s is None
                ):
                    at = o.at.timestamp() - self.start
                    if at >= perf.collapse_s:
                        perf.alert_s = at
                if tl is not None and o.channel == self.channels[tl.channel]:
                    tl.alerts.append((o.at.timestamp() - self.start, o.alert_type.value))
            elif isinstance(o, BreakerTransition):
                key = f"breaker_{o.state.value}"
                self.counters[key] = self.counters.get(key, 0) + 1
                if tl is not None and o.channel == self.channels[tl.channel]:
                    tl.breaker.append((o.since.timestamp() - self.start, o.state.value))

    def _finish(self, last: bool) -> None:
        trace = self.trace
        if last:
            # Every micro the engine recorded, by the local day its event belongs to
            # (history is bucketed by event hour; late events land in their own day).
            for day_trace, lo, hi in self.days:
                recorded = 0
                for ch in self.state.channels.values():
                    recorded += sum(
                        b[0] for hour, b in ch.history.items() if lo <= hour * 3600 < hi
                    )
                day_trace.recorded_micros += recorded
        trace.runaways.extend(self.outcomes.values())
        if self.timeline is not None:
            trace.timeline = self.timeline
