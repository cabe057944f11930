"""Runs the seeds: every strategy on every seeded day, in worker processes.

A seed is split into three tasks so two cores stay busy: pacer-stream with reallocation,
pacer-stream with the static split (its reallocation gain), and every baseline plus the
oracle (fast, vectorised). Each task regenerates the day from the seed (deterministic),
so nothing large crosses a process boundary: tasks return metrics, plus chart data for
the first seed.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pacer_stream.sim.baselines import GATES, run_gate, run_oracle
from pacer_stream.sim.faults import FaultPlan, plan_faults
from pacer_stream.sim.metrics import aggregate, seed_metrics, trace_metrics
from pacer_stream.sim.pacer import run_pacer
from pacer_stream.sim.scenario import MINUTES, STRATEGIES, Scenario
from pacer_stream.sim.trace import Trace
from pacer_stream.sim.traffic import Traffic, generate

KINDS = ("pacer", "pacer-static", "baselines")
#: Minutes shown around a runaway incident in the chart.
INCIDENT_MARGIN = 30


@dataclass(frozen=True, slots=True)
class Task:
    seed: int
    kind: str
    scenario: Scenario
    charts: bool = False


@dataclass(slots=True)
class TaskResult:
    seed: int
    kind: str
    seconds: float
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    static: dict[str, dict[str, Any]] = field(default_factory=dict)
    counters: dict[str, dict[str, int]] = field(default_factory=dict)
    chart: dict[str, Any] = field(default_factory=dict)


def sample_campaign(traffic: Traffic, plan: FaultPlan) -> int:
    """The campaign drawn in the spend chart: the first one no fault touches (besides
    the stall and duplicates, which touch everyone)."""
    hit = {r.campaign for r in plan.runaways}
    for c in range(traffic.n_campaigns):
        if c not in hit and not plan.late[c].any():
            return c
    return 0


def _chart_data(trace: Trace, traffic: Traffic, plan: FaultPlan) -> dict[str, Any]:
    """What the charts need from one strategy's trace (small: one campaign's curves)."""
    c = sample_campaign(traffic, plan)
    cum = np.concatenate([[0.0], np.cumsum(trace.spend[c].sum(axis=0))])
    data: dict[str, Any] = {
        "sample_campaign": c,
        "sample_zone": traffic.zones[c],
        "sample_budget": float(traffic.budget[c].sum()),
        "cumulative": cum.tolist(),
        "plan": trace.plan[c].tolist(),
    }
    if plan.runaways:
        r = plan.runaways[0]
        lo = max(0, r.start_minute - INCIDENT_MARGIN)
        hi = min(MINUTES, r.end_minute + INCIDENT_MARGIN)
        data["incident"] = {
            "campaign": r.campaign,
            "channel": traffic.channels[r.channel].value,
            "budget": float(traffic.budget[r.campaign, r.channel]),
            "start_minute": r.start_minute,
            "end_minute": r.end_minute,
            "from_minute": lo,
            "spend_per_minute": trace.spend[r.campaign, r.channel, lo:hi].tolist(),
        }
        if trace.timeline is not None:
            tl = trace.timeline
            data["incident"]["timeline"] = {
                "spend": tl.spend,
                "breaker": tl.breaker,
                "alerts": tl.alerts,
            }
    return data


def run_task(task: Task) -> TaskResult:
    """One task of one seed (runs in a worker process)."""
    t0 = time.perf_counter()
    traffic = generate(task.seed, task.scenario)
    plan = plan_faults(traffic, task.scenario.faults)
    res = TaskResult(task.seed, task.kind, 0.0)
    if task.kind in ("pacer", "pacer-static"):
        realloc = task.kind == "pacer"
        first = plan.runaways[0].campaign if plan.runaways and task.charts else None
        trace = run_pacer(traffic, plan, reallocate=realloc, timeline_campaign=first)
        target = res.metrics if realloc else res.static
        target["pacer-stream"] = trace_metrics(trace, traffic)
        res.counters["pacer-stream" if realloc else "pacer-stream-static"] = dict(trace.counters)
        if task.charts and realloc:
            res.chart["pacer-stream"] = _chart_data(trace, traffic, plan)
    elif task.kind == "baselines":
        for name in GATES:
            trace = run_gate(name, traffic, plan)
            res.metrics[name] = trace_metrics(trace, traffic)
            if task.charts:
                res.chart[name] = _chart_data(trace, traffic, plan)
        oracle = run_oracle(traffic)
        res.metrics["oracle"] = trace_metrics(oracle, traffic)
        res.static["oracle"] = trace_metrics(run_oracle(traffic, per_channel=True), traffic)
        if task.charts:
            res.chart["oracle"] = _chart_data(oracle, traffic, plan)
    else:
        raise ValueError(f"unknown task kind {task.kind!r}")
    res.seconds = time.perf_counter() - t0
    return res


def tasks_for(seeds: Sequence[int], scenario: Scenario) -> list[Task]:
    """Slow tasks first, so the last ones to finish are short."""
    first = seeds[0] if seeds else None
    slow = [Task(s, k, scenario, s == first) for s in seeds for k in ("pacer", "pacer-static")]
    fast = [Task(s, "baselines", scenario, s == first) for s in seeds]
    return slow + fast


def run_seeds(
    seeds: Sequence[int],
    scenario: Scenario,
    *,
    workers: int = 2,
    on_done: Callable[[TaskResult], None] | None = None,
) -> dict[str, Any]:
    """Run every task and assemble the report (SPEC section 9 format plus extras)."""
    started = time.perf_counter()
    tasks = tasks_for(seeds, scenario)
    results: list[TaskResult] = []
    if workers <= 1 or len(tasks) == 1:
        for t in tasks:
            r = run_task(t)
            results.append(r)
            if on_done:
                on_done(r)
    else:
        # forkserver: children fork from a clean server process (no threads of the
        # progress bar) and, unlike spawn, do not re-run a ``python -m`` entry point.
        method = (
            "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        )
        ctx = multiprocessing.get_context(method)
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = [pool.submit(run_task, t) for t in tasks]
            for f in as_completed(futures):
                r = f.result()
                results.append(r)
                if on_done:
                    on_done(r)
    return assemble(seeds, scenario, results, time.perf_counter() - started, workers)


def assemble(
    seeds: Sequence[int],
    scenario: Scenario,
    results: Sequence[TaskResult],
    seconds: float,
    workers: int,
) -> dict[str, Any]:
    per_seed: list[dict[str, dict[str, Any]]] = []
    charts: dict[str, Any] = {}
    counters: dict[str, dict[str, int]] = {}
    for seed in seeds:
        mine = [r for r in results if r.seed == seed]
        metrics: dict[str, dict[str, Any]] = {}
        static: dict[str, dict[str, Any]] = {}
        for r in mine:
            metrics.update(r.metrics)
            static.update(r.static)
            charts.update(r.chart)
            for k, v in r.counters.items():
                acc = counters.setdefault(k, {})
                for name, n in v.items():
                    acc[name] = acc.get(name, 0) + n
        ordered = {name: metrics[name] for name in STRATEGIES if name in metrics}
        per_seed.append(seed_metrics(ordered, static))
    everything = aggregate(per_seed)
    strategies = {name: everything[name] for name in STRATEGIES if name in everything}
    extra = {name: row for name, row in everything.items() if name not in strategies}
    return {
        "seeds": len(seeds),
        "strategies": strategies,
        "extra_strategies": extra,
        "scenario": describe(scenario, seeds),
        "per_seed": [
            {"seed": s, "strategies": {n: _spec_only(m) for n, m in ps.items()}}
            for s, ps in zip(seeds, per_seed, strict=True)
        ],
        "counters": counters,
        "timing": {
            "seconds": seconds,
            "workers": workers,
            "cpus": _cpus(),
            "task_seconds": {
                k: float(np.mean([r.seconds for r in results if r.kind == k]))
                for k in KINDS
                if any(r.kind == k for r in results)
            },
        },
        "_charts": charts,
    }


def _spec_only(row: dict[str, Any]) -> dict[str, Any]:
    from pacer_stream.sim.scenario import METRICS

    return {k: row.get(k) for k in METRICS}


def describe(scenario: Scenario, seeds: Sequence[int]) -> dict[str, Any]:
    f = scenario.faults
    return {
        "campaigns": scenario.campaigns,
        "channels": scenario.channels,
        "seed_values": list(seeds),
        "reallocate_every_minutes": scenario.reallocate_every,
        "latency_s": scenario.latency_s,
        "faults": {
            "runaway": f.runaway,
            "duplicates": f.duplicates,
            "stall": f.stall,
            "late": f.late,
        },
    }


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
