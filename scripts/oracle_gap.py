"""How much of the free oracle's conversions a pacer could reach with what it can learn.

The free oracle (``sim.baselines.run_oracle``) ranks every batch of the day by its own
expected conversions per unit of cost: it knows each batch's price noise (+-15%), which
minutes are low-quality bursts and each hour's noise, none of which a pacer that takes
or skips batches in arrival order can know. This script ranks the same batches by what
a learner could know at best, and buys in that order until the budget is spent:

* ``hour-rate``: the channel's true conversion rate x its true quality for the local
  hour, over its mean cost per click (the noise-free pattern a forecast can learn);
* ``channel-rate``: the channel's conversion rate over its cost per click (no hours);

each with the budget free across the campaign's channels and bound to the operator's
split, and prints them as a share of the free oracle's conversions on the evaluation
days (campaigns with a late-platform runaway left out, as the report does).

With ``--pacer-split`` it also runs pacer-stream (ADAPTIVE_HYBRID with reallocation, as
the report does) and binds three oracles to what pacer-stream itself spent on each
channel that day: by each batch's own value, by the hour-rate above, and in arrival
order (no choice of hours). Against pacer-stream's own share this says whether its gap
lies in how it split the budget between channels or in which hours it spent each
channel's part.

    PYTHONPATH=. python scripts/oracle_gap.py --seeds 0-9
    PYTHONPATH=. python scripts/oracle_gap.py --seeds 0-9 --pacer-split
"""

from __future__ import annotations

import sys

import experiment_args
import numpy as np

from pacer_stream.sim.baselines import BatchValue, run_oracle
from pacer_stream.sim.metrics import trace_metrics
from pacer_stream.sim.pacer import run_pacer_days
from pacer_stream.sim.runner import seed_days
from pacer_stream.sim.scenario import CHUNKS, MINUTES
from pacer_stream.sim.trace import Trace
from pacer_stream.sim.traffic import Traffic

#: The hour of the day of each minute of the grid (a 25th hour's minutes count as the
#: 24th's: the true hour quality has 24 entries).
HOUR_OF = np.minimum(np.arange(MINUTES) // 60, 23)


def learnable_value(hours: bool) -> BatchValue:
    """The ``hour-rate`` (``hours``) or ``channel-rate`` value of a campaign's batches:
    the same for every batch of a channel (and local hour)."""

    def value(traffic: Traffic, c: int, channels: list[int]) -> np.ndarray:
        rate = (traffic.cvr[c] / traffic.cpc[c])[channels]  # [H]
        if hours:
            per_minute = rate[:, None] * traffic.true_hour_quality[c][channels][:, HOUR_OF]
        else:
            per_minute = np.repeat(rate[:, None], MINUTES, axis=1)
        return np.repeat(per_minute[..., None], CHUNKS, axis=2).reshape(-1)

    return value


def ranked_oracle(
    traffic: Traffic, *, hours: bool, per_channel: bool, budgets: np.ndarray | None = None
) -> Trace:
    """Buy batches in order of a learnable value (ties in arrival order) up to the
    budget, per campaign (or per channel with ``per_channel``; ``budgets`` [campaign,
    channel] in place of the operator's)."""
    return run_oracle(
        traffic, per_channel=per_channel, budgets=budgets, value=learnable_value(hours)
    )


def main(argv: list[str] | None = None) -> int:
    ap = experiment_args.parser(__doc__.split("\n\n")[0], seeds="0-9")
    ap.add_argument("--pacer-split", action="store_true", help="oracles on pacer-stream's split")
    args = ap.parse_args(argv)
    scenario = experiment_args.scenario(args)
    rows: dict[str, list[float]] = {}
    for seed in experiment_args.seed_list(args.seeds):
        all_days = seed_days(seed, scenario)
        days = all_days[args.warmup_days :]
        pacer = (
            run_pacer_days(all_days, reallocate=True, train_seed=seed)[args.warmup_days :]
            if args.pacer_split
            else [None] * len(days)
        )
        conv: dict[str, list[float]] = {}
        for (traffic, plan), paced in zip(days, pacer, strict=True):
            apart = plan.late_runaway_campaigns()
            runs = {
                "oracle-free": run_oracle(traffic),
                "oracle-split": run_oracle(traffic, per_channel=True),
                "hour-rate, free": ranked_oracle(traffic, hours=True, per_channel=False),
                "hour-rate, split": ranked_oracle(traffic, hours=True, per_channel=True),
                "channel-rate, free": ranked_oracle(traffic, hours=False, per_channel=False),
                "channel-rate, split": ranked_oracle(traffic, hours=False, per_channel=True),
            }
            if paced is not None:
                spent = paced.spend.sum(axis=2)  # what pacer-stream spent per channel
                runs["pacer-stream"] = paced
                runs["per-batch, pacer's split"] = run_oracle(
                    traffic, per_channel=True, budgets=spent
                )
                runs["hour-rate, pacer's split"] = ranked_oracle(
                    traffic, hours=True, per_channel=True, budgets=spent
                )
                runs["arrival order, pacer's split"] = ranked_oracle(
                    traffic, hours=False, per_channel=True, budgets=spent
                )
            for name, trace in runs.items():
                m = trace_metrics(trace, traffic, apart)
                conv.setdefault(name, []).append(m["conversions"])
                conv.setdefault(name + " util", []).append(m["utilisation"])
        free = float(np.mean(conv["oracle-free"]))
        for name, vals in conv.items():
            v = float(np.mean(vals))
            rows.setdefault(name, []).append(v if name.endswith("util") else v / free)
    for name, vals in rows.items():
        print(f"{name:28s} mean {np.mean(vals):.3f}  worst {min(vals):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
