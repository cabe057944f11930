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
  take what is left).

Prints each buyer's conversions as a share of the free oracle's, its utilisation and
its tracking error against the plan it would make at the day's start (yesterday's
supply in the hours at or above the first threshold, scaled to the budget), beside
pacer-stream's and the hindsight hour-rate oracle's (evaluation days, campaigns with a
late-platform runaway left out, as the report does; every figure by ``sim.metrics``).

    PYTHONPATH=. python scripts/causal_threshold.py --seeds 0-9
"""

from __future__ import annotations

import sys

import experiment_args
import numpy as np
from oracle_gap import ranked_oracle

from pacer_stream.sim.baselines import run_oracle
from pacer_stream.sim.metrics import trace_metrics
from pacer_stream.sim.pacer import run_pacer_days
from pacer_stream.sim.runner import seed_days
from pacer_stream.sim.scenario import CHUNKS, MINUTES
from pacer_stream.sim.trace import Trace, empty_trace
from pacer_stream.sim.traffic import Traffic

HOUR_OF = np.minimum(np.arange(MINUTES) // 60, 23)
#: The buyers: name -> (slack, extra slack reached at midnight, rising from 18:00).
BUYERS = {
    "threshold, slack 1.0": (1.0, 0.0),
    "threshold, slack 1.3": (1.3, 0.0),
    "threshold, slack 1.3 -> 3.0 after 18:00": (1.3, 1.7),
}


def threshold_at(values: np.ndarray, supply: np.ndarray, need: float) -> float:
    """The value at which ``supply`` (per entry, at ``values``), taken best first,
    reaches ``need``; -1 (take anything) when all of it does not."""
    taken = 0.0
    for i in np.argsort(-values, kind="stable"):
        taken += supply[i]
        if taken >= need:
            return float(values[i])
    return -1.0


def day_plan(value: np.ndarray, ahead: np.ndarray, budget: int, slack: float) -> np.ndarray:
    """The buyer's expected spend at the day's start, cumulative per minute boundary:
    yesterday's supply in the hours at or above the day's first threshold, scaled to
    ``budget`` (what a pacer built on the rule would plan and be tracked against)."""
    per_hour = ahead[np.arange(1, 25) * 60] - ahead[np.arange(24) * 60]
    bar = threshold_at(value, per_hour, budget * slack)
    per_minute = np.diff(ahead) * (value[HOUR_OF] >= bar)
    total = per_minute.sum()
    if total <= 0:
        return np.zeros(MINUTES + 1)
    return np.concatenate([[0.0], np.cumsum(per_minute)]) * budget / total


def causal_buyer(
    traffic: Traffic, yesterday: Traffic, budgets: np.ndarray, slack: float, late: float
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
            trace.plan[c] += day_plan(value, ahead, left, slack)
            for m in range(MINUTES):
                if left <= 0:
                    break
                hour = int(HOUR_OF[m])
                ends = np.arange(hour + 1, 25) * 60
                starts = np.concatenate([[m], ends[:-1]])
                supply = ahead[ends] - ahead[starts]
                need = left * (slack + late * max(0.0, (m - 1080) / 360))
                if value[hour] < threshold_at(value[hour:], supply, need):
                    continue
                for k in range(CHUNKS):
                    x = int(cost[m, k])
                    if 0 < x <= left:
                        left -= x
                        trace.spend[c, h, m] += x
                        trace.conversions[c, h] += int(real[m, k])
    total = int(trace.spend.sum())
    trace.unique_micros = trace.recorded_micros = total
    return trace


def main(argv: list[str] | None = None) -> int:
    ap = experiment_args.parser(__doc__.split("\n\n")[0], seeds="0-9")
    args = ap.parse_args(argv)
    scenario = experiment_args.scenario(args)
    rows: dict[str, list[float]] = {}
    for seed in experiment_args.seed_list(args.seeds):
        all_days = seed_days(seed, scenario)
        paced = run_pacer_days(all_days, reallocate=True, train_seed=seed)
        figures: dict[str, list[float]] = {}
        for d in range(args.warmup_days, len(all_days)):
            traffic, plan = all_days[d]
            spent = paced[d].spend.sum(axis=2)  # what pacer-stream spent per channel
            runs = {
                "oracle-free": run_oracle(traffic),
                "pacer-stream": paced[d],
                "hour-rate with hindsight, pacer's split": ranked_oracle(
                    traffic, hours=True, per_channel=True, budgets=spent
                ),
            }
            for name, (slack, late) in BUYERS.items():
                runs[name] = causal_buyer(traffic, all_days[d - 1][0], spent, slack, late)
            apart = plan.late_runaway_campaigns()
            for name, trace in runs.items():
                m = trace_metrics(trace, traffic, apart)
                figures.setdefault(name, []).append(m["conversions"])
                figures.setdefault(name + " | utilisation", []).append(m["utilisation"])
                if name in BUYERS or name == "pacer-stream":
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
