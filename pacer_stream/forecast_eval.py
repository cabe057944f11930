"""Multi-day evaluation of PREDICTIVE_ML and ADAPTIVE_HYBRID.

Two studies on a synthetic market with weekly and daily seasonality, hourly varying
conversion rates and costs per click (:class:`Market`):

1. **Pacing** - the real :class:`~pacer_stream.core.engine.PacingEngine` paces one
   campaign/channel for ``days`` local days (America/New_York, so the run crosses the
   2026-03-08 DST switch) with each strategy. Clicks arrive in 5-minute steps; the bidder
   asks ``reserve`` for each click's cost and records the spend against the reservation
   when allowed. PREDICTIVE_ML and ADAPTIVE_HYBRID retrain every local midnight on the
   history the run itself produced (``train`` + ``ModelRegistry.install``, as the runner
   does in production). Every strategy sees the same click stream per seed.
   Metrics: conversions per unit of spend, conversions, utilisation and tracking error
   (mean |cumulative spend - cumulative plan| at each hour end, share of the daily budget).
2. **Forecast error** - 4 weeks of fully observed hourly data per seed; for each of the
   last two weeks' days, models trained on the days before forecast the day, scored by
   WAPE against what happened, beside seasonal-naive baselines (same hour last week, same
   hour yesterday) and the true generating rates (the noise floor).

``run(days=14, seeds=3, out="out/forecast")`` writes ``forecast_report.json`` into
``out`` and prints the tables. ``python -m pacer_stream.forecast_eval --help``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from pacer_stream.core.allocation import AllocationContext, default_registry
from pacer_stream.core.calendar import LocalDay, local_day
from pacer_stream.core.engine import PacingEngine
from pacer_stream.core.forecast.dataset import MICROS
from pacer_stream.core.forecast.models import FULL_CANDIDATES
from pacer_stream.core.forecast.service import ModelRegistry, snapshot
from pacer_stream.core.forecast.training import train
from pacer_stream.core.history import HourlyHistory
from pacer_stream.core.types import (
    CampaignConfig,
    ChannelConfig,
    ChannelType,
    PacingStrategy,
    SpendEvent,
)

CHANNEL = ChannelType.GOOGLE_ADS
STRATEGIES: tuple[PacingStrategy, ...] = (
    PacingStrategy.EVEN_DISTRIBUTION,
    PacingStrategy.HISTORICAL_PATTERN,
    PacingStrategy.PERFORMANCE_WEIGHTED,
    PacingStrategy.PREDICTIVE_ML,
    PacingStrategy.ADAPTIVE_HYBRID,
)
LEARNING = {PacingStrategy.PREDICTIVE_ML, PacingStrategy.ADAPTIVE_HYBRID}


# ---------------------------------------------------------------------------- market
@dataclass(frozen=True, slots=True)
class Market:
    """Synthetic traffic: expected clicks, conversion rate and CPC by local hour/weekday.

    Traffic peaks at lunch and in the evening, lower at weekends. CPC follows traffic
    (competition). Conversion rate peaks late evening on weekdays and mid-afternoon at
    weekends, so the best hours for conversions per unit of spend are not the busiest
    ones, and the weekly pattern is more than a level shift.
    """

    tz: str = "America/New_York"
    start: date = date(2026, 2, 23)  # a Monday; 2026-03-08 (DST start) is day 13
    clicks_per_day: float = 3000.0
    base_cr: float = 0.05
    base_cpc: float = 1.0
    #: Lognormal sigma of one click's cost around the hour's CPC.
    cpc_sigma: float = 0.25
    #: Lognormal sigma of a day's traffic level.
    day_sigma: float = 0.10
    #: Daily budget as a share of the expected cost of all clicks of a weekday.
    budget_share: float = 0.4

    @staticmethod
    def _shape(hod: int) -> float:
        return (
            0.15
            + math.exp(-(((hod - 12.5) / 3.0) ** 2))
            + 0.8 * math.exp(-(((hod - 20.0) / 2.0) ** 2))
            + 0.3 * math.exp(-(((hod - 8.5) / 1.5) ** 2))
        )

    @staticmethod
    def _weekday_level(dow: int) -> float:
        return (1.0, 1.0, 1.0, 1.0, 0.9, 0.65, 0.7)[dow]

    def clicks_per_hour(self, hod: int, dow: int) -> float:
        total = sum(self._shape(h) for h in range(24))
        return self.clicks_per_day * self._shape(hod) / total * self._weekday_level(dow)

    def cpc(self, hod: int, dow: int) -> float:
        peak = max(self._shape(h) for h in range(24))
        wk = 0.9 if dow >= 5 else 1.0
        return self.base_cpc * (0.65 + 0.6 * self._shape(hod) / peak) * wk

    def cr(self, hod: int, dow: int) -> float:
        if dow >= 5:
            shape = 1.0 + 0.5 * math.cos(2 * math.pi * (hod - 15) / 24)
            return self.base_cr * 1.2 * shape
        return self.base_cr * (1.0 + 0.6 * math.cos(2 * math.pi * (hod - 22) / 24))

    def daily_budget_micros(self) -> int:
        cost = sum(self.clicks_per_hour(h, 0) * self.cpc(h, 0) for h in range(24))
        return round(cost * self.budget_share) * MICROS

    def day(self, i: int) -> LocalDay:
        return local_day(self.tz, self.start + timedelta(days=i))


@dataclass(frozen=True, slots=True)
class DayClicks:
    """One local day of click opportunities, in arrival order."""

    day: LocalDay
    times: np.ndarray  # epoch seconds (step start)
    slots: np.ndarray  # slot index of each click
    cost: np.ndarray  # micros
    conv: np.ndarray  # 0/1


def generate_day(m: Market, day: LocalDay, rng: np.random.Generator, step_s: int) -> DayClicks:
    level = float(rng.lognormal(-(m.day_sigma**2) / 2, m.day_sigma))
    times: list[np.ndarray] = []
    slots: list[np.ndarray] = []
    costs: list[np.ndarray] = []
    convs: list[np.ndarray] = []
    dow = day.weekday
    mu_log = -(m.cpc_sigma**2) / 2
    for i in range(day.n_slots):
        hod = day.hours_of_day[i]
        lo, hi = day.bounds[i], day.bounds[i + 1]
        rate = m.clicks_per_hour(hod, dow) * level / 3600.0
        cpc = m.cpc(hod, dow)
        cr = m.cr(hod, dow)
        t = lo
        while t < hi - 1e-6:
            span = min(step_s, hi - t)
            n = int(rng.poisson(rate * span))
            if n:
                times.append(np.full(n, t))
                slots.append(np.full(n, i, dtype=np.int64))
                c = cpc * rng.lognormal(mu_log, m.cpc_sigma, n)
                costs.append(np.maximum(1, np.round(c * MICROS)).astype(np.int64))
                convs.append((rng.random(n) < cr).astype(np.int64))
            t += span
    if not times:
        empty = np.empty(0)
        return DayClicks(day, empty, empty.astype(np.int64), empty.astype(np.int64), empty)
    return DayClicks(
        day,
        np.concatenate(times),
        np.concatenate(slots),
        np.concatenate(costs),
        np.concatenate(convs),
    )


# ---------------------------------------------------------------------------- pacing
@dataclass
class RunResult:
    strategy: str
    seed: int
    spend: list[int] = field(default_factory=list)  # per day, micros
    conversions: list[int] = field(default_factory=list)
    clicks: list[int] = field(default_factory=list)
    tracking: list[float] = field(default_factory=list)  # per day: mean |cum - plan| / B
    versions: list[str] = field(default_factory=list)
    confidence: list[float] = field(default_factory=list)
    train_s: list[float] = field(default_factory=list)


def simulate(
    m: Market,
    strategy: PacingStrategy,
    days: Sequence[DayClicks],
    seed: int,
) -> RunResult:
    """Drive the real engine over ``days`` with one strategy (reserve -> record)."""
    registry = ModelRegistry()
    key = (f"eval-{strategy.value}-{seed}", CHANNEL.value)
    learning = strategy in LEARNING
    engine = PacingEngine(
        strategies=default_registry(registry.bound(key)) if learning else default_registry()
    )
    budget = m.daily_budget_micros()
    start = datetime.fromtimestamp(days[0].day.start, UTC)
    cfg = CampaignConfig("eval", {CHANNEL: ChannelConfig(budget, strategy)}, strategy, m.tz)
    state, _ = engine.configure(None, cfg, start)
    out = RunResult(strategy.value, seed)
    n_req = 0
    for dc in days:
        day = dc.day
        day_start = datetime.fromtimestamp(day.start, UTC)
        if learning:
            ch0 = state.channels[CHANNEL]
            t0 = time.perf_counter()
            model = train(snapshot(ch0.history, m.tz, day_start), day_start, seed=seed)
            out.train_s.append(time.perf_counter() - t0)
            registry.install(key, model)
        engine.tick(state, day_start)  # roll the day: the plan is made here
        ch = state.channels[CHANNEL]
        spend = conv = clicks = 0
        dev = 0.0
        next_slot = 0
        ts_all = dc.times.tolist()
        slots = dc.slots.tolist()
        costs = dc.cost.tolist()
        convs = dc.conv.tolist()
        for j in range(len(ts_all)):
            s = slots[j]
            while next_slot < s:  # hour ends passed: tracking sample
                dev += abs(ch.spent_total - ch.cum_plan[next_slot + 1])
                next_slot += 1
            now = datetime.fromtimestamp(ts_all[j], UTC)
            n_req += 1
            decision, _ = engine.reserve(state, CHANNEL, costs[j], f"r{n_req}", now)
            if not decision.allowed:
                continue
            engine.record_spend(
                state,
                SpendEvent(
                    f"e{n_req}",
                    "eval",
                    CHANNEL,
                    costs[j],
                    now,
                    clicks=1,
                    conversions=convs[j],
                    reservation_id=decision.reservation_id,
                ),
                now,
            )
            spend += costs[j]
            conv += convs[j]
            clicks += 1
        while next_slot < day.n_slots:
            dev += abs(ch.spent_total - ch.cum_plan[next_slot + 1])
            next_slot += 1
        out.spend.append(spend)
        out.conversions.append(conv)
        out.clicks.append(clicks)
        out.tracking.append(dev / day.n_slots / budget)
        result = ch.result
        out.versions.append(str(result.model_version) if result is not None else "")
        out.confidence.append(result.confidence if result is not None else 0.0)
    return out


def _summary(runs: Sequence[RunResult], budget: int, lo: int, hi: int) -> dict[str, Any]:
    """Per-strategy figures over days [lo, hi) across seeds: mean and worst."""
    per_seed = []
    for r in runs:
        spend = sum(r.spend[lo:hi])
        conv = sum(r.conversions[lo:hi])
        n = hi - lo
        per_seed.append(
            {
                "conversions_per_unit": conv / (spend / MICROS) if spend else 0.0,
                "conversions": conv / n,
                "utilisation": spend / (budget * n),
                "tracking_error": sum(r.tracking[lo:hi]) / n,
            }
        )
    out: dict[str, Any] = {}
    for metric in per_seed[0]:
        vals = [p[metric] for p in per_seed]
        worst = max(vals) if metric == "tracking_error" else min(vals)
        out[metric] = {"mean": float(np.mean(vals)), "worst": float(worst)}
    return out


# ---------------------------------------------------------------------------- forecasts
def observe_hours(
    m: Market, n_days: int, rng: np.random.Generator
) -> tuple[HourlyHistory, list[LocalDay]]:
    """Fully observed hourly aggregates (every click bought) for ``n_days`` days."""
    hist = HourlyHistory(horizon_hours=10**6)
    days = [m.day(i) for i in range(n_days)]
    for day in days:
        dc = generate_day(m, day, rng, 3600)
        for i in range(day.n_slots):
            sel = dc.slots == i
            hist.add(
                int(day.bounds[i] // 3600),
                int(dc.cost[sel].sum()),
                int(sel.sum()),
                int(dc.conv[sel].sum()),
                0,
                0,
            )
    return hist, days


def synthetic_history(
    m: Market, n_hours: int, *, seed: int = 0, clean: bool = False, horizon_hours: int = 29 * 24
) -> HourlyHistory:
    """The first ``n_hours`` hours of the market from ``m.start``, fully observed.

    ``clean``: expected values rounded (no noise: clicks, conversions and spend follow
    the generating rates exactly), else Poisson clicks, Bernoulli conversions and
    lognormal costs. For tests and the forecast study.
    """
    hist = HourlyHistory(horizon_hours=horizon_hours)
    rng = np.random.default_rng(seed)
    i = 0
    d = 0
    while i < n_hours:
        day = m.day(d)
        dc = None if clean else generate_day(m, day, rng, 3600)
        for s in range(day.n_slots):
            if i >= n_hours:
                break
            h = int(day.bounds[s] // 3600)
            hod = day.hours_of_day[s]
            if dc is None:
                clicks = round(m.clicks_per_hour(hod, day.weekday))
                conv = round(clicks * m.cr(hod, day.weekday))
                spend = round(clicks * m.cpc(hod, day.weekday) * MICROS)
            else:
                sel = dc.slots == s
                clicks = int(sel.sum())
                conv = int(dc.conv[sel].sum())
                spend = int(dc.cost[sel].sum())
            hist.add(h, spend, clicks, conv, 0, 0)
            i += 1
        d += 1
    return hist


def _truncated(hist: HourlyHistory, before: int, horizon: int) -> HourlyHistory:
    h = HourlyHistory(horizon_hours=horizon)
    h.buckets = {k: list(v) for k, v in hist.buckets.items() if before - horizon <= k < before}
    h.newest = before - 1
    return h


def _naive(hist: HourlyHistory, hours: Sequence[int], lag: int, start: int) -> tuple[Any, Any]:
    """Seasonal-naive CR and CPC per hour (value ``lag`` hours earlier; pooled rate of the
    previous week where that hour had no clicks)."""
    tot = hist.totals(start - 168, start)
    cr0 = tot[2] / tot[1] if tot[1] else 0.0
    cpc0 = tot[0] / MICROS / tot[1] if tot[1] else 0.0
    cr = []
    cpc = []
    for h in hours:
        b = hist.buckets.get(h - lag)
        if b is None or b[1] == 0:
            cr.append(cr0)
            cpc.append(cpc0)
        else:
            cr.append(b[2] / b[1])
            cpc.append(b[0] / MICROS / b[1])
    return np.array(cr), np.array(cpc)


def forecast_study(
    m: Market, seeds: Sequence[int], *, weeks: int = 4, test_days: int = 14
) -> dict[str, Any]:
    """Rolling-origin day-ahead forecast errors of every model and the baselines."""
    names = ["selected (CV)", *FULL_CANDIDATES, "seasonal-naive week", "seasonal-naive day"]
    names.append("true rates (noise floor)")
    err = {n: np.zeros(6) for n in names}  # |conv|, conv, |cr*clk - conv|, |cpc*clk - spend|,
    # spend, -
    chosen: dict[str, int] = {}
    train_s: list[float] = []
    for seed in seeds:
        rng = np.random.default_rng(10_000 + seed)
        n_days = weeks * 7
        hist, days = observe_hours(m, n_days, rng)
        for day in days[n_days - test_days :]:
            start = int(day.start // 3600)
            past = _truncated(hist, start, 29 * 24)
            ctx = AllocationContext(day, past, start)
            now = datetime.fromtimestamp(day.start, UTC)
            snap = snapshot(past, m.tz, now)
            hours = [int(day.bounds[i] // 3600) for i in range(day.n_slots)]
            act = np.array([hist.buckets.get(h, [0, 0, 0, 0, 0])[:3] for h in hours], dtype=float)
            spend = act[:, 0] / MICROS
            clicks = act[:, 1]
            conv = act[:, 2]
            preds: dict[str, tuple[Any, Any]] = {}
            t0 = time.perf_counter()
            sel = train(snap, now, seed=seed)
            train_s.append(time.perf_counter() - t0)
            f = sel.forecast(ctx)
            preds["selected (CV)"] = (np.array(f.conversion_rate), np.array(f.cost_per_click))
            assert sel.cr is not None and sel.cpc is not None
            pair = f"cr={sel.cr.name}, cpc={sel.cpc.name}"
            chosen[pair] = chosen.get(pair, 0) + 1
            for name in FULL_CANDIDATES:
                mdl = train(snap, now, seed=seed, candidates=(name,))
                g = mdl.forecast(ctx)
                preds[name] = (np.array(g.conversion_rate), np.array(g.cost_per_click))
            preds["seasonal-naive week"] = _naive(past, hours, 168, start)
            preds["seasonal-naive day"] = _naive(past, hours, 24, start)
            dow = day.weekday
            preds["true rates (noise floor)"] = (
                np.array([m.cr(h, dow) for h in day.hours_of_day]),
                np.array([m.cpc(h, dow) for h in day.hours_of_day]),
            )
            for name, (cr, cpc) in preds.items():
                eff = np.where(cpc > 0, cr / np.where(cpc > 0, cpc, 1.0), 0.0)
                e = err[name]
                e[0] += np.abs(eff * spend - conv).sum()
                e[1] += conv.sum()
                e[2] += np.abs(cr * clicks - conv).sum()
                e[3] += np.abs(cpc * clicks - spend).sum()
                e[4] += spend.sum()
    table = {
        n: {
            "wape_conversions_given_spend": float(e[0] / e[1]),
            "wape_conversion_rate": float(e[2] / e[1]),
            "wape_cost_per_click": float(e[3] / e[4]),
        }
        for n, e in err.items()
    }
    return {
        "test_days_per_seed": test_days,
        "history_weeks": weeks,
        "models": table,
        "selected_pairs": chosen,
        "train_seconds": {
            "mean": float(np.mean(train_s)),
            "p95": float(np.percentile(train_s, 95)),
            "max": float(np.max(train_s)),
        },
    }


# ---------------------------------------------------------------------------- entry
def run(
    days: int = 14,
    seeds: int | Sequence[int] = 3,
    out: str | Path = "out/forecast",
    *,
    step_s: int = 300,
    forecast_weeks: int = 4,
    quiet: bool = False,
) -> dict[str, Any]:
    """Run both studies, write ``out/forecast_report.json``, print tables; return the report."""
    if days < 2:
        raise ValueError("days must be at least 2")
    seed_list = list(range(1, seeds + 1)) if isinstance(seeds, int) else list(seeds)
    m = Market()
    budget = m.daily_budget_micros()
    t0 = time.perf_counter()
    runs: dict[str, list[RunResult]] = {s.value: [] for s in STRATEGIES}
    for seed in seed_list:
        rng = np.random.default_rng(seed)
        stream = [generate_day(m, m.day(i), rng, step_s) for i in range(days)]
        for strategy in STRATEGIES:
            runs[strategy.value].append(simulate(m, strategy, stream, seed))
    week2 = max(0, days - 7)
    pacing = {
        name: {
            "all_days": _summary(rs, budget, 0, days),
            "last_7_days": _summary(rs, budget, week2, days),
            "model_versions_last_day": sorted({r.versions[-1] for r in rs}),
            "confidence_last_day": float(np.mean([r.confidence[-1] for r in rs])),
            "train_seconds_mean": (
                float(np.mean([t for r in rs for t in r.train_s])) if rs[0].train_s else None
            ),
        }
        for name, rs in runs.items()
    }
    t_pacing = time.perf_counter() - t0
    forecasts = forecast_study(m, seed_list, weeks=forecast_weeks, test_days=min(14, days))
    report: dict[str, Any] = {
        "days": days,
        "seeds": seed_list,
        "step_s": step_s,
        "timezone": m.tz,
        "start": m.start.isoformat(),
        "daily_budget": budget / MICROS,
        "pacing": pacing,
        "forecast": forecasts,
        "seconds": {"pacing": t_pacing, "total": time.perf_counter() - t0},
    }
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    (path / "forecast_report.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    if not quiet:
        print_report(report)
    return report


def print_report(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=120)
    n = report["days"]
    t = Table(
        title=f"Pacing over {n} days, {len(report['seeds'])} seeds "
        f"({report['timezone']}, from {report['start']}); mean (worst seed)"
    )
    t.add_column("strategy", no_wrap=True)
    for c in (
        "conv/unit (vs even)",
        "conv/unit 7d",
        "conv/day",
        "conv/day 7d",
        "util.",
        "track err",
    ):
        t.add_column(c, justify="right")
    even = report["pacing"][PacingStrategy.EVEN_DISTRIBUTION.value]["all_days"]
    base = even["conversions_per_unit"]["mean"]
    order = [s.value for s in STRATEGIES if s.value in report["pacing"]]
    for name in order + sorted(set(report["pacing"]) - set(order)):
        p = report["pacing"][name]
        a = p["all_days"]
        w = p["last_7_days"]
        lift = a["conversions_per_unit"]["mean"] / base - 1 if base else 0.0
        t.add_row(
            name,
            f"{a['conversions_per_unit']['mean']:.4f} ({lift:+.1%})",
            f"{w['conversions_per_unit']['mean']:.4f}",
            f"{a['conversions']['mean']:.1f}",
            f"{w['conversions']['mean']:.1f}",
            f"{a['utilisation']['mean']:.1%} ({a['utilisation']['worst']:.1%})",
            f"{a['tracking_error']['mean']:.2%} ({a['tracking_error']['worst']:.2%})",
        )
    console.print(t)
    f = report["forecast"]
    t2 = Table(
        title=f"Day-ahead forecast error (WAPE), last {f['test_days_per_seed']} of "
        f"{f['history_weeks'] * 7} days, {len(report['seeds'])} seeds"
    )
    t2.add_column("model")
    for c in ("conversions | spend", "conv. rate", "cost per click"):
        t2.add_column(c, justify="right")
    for name, e in f["models"].items():
        t2.add_row(
            name,
            f"{e['wape_conversions_given_spend']:.3f}",
            f"{e['wape_conversion_rate']:.3f}",
            f"{e['wape_cost_per_click']:.3f}",
        )
    console.print(t2)
    ts = f["train_seconds"]
    console.print(
        f"selected pairs: {f['selected_pairs']}; training s mean {ts['mean']:.3f} "
        f"p95 {ts['p95']:.3f} max {ts['max']:.3f}; total {report['seconds']['total']:.0f}s"
    )


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default="out/forecast")
    ap.add_argument("--step-s", type=int, default=300)
    args = ap.parse_args(argv)
    run(args.days, args.seeds, args.out, step_s=args.step_s)


if __name__ == "__main__":
    main()
