"""Where a prompt runaway's excess comes from, incident by incident.

Runs pacer-stream (ADAPTIVE_HYBRID, reallocation on) over the multi-day scenario of the
report and prints, for every prompt runaway incident of the evaluation days: the
channel's configured budget, its usual batch cost, each unasked event the bidder got
out (time, amount, share of the budget), the first unauthorised spend, when it could
first be reported, when the breaker opened and why, and the excess split into what was
sent before the first report could arrive and after.

    PYTHONPATH=. python scripts/runaway_incidents.py --seeds 0-19

It only observes: the engine and the bidder run exactly as in ``pacer-stream simulate``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

import experiment_args
import numpy as np

from pacer_stream.core.types import BreakerTransition, Output
from pacer_stream.sim import pacer
from pacer_stream.sim.runner import seed_days
from pacer_stream.sim.trace import RunawayOutcome

MICROS = 1_000_000


@dataclass(slots=True)
class _Recorded(RunawayOutcome):
    """A runaway outcome that also keeps every unasked event and breaker transition."""

    events: list[tuple[float, int]] = field(default_factory=list)
    transitions: list[tuple[float, str, str]] = field(default_factory=list)

    def spent(self, t: float, amount: int) -> None:
        self.events.append((t, amount))
        RunawayOutcome.spent(self, t, amount)


def _patch() -> None:
    """Record every unasked event and the runaway channel's breaker transitions."""
    pacer.RunawayOutcome = _Recorded  # type: ignore[misc]
    original = pacer._Campaign._outputs

    def outputs(self: Any, outs: list[Output], rel: float) -> None:
        original(self, outs, rel)
        for o in outs:
            if not isinstance(o, BreakerTransition):
                continue
            for h, out in self.outcomes.items():
                if o.channel == self.channels[h] and isinstance(out, _Recorded):
                    at = o.since.timestamp() - self.start
                    out.transitions.append((at, o.state.value, o.cause.value))

    pacer._Campaign._outputs = outputs  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    ap = experiment_args.parser(__doc__.split("\n\n")[0], seeds="0-3")
    ap.add_argument("--all", action="store_true", help="print every incident, not only > 1%%")
    args = ap.parse_args(argv)
    _patch()
    scenario = experiment_args.scenario(args)
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for seed in experiment_args.seed_list(args.seeds):
        days = seed_days(seed, scenario)
        traces = pacer.run_pacer_days(days, train_seed=seed)
        for d in range(args.warmup_days, args.days):
            traffic, _ = days[d]
            for r in traces[d].runaways:
                if r.late or not isinstance(r, _Recorded):
                    continue
                budget = int(traffic.budget[r.campaign, r.channel])
                costs = traffic.cost[r.campaign, r.channel]
                usual = costs[costs > 0]
                first = r.first_spend_s
                report = None if first is None else first + r.report_delay_s
                before = sum(a for t, a in r.events if report is None or t < report)
                opened = [t for t, s, _ in r.transitions if s == "open"]
                causes = [c for _, s, c in r.transitions if s == "open"]
                rows.append(
                    {
                        "seed": seed,
                        "day": d,
                        "campaign": r.campaign,
                        "channel": traffic.channels[r.channel].value,
                        "budget": budget / MICROS,
                        "usual_event": float(np.median(usual)) / MICROS if usual.size else 0.0,
                        "events": [(t - r.start_minute * 60.0, a / budget) for t, a in r.events],
                        "first": None if first is None else first - r.start_minute * 60.0,
                        "report": None if report is None else report - r.start_minute * 60.0,
                        "opened": [t - r.start_minute * 60.0 for t in opened],
                        "causes": causes,
                        "excess": r.excess_micros / budget,
                        "before": before / budget,
                        "after": (r.excess_micros - before) / budget,
                        "detect": r.detect_minutes,
                    }
                )
    rows.sort(key=lambda x: -x["excess"])
    above = sum(1 for x in rows if x["excess"] > 0.02)
    for x in rows:
        if not args.all and x["excess"] <= 0.01:
            continue
        ev = " ".join(f"{t:.1f}s:{s:.1%}" for t, s in x["events"])
        print(
            f"seed {x['seed']} day {x['day']} c{x['campaign']} {x['channel']}: "
            f"budget {x['budget']:.0f}, usual event {x['usual_event']:.2f}; "
            f"excess {x['excess']:.2%} = before report {x['before']:.2%} + after "
            f"{x['after']:.2%}; first {x['first']}, report {x['report']}, "
            f"open {[round(t, 1) for t in x['opened']]} {x['causes']}; "
            f"detect {x['detect']:.2f} min\n    events (s from start: share): {ev}"
        )
    if rows:
        ex = [x["excess"] for x in rows]
        af = [x["after"] for x in rows]
        print(
            f"{len(rows)} incidents: excess mean {np.mean(ex):.2%}, worst {max(ex):.2%}, "
            f"{above} above 2%; after the first report mean {np.mean(af):.2%}, "
            f"worst {max(af):.2%} ({time.perf_counter() - t0:.0f} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
