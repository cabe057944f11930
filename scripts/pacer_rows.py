"""pacer-stream's own rows of the multi-day report, alone: quick before/after checks of
an engine rule without the baselines and the other strategies.

Runs pacer-stream (ADAPTIVE_HYBRID) with reallocation and with the static split on the
report's scenario, the free oracle, the oracle bound to the operator's split and the
even gate, and prints mean / worst seed of utilisation (both runs), conversions as a
share of the free oracle's (and the split-bound oracle's share), the reallocation gain,
conversions per unit against the even gate's, alive, exhausted before 18:00, tracking
error and the prompt runaway excess, computed by the simulator's own metrics
(``sim.metrics``, per seed as the report does).

    PYTHONPATH=. python scripts/pacer_rows.py --seeds 0-9
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import experiment_args
import numpy as np

from pacer_stream.sim.baselines import run_gate, run_oracle
from pacer_stream.sim.metrics import trace_metrics
from pacer_stream.sim.pacer import run_pacer_days
from pacer_stream.sim.runner import combine_days, seed_days
from pacer_stream.sim.scenario import Scenario

KEYS = (
    "utilisation",
    "conversions",
    "conversions_per_unit",
    "alive",
    "exhausted_before_18",
    "exhausted_before_22",
    "tracking_error",
    "runaway_excess_share_max",
    "overspend_beyond_one_event",
)


def one_seed(seed: int, scenario: Scenario) -> dict[str, Any]:
    days = seed_days(seed, scenario)
    evaluation = days[scenario.warmup_days :]
    out: dict[str, Any] = {}
    for name, realloc in (("pacer", True), ("static", False)):
        traces = run_pacer_days(days, reallocate=realloc, train_seed=seed)
        figures = combine_days(
            [
                trace_metrics(tr, t, p.late_runaway_campaigns())
                for tr, (t, p) in zip(traces[scenario.warmup_days :], evaluation, strict=True)
            ]
        )
        out[name] = {k: figures[k] for k in KEYS}
    oracle = combine_days(
        [trace_metrics(run_oracle(t), t, p.late_runaway_campaigns()) for t, p in evaluation]
    )
    out["oracle_conversions"] = oracle["conversions"]
    split = combine_days(
        [
            trace_metrics(run_oracle(t, per_channel=True), t, p.late_runaway_campaigns())
            for t, p in evaluation
        ]
    )
    out["oracle_split_conversions"] = split["conversions"]
    even = combine_days(
        [
            trace_metrics(run_gate("even-gate", t, p), t, p.late_runaway_campaigns())
            for t, p in evaluation
        ]
    )
    out["even_conversions_per_unit"] = even["conversions_per_unit"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = experiment_args.parser(__doc__.split("\n\n")[0], seeds="0-9")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--per-seed", action="store_true", help="also print each seed's figures")
    args = ap.parse_args(argv)
    scenario = experiment_args.scenario(args)
    seeds = experiment_args.seed_list(args.seeds)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(one_seed, seeds, [scenario] * len(seeds)))
    rows: dict[str, list[float]] = {}
    for r in results:
        p, s, oc = r["pacer"], r["static"], r["oracle_conversions"]
        rows.setdefault("utilisation", []).append(p["utilisation"])
        rows.setdefault("utilisation, static split", []).append(s["utilisation"])
        rows.setdefault("utilisation - static", []).append(p["utilisation"] - s["utilisation"])
        rows.setdefault("oracle share", []).append(p["conversions"] / oc)
        rows.setdefault("oracle share, static split", []).append(s["conversions"] / oc)
        rows.setdefault("oracle share, split oracle", []).append(r["oracle_split_conversions"] / oc)
        rows.setdefault("reallocation gain", []).append(p["conversions"] / s["conversions"] - 1)
        rows.setdefault("conv/unit vs even gate", []).append(
            p["conversions_per_unit"] / r["even_conversions_per_unit"] - 1
        )
        for k in KEYS[3:]:
            rows.setdefault(k, []).append(p[k])
    if args.per_seed:
        names = list(rows)
        print("seed  " + "  ".join(f"{n[:14]:>14s}" for n in names))
        for i, seed in enumerate(seeds):
            cells = ("-" if rows[n][i] is None else f"{rows[n][i]:.4f}" for n in names)
            print(f"{seed:4d}  " + "  ".join(f"{c:>14s}" for c in cells))
    worse_high = {"exhausted_before_18", "exhausted_before_22", "tracking_error"}
    worse_high |= {"runaway_excess_share_max", "overspend_beyond_one_event"}
    for name, vals in rows.items():
        arr = np.asarray([v for v in vals if v is not None], dtype=float)
        worst = arr.max() if name in worse_high else arr.min()
        print(f"{name:28s} mean {arr.mean():.5f}  worst {worst:.5f}")
    print(f"seeds {seeds[0]}-{seeds[-1]} ({len(seeds)}), {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
