"""How much of the hour-rate bound a buyer that does not know the day ahead could reach.

``oracle_gap.py --pacer-split`` binds an oracle to what pacer-stream spent on each
channel and buys the channel's batches in order of the channel's true hour quality: it
knows how much traffic each hour of *this* day will offer. This script buys the same
channel spend without that hindsight, minute by minute in arrival order:

* the buyer knows the channel's hour quality (the noise-free daily pattern the forecast
  learns; one daily harmonic, the form ``core.forecast.hour_curve`` fits) and only
  *yesterday's* traffic, minute by minute, as its forecast of the supply still ahead;
* at each minute it sets a threshold: the hour quality at which the supply expected in
  the hours still ahead, best hours first, covers ``slack`` x the budget it has left
  (the rest of the current hour counts at the same quality); it buys this minute's
  batches when the hour's quality reaches the threshold, while the budget lasts;
* ``slack`` above 1 lowers the threshold, buying against a forecast that may be too
  high (the late variant raises it from 18:00 to midnight, so the day's last hours
  take what is left);
* with frontload protection, the first hours of the day spend at most half their
  normal allocation, as the engine's default ``Thresholds`` hold them: normal being the
  hour's amount in the buyer's own day-start plan, or an even hour's.

Which channel budgets it buys (``--split``) matters:

* ``pacer`` (the default): what pacer-stream spent on each channel, the split its
  reallocation reached by the day's end. A buyer handed it places money moved in the
  afternoon in that channel's morning hours, which no controller can: it knows the
  day's moves in advance;
* ``start``: the split pacer-stream started the day from (learned from the days
  before, ``Trace.start_budget``), before any move of the day: what a controller
  knows at midnight;
* ``operator``: the operator's configured budgets, the split pacer-stream keeps
  without reallocation (its static-split run, printed beside it).

Prints each buyer's conversions as a share of the free oracle's, its utilisation and
its tracking error against the plan it would make at the day's start (yesterday's
supply, within its hour caps, in the hours at or above the first threshold, scaled to
the budget), beside pacer-stream's and the hindsight hour-rate oracle's (evaluation
days, campaigns with a late-platform runaway left out, as the report does; every
figure by ``sim.metrics``).

    PYTHONPATH=. python scripts/causal_threshold.py --seeds 0-9 [--split start]
"""

from __future__ import annotations

import sys

import experiment_args
import numpy as np
from oracle_gap import HOUR_OF, ranked_oracle

from pacer_stream.core.types import Thresholds
from pacer_stream.sim.baselines import run_oracle
from pacer_stream.sim.metrics import trace_metrics
from pacer_stream.sim.pacer import run_pacer_days
from pacer_stream.sim.runner import seed_days
from pacer_stream.sim.scenario import CHUNKS, MINUTES
from pacer_stream.sim.trace import Trace, empty_trace
from pacer_stream.sim.traffic import Traffic

#: What ``--split`` buys: name -> what it is.
SPLITS = {
    "pacer": "pacer-stream's channel spend (its split at the day's end)",
    "start": "the split pacer-stream starts the day from",
    "operator": "the operator's configured budgets",
}
#: The buyers: name -> (slack, extra slack reached at midnight, rising from 18:00,
#: frontload protection: None, "plan" or "even", hour ceiling: None or a multiple of
#: the hour's supply yesterday).
BUYERS: dict[str, tuple[float, float, str | None, float | None]] = {
    "threshold, slack 1.0": (1.0, 0.0, None, None),
    "threshold, slack 1.3": (1.3, 0.0, None, None),
    "threshold, slack 1.3 -> 3.0 after 18:00": (1.3, 1.7, None, None),
    "the same, frontload protection on its plan": (1.3, 1.7, "plan", None),
    "the same, frontload protection on the even hour": (1.3, 1.7, "even", None),
    "the same, each hour at most 0.9 x its supply yesterday": (1.3, 1.7, None, 0.9),
    "the same, frontload (plan) and hours at most 0.9 x supply": (1.3, 1.7, "plan", 0.9),
}
#: Frontload protection as the engine's defaults set it (``Thresholds``): the first
#: hours of the day spend at most this share of their normal allocation.
FRONTLOAD_HOURS = Thresholds().frontload_protection_hours
FRONTLOAD_FACTOR = Thresholds().frontload_factor


def per_hour(cum: np.ndarray) -> np.ndarray:
    """The 24 hourly amounts of a cumulative per-minute-boundary series."""
    return cum[np.arange(1, 25) * 60] - cum[np.arange(24) * 60]


def threshold_at(values: np.ndarray, supply: np.ndarray, need: float) -> float:
    """The value at which ``supply`` (per entry, at ``values``), taken best first,
    reaches ``need``; -1 (take anything) when all of it does not."""
    taken = 0.0
    for i in np.argsort(-values, kind="stable"):
        taken += supply[i]
        if taken >= need:
            return float(values[i])
    return -1.0


def day_plan(
    value: np.ndarray,
    ahead: np.ndarray,
    budget: int,
    slack: float,
    caps: np.ndarray | None = None,
) -> np.ndarray:
    """The buyer's expected spend at the day's start, cumulative per minute boundary:
    yesterday's supply (within each hour's cap, when given) in the hours at or above
    the day's first threshold, scaled to ``budget`` (what a pacer built on the rule
    would plan and be tracked against)."""
    supply = per_hour(ahead)
    scale = np.ones(24)
    if caps is not None:
        scale = np.divide(caps, supply, out=np.ones(24), where=supply > 0).clip(max=1.0)
        supply = supply * scale
    bar = threshold_at(value, supply, budget * slack)
    per_minute = np.diff(ahead) * (value[HOUR_OF] >= bar) * scale[HOUR_OF]
    total = per_minute.sum()
    if total <= 0:
        return np.zeros(MINUTES + 1)
    return np.concatenate([[0.0], np.cumsum(per_minute)]) * budget / total


def hour_caps(
    plan: np.ndarray,
    ahead: np.ndarray,
    budget: int,
    frontload: str | None,
    ceiling: float | None,
) -> np.ndarray:
    """Per hour, what the buyer may spend in it: no limit, except

    * with ``ceiling``, that multiple of the hour's supply yesterday (``ahead``,
      cumulative per minute boundary), as the engine caps an hour at a share of the
      demand it offered on past days (``allocation.capacity``);
    * with ``frontload``, in the first :data:`FRONTLOAD_HOURS` hours,
      :data:`FRONTLOAD_FACTOR` x the hour's amount in the buyer's own day-start plan
      (``plan``, cumulative per minute boundary; ``"plan"``) or x an even hour's
      (``budget`` / 24; ``"even"``)."""
    caps = np.full(24, np.inf)
    if ceiling is not None:
        caps = per_hour(ahead) * ceiling
    if frontload is not None:
        normal = per_hour(plan) if frontload == "plan" else np.full(24, budget / 24)
        first = normal[:FRONTLOAD_HOURS] * FRONTLOAD_FACTOR
        caps[:FRONTLOAD_HOURS] = np.minimum(caps[:FRONTLOAD_HOURS], first)
    return caps


def causal_buyer(
    traffic: Traffic,
    yesterday: Traffic,
    budgets: np.ndarray,
    slack: float,
    late: float,
    frontload: str | None = None,
    ceiling: float | None = None,
) -> Trace:
    """Buy each campaign/channel's ``budgets`` with the threshold rule (module doc)."""
    n_c, n_h = traffic.n_campaigns, traffic.n_channels
    trace = empty_trace("threshold", n_c, n_h, MINUTES, traffic.budget)
    for c in range(n_c):
        rate = traffic.cvr[c] / traffic.cpc[c]
        for h in range(n_h):
            value = rate[h] * traffic.true_hour_quality[c][h]  # [24]
            ahead = np.concatenate([[0.0], np.cumsum(yesterday.cost[c, h].sum(axis=1))])
            cost, real = traffic.cost[c, h], traffic.conversions[c, h]
            left = int(budgets[c, h])
            caps = hour_caps(day_plan(value, ahead, left, slack), ahead, left, frontload, ceiling)
            trace.plan[c] += day_plan(value, ahead, left, slack, caps)
            in_hour = np.zeros(24)
            for m in range(MINUTES):
                if left <= 0:
                    break
                hour = int(HOUR_OF[m])
                ends = np.arange(hour + 1, 25) * 60
                starts = np.concatenate([[m], ends[:-1]])
                # What it can take of the supply ahead: within each hour's cap (the
                # current hour's: what is left of it).
                room = caps[hour:].copy()
                room[0] -= in_hour[hour]
                supply = np.minimum(ahead[ends] - ahead[starts], room)
                need = left * (slack + late * max(0.0, (m - 1080) / 360))
                if value[hour] < threshold_at(value[hour:], supply, need):
                    continue
                for k in range(CHUNKS):
                    x = int(cost[m, k])
                    if 0 < x <= left and in_hour[hour] + x <= caps[hour]:
                        left -= x
                        in_hour[hour] += x
                        trace.spend[c, h, m] += x
                        trace.conversions[c, h] += int(real[m, k])
    total = int(trace.spend.sum())
    trace.unique_micros = trace.recorded_micros = total
    return trace


def main(argv: list[str] | None = None) -> int:
    ap = experiment_args.parser(__doc__.split("\n\n")[0], seeds="0-9")
    ap.add_argument(
        "--split",
        choices=SPLITS,
        default="pacer",
        help="the channel budgets bought: " + "; ".join(f"{k}: {v}" for k, v in SPLITS.items()),
    )
    args = ap.parse_args(argv)
    scenario = experiment_args.scenario(args)
    rows: dict[str, list[float]] = {}
    for seed in experiment_args.seed_list(args.seeds):
        all_days = seed_days(seed, scenario)
        paced = run_pacer_days(all_days, reallocate=True, train_seed=seed)
        static = (
            run_pacer_days(all_days, reallocate=False, train_seed=seed)
            if args.split == "operator"
            else None
        )
        figures: dict[str, list[float]] = {}
        for d in range(args.warmup_days, len(all_days)):
            traffic, plan = all_days[d]
            budgets = {
                "pacer": paced[d].spend.sum(axis=2),
                "start": paced[d].start_budget,
                "operator": traffic.budget,
            }[args.split]
            runs = {
                "oracle-free": run_oracle(traffic),
                "pacer-stream": paced[d],
                f"hour-rate with hindsight, {args.split} split": ranked_oracle(
                    traffic, hours=True, per_channel=True, budgets=budgets
                ),
            }
            if static is not None:
                runs["pacer-stream, static split"] = static[d]
            yesterday = all_days[d - 1][0]
            for name, (slack, late, frontload, ceiling) in BUYERS.items():
                runs[name] = causal_buyer(
                    traffic, yesterday, budgets, slack, late, frontload, ceiling
                )
            apart = plan.late_runaway_campaigns()
            for name, trace in runs.items():
                m = trace_metrics(trace, traffic, apart)
                figures.setdefault(name, []).append(m["conversions"])
                figures.setdefault(name + " | utilisation", []).append(m["utilisation"])
                if name in BUYERS or name.startswith("pacer-stream"):
                    tracking = m["tracking_error"]
                    figures.setdefault(name + " | tracking error", []).append(tracking)
        free = float(np.mean(figures["oracle-free"]))
        for name, values in figures.items():
            v = float(np.mean(values))
            rows.setdefault(name, []).append(v if " | " in name else v / free)
    for name, values in rows.items():
        worst = max(values) if "tracking" in name else min(values)
        print(f"{name:56s} mean {np.mean(values):.3f}  worst {worst:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
