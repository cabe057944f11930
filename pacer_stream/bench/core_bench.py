"""Core decision benchmark: pacer-stream's engine beside the original design.

The original Budget Pacer re-scanned every recorded transaction on each call, so its
cost grew with history. ``HistoryScanBaseline`` reproduces that access pattern (sum of
today's transactions per call) so both are measured in the same run, on the same
machine, at 1k, 10k and 100k recorded transactions per campaign/channel.
"""

from __future__ import annotations

import gc
import os
import resource
import statistics
import time
import tracemalloc
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pacer_stream.core.engine import PacingEngine
from pacer_stream.core.ids import forget_valid_campaign_ids
from pacer_stream.core.state import CampaignState
from pacer_stream.core.types import (
    CampaignConfig,
    ChannelConfig,
    ChannelType,
    PacingStrategy,
    SpendEvent,
)
from pacer_stream.core.windows import DedupeWindow
from pacer_stream.wire import topics

START = datetime(2026, 3, 2, tzinfo=UTC)
CH = ChannelType.GOOGLE_ADS
BIG_BUDGET = 10**15  # large enough that the benchmark never hits a cap


@dataclass
class HistoryScanBaseline:
    """The original design's cost model: every decision scans the transaction list."""

    budget: int
    transactions: list[tuple[datetime, int]] = field(default_factory=list)

    def record(self, when: datetime, amount: int) -> None:
        self.transactions.append((when, amount))

    def can_spend(self, amount: int, now: datetime) -> bool:
        day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        spent = sum(a for t, a in self.transactions if t >= day_start)
        hour_start = now.replace(minute=0, second=0, microsecond=0)
        hour = sum(a for t, a in self.transactions if t >= hour_start)
        return spent + amount <= self.budget and hour + amount <= self.budget * 0.15


def _campaign(engine: PacingEngine, cid: str) -> CampaignState:
    cfg = CampaignConfig(cid, {CH: ChannelConfig(BIG_BUDGET)}, PacingStrategy.EVEN_DISTRIBUTION)
    state, _ = engine.configure(None, cfg, START)
    return state


def _fill(engine: PacingEngine, state: CampaignState, n: int) -> datetime:
    """Record ``n`` transactions spread over the day; returns the time after them."""
    step = timedelta(seconds=max(1e-3, 20 * 3600 / n))
    t = START
    for i in range(n):
        t = START + step * i
        engine.record_spend(state, SpendEvent(f"e{i}", state.campaign_id, CH, 1000, t), t)
    return t


def _percentiles(samples: list[float]) -> tuple[float, float]:
    samples.sort()
    return samples[len(samples) // 2], samples[min(len(samples) - 1, int(len(samples) * 0.99))]


#: Throughput is the best of this many timed loops: the machine's other work only ever
#: slows a loop down, so the fastest one is the closest to the code's own cost (the
#: convention of ``timeit``); latency percentiles come from one further loop.
BEST_OF = 5


def bench_decisions(history_sizes: tuple[int, ...] = (1_000, 10_000, 100_000)) -> dict[str, Any]:
    engine = PacingEngine()
    rows = []
    for n in history_sizes:
        state = _campaign(engine, f"bench-{n}")
        now = _fill(engine, state, n)
        base = HistoryScanBaseline(BIG_BUDGET)
        step = timedelta(seconds=20 * 3600 / n)
        for i in range(n):
            base.record(START + step * i, 1000)
        # pacer-stream: decide (pure check) and record_spend, per-call latency.
        reps = 20_000

        # Throughput from a tight loop; latency percentiles from a timed loop (the
        # timer calls would otherwise be counted as decision cost).
        def decide(s: CampaignState, c: ChannelType, a: int, n: datetime) -> object:
            # What BudgetPacer.can_spend runs: the verdict without the multiplier.
            return engine.decide(s, c, a, n, with_multiplier=False)

        for _ in range(reps):  # warm-up, untimed (the first loop of a process is slower)
            decide(state, CH, 1000, now)
        decide_rate = 0.0
        for _ in range(BEST_OF):
            t0 = time.perf_counter()
            for _ in range(reps):
                decide(state, CH, 1000, now)
            decide_rate = max(decide_rate, reps / (time.perf_counter() - t0))
        lat: list[float] = []
        for _ in range(reps):
            s = time.perf_counter()
            decide(state, CH, 1000, now)
            lat.append(time.perf_counter() - s)
        d50, d99 = _percentiles(lat)
        record_rate = 0.0
        for r in range(BEST_OF):
            events = [
                SpendEvent(f"r{n}-{r}-{i}", state.campaign_id, CH, 10, now) for i in range(reps)
            ]
            t0 = time.perf_counter()
            for ev in events:
                engine.record_spend(state, ev, now)
            record_rate = max(record_rate, reps / (time.perf_counter() - t0))
        rec_lat: list[float] = []
        for i in range(reps):
            ev = SpendEvent(f"x{n}-{i}", state.campaign_id, CH, 10, now)
            s = time.perf_counter()
            engine.record_spend(state, ev, now)
            rec_lat.append(time.perf_counter() - s)
        r50, r99 = _percentiles(rec_lat)
        # baseline: far fewer repetitions, it is slow by design.
        base_reps = max(5, min(2_000, 2_000_000 // n))
        blat: list[float] = []
        for _ in range(base_reps):
            s = time.perf_counter()
            base.can_spend(1000, now)
            blat.append(time.perf_counter() - s)
        b50, b99 = _percentiles(blat)
        reserve_rate = 0.0
        for r in range(BEST_OF):
            t0 = time.perf_counter()
            for i in range(reps // 4):
                engine.reserve(state, CH, 1000, f"q{n}-{r}-{i}", now)
            reserve_rate = max(reserve_rate, (reps // 4) / (time.perf_counter() - t0))
        rows.append(
            {
                "history": n,
                "reserve_per_s": reserve_rate,
                "decide_per_s": decide_rate,
                "decide_p50_us": d50 * 1e6,
                "decide_p99_us": d99 * 1e6,
                "record_per_s": record_rate,
                "record_p50_us": r50 * 1e6,
                "record_p99_us": r99 * 1e6,
                "baseline_scan_p50_us": b50 * 1e6,
                "baseline_scan_p99_us": b99 * 1e6,
                "baseline_per_s": 1 / statistics.mean(blat),
            }
        )
    return {
        "benchmark": "core_decisions",
        "rows": rows,
        "best_of": BEST_OF,
        "target_decisions_per_s": 200_000,
    }


def _rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize()


#: The cases the memory bench measures (see :func:`traced_bytes_per_state`).
MEMORY_CASES = ("shared", "own_budget", "realistic")
_ID_PREFIX = {"shared": "m", "own_budget": "b", "realistic": "p"}


def _memory_state(engine: PacingEngine, case: str, i: int, events: int) -> CampaignState:
    """Campaign/channel ``i`` of a memory case after a day's plan and ``events`` spend
    events spread over the local day (at least one an hour).

    * ``shared``: every campaign has the same budget (they share one plan), 5,000-micro
      events without clicks: the narrowest columns;
    * ``own_budget``: the same with a budget of its own per campaign, so no plan is
      shared between campaigns;
    * ``realistic``: a budget of its own around $500, $2 events with clicks,
      impressions and revenue, and the input offsets the stream worker records."""
    cid = f"{_ID_PREFIX[case]}{i}"  # new ids per case: their cached verdicts count
    step = timedelta(seconds=86_400 / max(24, events))
    extra: dict[str, int]
    if case == "shared":
        budget, amount, extra = BIG_BUDGET, 5000, {}
    elif case == "own_budget":
        budget, amount, extra = BIG_BUDGET + 1_000_000 * i, 5000, {}
    elif case == "realistic":
        budget, amount = 500_000_000 + 10_000 * i, 2_000_000
        extra = {"clicks": 1, "impressions": 180, "revenue_micros": 2_600_000}
    else:
        raise ValueError(f"unknown memory case {case!r}")
    cfg = CampaignConfig(cid, {CH: ChannelConfig(budget)}, PacingStrategy.EVEN_DISTRIBUTION)
    st, _ = engine.configure(None, cfg, START)
    for k in range(events):
        t = START + step * k + timedelta(seconds=1)
        event = SpendEvent(f"{cid}-{k}", cid, CH, amount, t, **extra)  # type: ignore[arg-type]
        engine.record_spend(st, event, t)
    if case == "realistic":  # what a worker on a busy partition records
        st.offsets[topics.SPEND] = 48_113_207 + 1_000 * i
        st.offsets[topics.BUDGETS] = 1_730 + i
    st.dedupe.clear()  # the ids are reported separately
    return st


def traced_bytes_per_state(case: str = "shared", sample: int = 2_000, events: int = 48) -> float:
    """Traced bytes per campaign/channel of ``sample`` states of ``case`` (see
    :func:`_memory_state`), held together after a collection: objects shared between
    states count once, so this is what a worker holding many of them pays for each.

    Every case starts with an empty cache of valid campaign ids, so it pays the same
    ~26 bytes an id for it whatever was measured before in the process: with the ids
    of earlier cases still held, the second and third cases measured in a row were
    charged the growth of a table already sized for those ids (~25 and ~80 bytes a
    state more than alone)."""
    engine = PacingEngine()
    forget_valid_campaign_ids()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    states = [_memory_state(engine, case, i, events) for i in range(sample)]
    gc.collect()
    per_state = (tracemalloc.get_traced_memory()[0] - before) / sample
    tracemalloc.stop()
    assert len(states[0].channels[CH].history) == 24
    return per_state


def bench_memory(n_states: int = 100_000, events_per_state: int = 48) -> dict[str, Any]:
    """Bytes of state per campaign/channel (tracemalloc over a sample) and process RSS
    growth while holding ``n_states`` campaign/channels with a day's plan and a full
    local day of history: ``events_per_state`` spend events spread evenly over the day
    (at least one an hour, so every one of the 24 hourly buckets holds data). History
    is part of the state and is counted; the event ids are not (the window is emptied,
    and the bytes an id costs while held are reported apart, per id). Measured for
    campaigns sharing a plan (the headline figure), with a budget of their own, and
    with realistic amounts and offsets (:data:`MEMORY_CASES`)."""
    engine = PacingEngine()
    sample = min(2_000, n_states)
    per_case = {c: traced_bytes_per_state(c, sample, events_per_state) for c in MEMORY_CASES}
    per_state = per_case["shared"]
    hours = 24
    # The emptied dedupe window still counts above: measured alike on its own, so the
    # rest of the state can be read apart.
    gc.collect()
    tracemalloc.start()
    w0 = tracemalloc.get_traced_memory()[0]
    windows = []
    for i in range(sample):
        window = DedupeWindow()
        for k in range(events_per_state):
            window.add(f"m{i}-{k}", 0.0)
        window.clear()
        windows.append(window)
    gc.collect()
    per_window = (tracemalloc.get_traced_memory()[0] - w0) / sample
    tracemalloc.stop()
    del windows
    # Dedupe entry cost: ids kept 25 h.
    st = _campaign(engine, "dedupe")
    tracemalloc.start()
    b0 = tracemalloc.get_traced_memory()[0]
    for k in range(10_000):
        st.dedupe.add(f"event-{k:012d}", 0.0)
    per_id = (tracemalloc.get_traced_memory()[0] - b0) / 10_000
    tracemalloc.stop()
    gc.collect()
    rss0 = _rss_bytes()
    held = []
    for i in range(n_states):
        st = _campaign(engine, f"r{i}")
        held.append(st)
    rss1 = _rss_bytes()
    return {
        "benchmark": "memory",
        "bytes_per_campaign_channel": per_state,
        "bytes_per_campaign_channel_own_budget": per_case["own_budget"],
        "bytes_per_campaign_channel_realistic": per_case["realistic"],
        "history_hours": hours,
        "events_per_campaign_channel": events_per_state,
        "bytes_per_emptied_dedupe_window": per_window,
        "bytes_per_campaign_channel_without_dedupe_window": per_state - per_window,
        "bytes_per_dedupe_id": per_id,
        "states_held": n_states,
        "rss_growth_bytes": rss1 - rss0,
        "rss_bytes_per_state": (rss1 - rss0) / n_states,
        "target_bytes_per_campaign_channel": 2048,
    }
