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

from pacer_stream.core.forecast.service import ModelRegistry
from pacer_stream.core.state import CampaignState
from pacer_stream.core.types import PacingStrategy
from pacer_stream.sim.baselines import GATES, run_gate, run_oracle
from pacer_stream.sim.collapse import aggregate as aggregate_collapse
from pacer_stream.sim.collapse import apply_collapse, floor_thresholds, run_summary, seed_figures
from pacer_stream.sim.faults import FaultPlan, plan_faults
from pacer_stream.sim.metrics import STATIC_ROW, aggregate, seed_metrics, trace_metrics
from pacer_stream.sim.pacer import run_pacer, run_pacer_days
from pacer_stream.sim.scenario import (
    BID_ELASTICITY,
    DEFAULT_STRATEGY,
    LEARNING,
    MINUTES,
    ORACLE_FREE,
    ORACLE_SPLIT,
    PRODUCT_STRATEGIES,
    STRATEGIES,
    Collapse,
    Scenario,
    row_name,
)
from pacer_stream.sim.trace import Trace
from pacer_stream.sim.traffic import Traffic, generate

KINDS = (
    "pacer",
    "pacer-static",
    "baselines",
    # Optional extras (only with Scenario.multiplier / Scenario.collapse):
    "pacer-multiplier",
    "collapse-off",
    "collapse-on",
    "collapse-multiplier-off",
    "collapse-multiplier-on",
)
#: Task kind prefix of a product strategy other than the default (``strategy:VALUE``).
STRATEGY_KIND = "strategy:"
#: Extra row: pacer-stream whose bid engine applies the pacing multiplier.
MULTIPLIER_ROW = "pacer-stream-multiplier"
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
    #: Optional scenarios: metrics of extra rows, and the collapse run's summary.
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    collapse: dict[str, Any] = field(default_factory=dict)


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


def seed_days(seed: int, scenario: Scenario) -> list[tuple[Traffic, FaultPlan]]:
    """Every local day of a seed with its faults (deterministic: each task redraws them)."""
    out = []
    for d in range(scenario.days):
        traffic = generate(seed, scenario, d)
        out.append((traffic, plan_faults(traffic, scenario.faults)))
    return out


def combine_days(days: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One seed's figures from its evaluation days' figures: the mean over days, except
    worst-case extras (``*_max``: the largest) and counts (summed)."""
    out: dict[str, Any] = {}
    for key in days[0]:
        nums = [d[key] for d in days if isinstance(d.get(key), int | float)]
        if not nums:
            out[key] = None
        elif key.endswith("_max"):
            out[key] = float(max(nums))
        elif key in _SUMMED:
            out[key] = float(sum(nums))
        else:
            out[key] = float(np.mean(nums))
    return out


#: Per-day figures that add up over the evaluation days.
_SUMMED = frozenset(
    {
        "overspend_beyond_one_event",
        "runaways",
        "runaways_stopped",
        "runaways_late",
        "double_counted_micros",
        "runaway_late_overspend_beyond_one_event",
        "runaway_late_authorised_overspend_beyond_one_event",
    }
)


def _strategy_of(kind: str) -> PacingStrategy:
    if kind in ("pacer", "pacer-static"):
        return DEFAULT_STRATEGY
    return PacingStrategy(kind.removeprefix(STRATEGY_KIND))


def hour_weights(
    state: CampaignState, traffic: Traffic, c: int, models: ModelRegistry
) -> dict[str, Any]:
    """Per channel of campaign ``c`` on the last day: the conversion rate by local hour
    the engine planned with (its strategy's prediction) and, when the channel's model
    learned one, the hour curve of conversions per unit ADAPTIVE_HYBRID leans on,
    against the true conversion rate (the simulator's cost per click is flat over the
    day, so conversions per unit follow it too), each as a share of its mean (what the
    plan weights by). Empty on a day that is not 24 hours."""
    out: dict[str, Any] = {}
    for h, channel in enumerate(traffic.channels):
        result = state.channels[channel].result
        if result is None or len(result.predicted_conversion_rate) != 24:
            continue
        learned = np.asarray(result.predicted_conversion_rate, dtype=float)
        true = traffic.cvr[c, h] * traffic.true_hour_quality[c, h]
        if learned.mean() <= 0:
            continue
        out[channel.value] = {
            "learned": (learned / learned.mean()).tolist(),
            "true": (true / true.mean()).tolist(),
            "model": result.model_version,
        }
        model = models.get((state.campaign_id, channel.value))
        if model is not None and model.hour_curve is not None:
            curve = np.asarray(model.hour_curve.values(range(24)))
            out[channel.value]["curve"] = (curve / curve.mean()).tolist()
    return out


def run_task(task: Task) -> TaskResult:
    """One task of one seed (runs in a worker process)."""
    t0 = time.perf_counter()
    scenario = task.scenario
    days = seed_days(task.seed, scenario)
    evaluation = days[scenario.warmup_days :]
    traffic, plan = days[-1]
    res = TaskResult(task.seed, task.kind, 0.0)
    if task.kind in ("pacer", "pacer-static") or task.kind.startswith(STRATEGY_KIND):
        strategy = _strategy_of(task.kind)
        realloc = task.kind != "pacer-static"
        first = plan.runaways[0].campaign if plan.runaways and task.charts else None
        sample = sample_campaign(traffic, plan)
        weights: dict[str, Any] = {}

        def learned(c: int, state: CampaignState, models: ModelRegistry) -> None:
            if task.charts and c == sample:
                weights.update(hour_weights(state, traffic, c, models))

        traces = run_pacer_days(
            days,
            strategy=strategy,
            reallocate=realloc,
            timeline_campaign=first,
            train_seed=task.seed,
            on_campaign=learned,
        )[scenario.warmup_days :]
        name = "pacer-stream" if strategy is DEFAULT_STRATEGY else row_name(strategy)
        figures = combine_days(
            [
                trace_metrics(tr, t, p.late_runaway_campaigns())
                for tr, (t, p) in zip(traces, evaluation, strict=True)
            ]
        )
        target = res.metrics if realloc else res.static
        target[name] = figures
        counter_name = name if realloc else STATIC_ROW
        for tr in traces:
            acc = res.counters.setdefault(counter_name, {})
            for k, v in tr.counters.items():
                acc[k] = acc.get(k, 0) + v
        if task.charts and realloc:
            res.chart[name] = _chart_data(traces[-1], traffic, plan)
            if weights and strategy in LEARNING:
                res.chart.setdefault("hour_weights", {})[name] = weights
    elif task.kind == "baselines":
        for name in GATES:
            per_day = []
            for t, p in evaluation:
                trace = run_gate(name, t, p)
                per_day.append(trace_metrics(trace, t, p.late_runaway_campaigns()))
            res.metrics[name] = combine_days(per_day)
            if task.charts:
                res.chart[name] = _chart_data(trace, traffic, plan)
        free = [(run_oracle(t), t, p) for t, p in evaluation]
        res.metrics[ORACLE_FREE] = combine_days(
            [trace_metrics(o, t, p.late_runaway_campaigns()) for o, t, p in free]
        )
        split = combine_days(
            [
                trace_metrics(run_oracle(t, per_channel=True), t, p.late_runaway_campaigns())
                for t, p in evaluation
            ]
        )
        res.metrics[ORACLE_SPLIT] = split
        # The free oracle's reallocation gain: over the one bound to the split.
        res.static[ORACLE_FREE] = split
        if task.charts:
            res.chart[ORACLE_FREE] = _chart_data(free[-1][0], traffic, plan)
    elif task.kind == "pacer-multiplier":
        trace = run_pacer(traffic, plan, apply_multiplier=True, name=MULTIPLIER_ROW)
        res.extra[MULTIPLIER_ROW] = trace_metrics(trace, traffic, plan.late_runaway_campaigns())
        res.counters[MULTIPLIER_ROW] = dict(trace.counters)
    elif task.kind.startswith("collapse-"):
        collapse = task.scenario.collapse
        assert collapse is not None
        day, channels = apply_collapse(traffic, collapse)
        floor = task.kind.endswith("-on")
        trace = run_pacer(
            day,
            plan,
            name=task.kind,
            apply_multiplier="multiplier" in task.kind,
            thresholds=floor_thresholds(day, channels, collapse) if floor else None,
            watch=channels,
            watch_from_minute=collapse.start_minute,
        )
        res.collapse = run_summary(trace, collapse)
        res.counters[task.kind] = dict(trace.counters)
    else:
        raise ValueError(f"unknown task kind {task.kind!r}")
    res.seconds = time.perf_counter() - t0
    return res


def tasks_for(seeds: Sequence[int], scenario: Scenario) -> list[Task]:
    """Slow tasks first, so the last ones to finish are short."""
    first = seeds[0] if seeds else None
    kinds = ["pacer", "pacer-static"]
    kinds += [STRATEGY_KIND + s.value for s in PRODUCT_STRATEGIES if s is not DEFAULT_STRATEGY]
    if scenario.multiplier:
        kinds.append("pacer-multiplier")
    if scenario.collapse is not None:
        kinds += ["collapse-on", "collapse-off"]
        if scenario.multiplier:
            kinds += ["collapse-multiplier-on", "collapse-multiplier-off"]
    slow = [
        Task(s, k, scenario, s == first and (k in KINDS[:3] or k.startswith(STRATEGY_KIND)))
        for s in seeds
        for k in kinds
    ]
    fast = [Task(s, "baselines", scenario, s == first) for s in seeds]
    return slow + fast


def run_seeds(
    seeds: Sequence[int],
    scenario: Scenario,
    *,
    workers: int = 2,
    on_done: Callable[[TaskResult], None] | None = None,
) -> dict[str, Any]:
    """Run every task and assemble the report (the report's JSON shape plus extras)."""
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
    collapse_seeds: dict[str, list[dict[str, Any]]] = {}
    for seed in seeds:
        mine = [r for r in results if r.seed == seed]
        metrics: dict[str, dict[str, Any]] = {}
        static: dict[str, dict[str, Any]] = {}
        for r in mine:
            metrics.update(r.metrics)
            static.update(r.static)
            for key, value in r.chart.items():
                if key == "hour_weights":  # one entry per learning row, from two tasks
                    charts.setdefault(key, {}).update(value)
                else:
                    charts[key] = value
            for k, v in r.counters.items():
                acc = counters.setdefault(k, {})
                for name, n in v.items():
                    acc[name] = acc.get(name, 0) + n
        ordered = {name: metrics[name] for name in STRATEGIES if name in metrics}
        row = seed_metrics(ordered, static)
        for r in mine:
            for name, m in r.extra.items():
                row[name] = extra_row(m, ordered)
        per_seed.append(row)
        runs = {r.kind: r.collapse for r in mine if r.collapse}
        for variant, prefix in (("plain", "collapse"), ("multiplier", "collapse-multiplier")):
            on, off = runs.get(f"{prefix}-on"), runs.get(f"{prefix}-off")
            if on is not None and off is not None:
                collapse_seeds.setdefault(variant, []).append(
                    {"seed": seed, **seed_figures(on, off)}
                )
    everything = aggregate(per_seed)
    strategies = {name: everything[name] for name in STRATEGIES if name in everything}
    charts["conversions_per_unit"] = {
        name: row["conversions_per_unit"]["mean"] for name, row in strategies.items()
    }
    extra = {name: row for name, row in everything.items() if name not in strategies}
    report: dict[str, Any] = {
        "seeds": len(seeds),
        "days": scenario.days,
        "warmup_days": scenario.warmup_days,
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
                for k in dict.fromkeys(r.kind for r in results)
            },
        },
        "_charts": charts,
    }
    if scenario.collapse is not None:
        report["collapse"] = collapse_report(scenario.collapse, collapse_seeds)
    return report


def extra_row(m: dict[str, Any], ordered: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """An extra pacer-stream variant's row, with the cross-strategy figures the main
    rows have (``reallocation_gain`` does not exist for it: None) and its conversions
    against the plain pacer-stream run of the same seed."""
    row = dict(m)
    oracle = ordered.get(ORACLE_FREE, {}).get("conversions")
    even = ordered.get("even-gate", {}).get("conversions_per_unit")
    base = ordered.get("pacer-stream", {}).get("conversions")
    row["oracle_share"] = m["conversions"] / oracle if oracle else None
    row["vs_even_conversions_per_unit"] = m["conversions_per_unit"] / even - 1.0 if even else None
    row["vs_pacer_stream_conversions"] = m["conversions"] / base - 1.0 if base else None
    row["reallocation_gain"] = None
    return row


def collapse_report(
    collapse: Collapse, per_seed: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    return {
        "settings": {
            "start_minute": collapse.start_minute,
            "factor": collapse.factor,
            "floor_share": collapse.floor_share,
            "collapsed_channel": "each campaign's lowest-conversion-rate channel",
            "thresholds": "min_conversion_rate = floor_share x its normal rate; "
            "every other threshold at the engine default",
        },
        "variants": {v: aggregate_collapse(rows) for v, rows in per_seed.items()},
        "per_seed": per_seed,
    }


def _spec_only(row: dict[str, Any]) -> dict[str, Any]:
    from pacer_stream.sim.scenario import METRICS

    return {k: row.get(k) for k in METRICS}


def describe(scenario: Scenario, seeds: Sequence[int]) -> dict[str, Any]:
    f = scenario.faults
    out: dict[str, Any] = {
        "campaigns": scenario.campaigns,
        "first_day": scenario.start.isoformat(),
        "evaluation_days": [
            scenario.date_of(d).isoformat() for d in range(scenario.warmup_days, scenario.days)
        ],
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
    # Optional extras appear only when enabled (the default report is unchanged).
    if scenario.multiplier:
        out["multiplier_bid_elasticity"] = BID_ELASTICITY
    if scenario.collapse is not None:
        out["collapse"] = True
    return out


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
