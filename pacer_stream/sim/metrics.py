"""The pacing-quality metrics of docs/targets.md, computed the same way for every strategy.

Per seed (one simulated day, all campaigns):

* ``utilisation``: mean over campaigns of spent / daily budget (every campaign counts
  the same; runaway spend included, so it can exceed 1).
* ``overspend_share``: money spent above each channel's (final) budget, summed, over the
  total budget. ``overspend_beyond_one_event`` (extra) counts channels whose overspend is
  larger than their largest single spend event (the target: at most one in-flight event).
* ``tracking_error``: mean over campaigns of the mean over the day's minute boundaries of
  |cumulative spend - planned cumulative spend| / budget. The plan is the strategy's
  own (pacer-stream: the engine's ``planned_at`` summed over channels; gates: their cap
  curve; asap and oracle, which have none: the even line).
* ``exhausted_before_18`` / ``_22``: share of campaigns that stop being able to spend for
  good (99% of the budget spent, or every channel blocked until midnight) before
  18:00 / 22:00 local wall-clock time (on a 23-hour DST day, 22:00 is 1260 minutes
  after midnight, not 1320).
* ``alive``: share of campaign-minutes in which the campaign can still spend (less than
  99% of the budget spent and at least one channel neither blocked by a breaker nor out
  of budget), over the minutes of each campaign's local day (a 23-hour day has 1380:
  the grid's last hour is not part of it, and counting it as "unable" charged every
  strategy an hour for a day that had ended).
* ``conversions_per_unit``: conversions / currency units spent (all campaigns).
* ``oracle_share``: conversions / the free oracle's (``oracle-free``) conversions on the
  same days.
* ``runaway_detect_minutes``: mean minutes from a runaway's first *reported*
  unauthorised spend until its spend was stopped (0 = stopped before it spent; 15 =
  never stopped during the incident), over the incidents on promptly reporting channels.
* ``runaway_excess_share``: mean unauthorised runaway spend as a share of the affected
  channel's configured daily budget (the same incidents). Extras ``_max`` and
  ``runaway_excess_after_report_share`` (and ``_max``): the part spent once the first
  unauthorised spend could have been reported, what a controller could have stopped.
* ``runaway_late_*`` (extras): the incidents on late-reporting channels, apart:
  ``runaway_late_detect_minutes`` counts from the first unauthorised spend itself (the
  engine cannot know of it before the platform reports it: judged against the
  reporting delay + 1 minute), ``runaway_late_excess_share`` as above, and
  ``runaway_late_overspend_beyond_one_event`` the number of those channels that ended
  more than their largest event above their budget, and
  ``runaway_late_authorised_overspend_beyond_one_event`` the same with the runaway's
  own unasked spend left out (what the controller itself let through: the unasked
  spend of the reporting delay is out of any controller's reach).
* ``double_counted_micros``: spend in the controller's books minus the spend of the
  unique events (pacer-stream: every micro the engine recorded, late ones included).
* ``reallocation_gain``: conversions with reallocation / conversions of the same
  controller with the static split - 1 (pacer-stream run twice; ``oracle-free`` over
  ``oracle-split``; 0 for the gates, which never reallocate). Extra
  ``reallocation_utilisation_gain``: utilisation with reallocation minus the static
  split's (the same pairs): below 0, reallocation stranded budget on receivers.

Multi-day runs: every figure is computed per evaluation day (warm-up days excluded) and
a seed's figure is the mean over those days (``*_max`` extras: the largest; counts and
double-counted micros: the sum).

Over seeds each metric is reported as ``mean`` and ``worst`` (the worst seed in the
metric's bad direction).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

from pacer_stream.sim.baselines import GATES
from pacer_stream.sim.scenario import HIGHER_IS_BETTER, METRICS, MINUTES, ORACLE_FREE, ORACLE_SPLIT
from pacer_stream.sim.trace import Trace
from pacer_stream.sim.traffic import MICROS, Traffic, minutes_to_wall_clock

ALIVE_SPENT_SHARE = 0.99
HOUR_18 = 18 * 60
HOUR_22 = 22 * 60

Value = float | None
#: Metrics of the runaways on late-reporting platforms (judged apart; lower is better).
LATE_RUNAWAY_METRICS = (
    "runaway_late_detect_minutes",
    "runaway_late_detect_minutes_max",
    "runaway_late_excess_share",
    "runaway_late_excess_share_max",
    "runaway_late_overspend_beyond_one_event",
    "runaway_late_authorised_overspend_beyond_one_event",
)

#: Extras whose bad direction is up (every other extra: higher is better).
_LOWER_IS_BETTER_EXTRAS = {
    "overspend_beyond_one_event",
    "tracking_error_p95",
    "spend_units",
    "runaway_detect_minutes_max",
    "runaway_excess_share_max",
    "runaway_excess_campaign_share",
    "runaway_excess_after_report_share",
    "runaway_excess_after_report_share_max",
    *LATE_RUNAWAY_METRICS,
}


def trace_metrics(trace: Trace, traffic: Traffic, apart: Collection[int] = ()) -> dict[str, Any]:
    """Everything that depends on one trace alone (cross-strategy ratios come later).

    ``apart``: campaigns judged only by the ``runaway_late_*`` figures (a runaway on a
    late-reporting platform: the unasked spend of the reporting delay, out of any
    controller's reach, blows their budget), left out of every other figure, for every
    strategy alike (``FaultPlan.late_runaway_campaigns``)."""
    keep = np.ones(traffic.n_campaigns, dtype=bool)
    keep[[c for c in apart if 0 <= c < traffic.n_campaigns]] = False
    if not keep.any():
        keep[:] = True
    budget_c = traffic.budget.sum(axis=1).astype(np.float64)
    spend_ch = trace.spend.sum(axis=2)
    spend_all = spend_ch.sum(axis=1).astype(np.float64)
    over_all = np.maximum(0, spend_ch - trace.budget)
    over = over_all[keep]
    beyond = int(np.count_nonzero(over > trace.max_event[keep]))

    cum = np.concatenate(
        [np.zeros((trace.spend.shape[0], 1)), np.cumsum(trace.spend.sum(axis=1), axis=1)], axis=1
    )[keep]
    budget_c = budget_c[keep]
    spend_c = spend_all[keep]
    gap = np.abs(cum - trace.plan[keep])[:, 1:] / budget_c[:, None]
    tracking = float(gap.mean(axis=1).mean())

    able = trace.able[keep].any(axis=1)
    n_day = np.minimum(traffic.day_minutes[keep], MINUTES)
    in_day = np.arange(MINUTES)[None, :] < n_day[:, None]
    alive = (cum[:, :MINUTES] < ALIVE_SPENT_SHARE * budget_c[:, None]) & able & in_day
    # Exhausted at: one past the last minute the campaign could spend (1440 = never).
    last = np.where(alive.any(axis=1), MINUTES - 1 - np.argmax(alive[:, ::-1], axis=1), -1)
    exhausted_at = last + 1
    exhausted_at = np.where(alive[np.arange(len(n_day)), n_day - 1], MINUTES, exhausted_at)
    at_18 = minutes_to_wall_clock(traffic, HOUR_18 // 60)[keep]
    at_22 = minutes_to_wall_clock(traffic, HOUR_22 // 60)[keep]

    spend_units = float(spend_c.sum()) / MICROS
    conversions = int(trace.conversions[keep].sum())
    budget_all = traffic.budget.sum(axis=1).astype(np.float64)
    runaway: dict[str, Value] = {
        "runaway_detect_minutes": None,
        "runaway_excess_share": None,
        "runaway_detect_minutes_max": None,
        "runaway_excess_share_max": None,
        "runaway_excess_campaign_share": None,
        "runaway_excess_after_report_share": None,
        "runaway_excess_after_report_share_max": None,
    }
    prompt = [r for r in trace.runaways if not r.late]
    if prompt:
        detect = [r.detect_minutes for r in prompt]
        excess = [r.excess_micros / float(traffic.budget[r.campaign, r.channel]) for r in prompt]
        of_campaign = [r.excess_micros / float(budget_all[r.campaign]) for r in prompt]
        after = [
            r.excess_after_report_micros / float(traffic.budget[r.campaign, r.channel])
            for r in prompt
        ]
        runaway = {
            "runaway_detect_minutes": float(np.mean(detect)),
            "runaway_excess_share": float(np.mean(excess)),
            "runaway_detect_minutes_max": float(np.max(detect)),
            "runaway_excess_share_max": float(np.max(excess)),
            "runaway_excess_campaign_share": float(np.mean(of_campaign)),
            "runaway_excess_after_report_share": float(np.mean(after)),
            "runaway_excess_after_report_share_max": float(np.max(after)),
        }
    late = [r for r in trace.runaways if r.late]
    late_metrics: dict[str, Value] = dict.fromkeys(LATE_RUNAWAY_METRICS)
    if late:
        l_detect = [r.detect_from_spend_minutes for r in late]
        l_excess = [r.excess_micros / float(traffic.budget[r.campaign, r.channel]) for r in late]
        late_metrics = {
            "runaway_late_detect_minutes": float(np.mean(l_detect)),
            "runaway_late_detect_minutes_max": float(np.max(l_detect)),
            "runaway_late_excess_share": float(np.mean(l_excess)),
            "runaway_late_excess_share_max": float(np.max(l_excess)),
            "runaway_late_overspend_beyond_one_event": float(
                sum(
                    1
                    for r in late
                    if over_all[r.campaign, r.channel] > trace.max_event[r.campaign, r.channel]
                )
            ),
            "runaway_late_authorised_overspend_beyond_one_event": float(
                sum(
                    1
                    for r in late
                    if spend_ch[r.campaign, r.channel]
                    - r.excess_micros
                    - trace.budget[r.campaign, r.channel]
                    > trace.max_event[r.campaign, r.channel]
                )
            ),
        }
    util = spend_c / budget_c
    return {
        "utilisation": float(util.mean()),
        "overspend_share": float(over.sum() / budget_c.sum()),
        "tracking_error": tracking,
        "exhausted_before_18": float(np.mean(exhausted_at < at_18)),
        "exhausted_before_22": float(np.mean(exhausted_at < at_22)),
        "alive": float(alive.sum() / in_day.sum()),
        "conversions_per_unit": conversions / spend_units if spend_units > 0 else 0.0,
        **runaway,
        "double_counted_micros": float(trace.recorded_micros - trace.unique_micros),
        # extras (beyond the report's metric columns)
        "conversions": conversions,
        "spend_units": spend_units,
        "utilisation_p5": float(np.percentile(util, 5)),
        "overspend_beyond_one_event": beyond,
        "tracking_error_p95": float(np.percentile(gap.mean(axis=1), 95)),
        "runaways_stopped": sum(1 for r in prompt if r.stopped),
        "runaways": len(prompt),
        "runaways_late": len(late),
        **late_metrics,
    }


def seed_metrics(
    per_strategy: Mapping[str, dict[str, Any]], static: Mapping[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Add the cross-strategy metrics of one seed.

    ``static`` holds the static-split runs: ``pacer-stream`` (reallocation off) and
    ``oracle`` (budget kept per channel). The result also has a row
    ``pacer-stream-static`` (an extra row, not a product strategy) when that run exists.
    """
    oracle_conv = per_strategy[ORACLE_FREE]["conversions"]
    even_cpu = per_strategy["even-gate"]["conversions_per_unit"]
    out: dict[str, dict[str, Any]] = {}
    for name, m in per_strategy.items():
        row = _cross(m, oracle_conv, even_cpu)
        if name in static:
            base = static[name]["conversions"]
            row["reallocation_gain"] = m["conversions"] / base - 1.0 if base else None
            row["reallocation_utilisation_gain"] = m["utilisation"] - static[name]["utilisation"]
        else:
            # Gates and the split-bound oracle never move budget; a product strategy run
            # only with reallocation has no measured gain.
            row["reallocation_gain"] = 0.0 if name in _STATIC_ONLY else None
        out[name] = row
    if "pacer-stream" in static:
        row = _cross(static["pacer-stream"], oracle_conv, even_cpu)
        row["reallocation_gain"] = 0.0
        out[STATIC_ROW] = row
    return out


STATIC_ROW = "pacer-stream-static"
_STATIC_ONLY = frozenset({*GATES, ORACLE_SPLIT})


def _cross(m: Mapping[str, Any], oracle_conv: int, even_cpu: float) -> dict[str, Any]:
    row = dict(m)
    row["oracle_share"] = m["conversions"] / oracle_conv if oracle_conv else None
    row["vs_even_conversions_per_unit"] = (
        m["conversions_per_unit"] / even_cpu - 1.0 if even_cpu else None
    )
    return row


def aggregate(seeds: Sequence[Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Mean and worst over seeds for every metric and the extras."""
    names = list(seeds[0])
    result: dict[str, dict[str, Any]] = {}
    for name in names:
        row: dict[str, Any] = {}
        keys = list(dict.fromkeys([*METRICS, *seeds[0][name]]))
        for key in keys:
            values = [s[name].get(key) for s in seeds]
            nums = [
                float(v)
                for v in values
                if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            ]
            if not nums:
                row[key] = {"mean": None, "worst": None}
                continue
            higher = HIGHER_IS_BETTER.get(key, key not in _LOWER_IS_BETTER_EXTRAS)
            row[key] = {
                "mean": float(np.mean(nums)),
                "worst": float(min(nums) if higher else max(nums)),
            }
        result[name] = row
    return result
