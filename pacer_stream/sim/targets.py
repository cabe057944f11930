"""The targets ``pacer-stream simulate`` checks and prints (the report's ``targets``).

Kept in one place so the figures the report judges against are part of the project and
reviewed like code. ``pacer-stream`` is the default strategy (ADAPTIVE_HYBRID); learning
rows are judged on the evaluation days of a multi-day run (``--days N --warmup-days W``)
with every fault on, as a mean over the seeds unless the statistic says ``worst``.
"""

from __future__ import annotations

PS = "pacer-stream"
#: Late platforms report 5 minutes late (``Faults.late_minutes``): a runaway there must
#: be stopped within that delay + 1 minute of its first unauthorised spend.
LATE_DETECT_BOUND = 5.0 + 1.0
ML = "predictive_ml"

#: Targets the report checks: (row, metric, statistic, op, bound, note). Learning rows
#: are judged on the evaluation days of a multi-day run with every fault on.
TARGETS: tuple[tuple[str, str, str, str, float, str], ...] = (
    (PS, "utilisation", "mean", ">=", 0.99, "utilisation >= 0.99"),
    (PS, "overspend_beyond_one_event", "worst", "<=", 0.0, "no overspend beyond one event"),
    (PS, "tracking_error", "mean", "<=", 0.02, "tracking error <= 0.02 (0.03 under faults)"),
    (PS, "exhausted_before_18", "worst", "<=", 0.0, "0% exhausted before 18:00"),
    (PS, "exhausted_before_22", "worst", "<=", 0.01, "<= 1% exhausted before 22:00"),
    (PS, "alive", "mean", ">=", 0.99, "alive >= 0.99"),
    (PS, "vs_even_conversions_per_unit", "mean", ">=", 0.15, ">= +15% conv/unit vs even gate"),
    (PS, "oracle_share", "mean", ">=", 0.90, ">= 90% of the free oracle's conversions"),
    (PS, "runaway_detect_minutes_max", "worst", "<=", 2.0,
     "every runaway detected within 2 min of its first report"),
    (PS, "runaway_excess_share_max", "worst", "<=", 0.02, "every runaway's excess <= 2% of budget"),
    (PS, "runaway_late_detect_minutes_max", "worst", "<=", LATE_DETECT_BOUND,
     "late platforms: every runaway detected within delay + 1 min"),
    (PS, "runaway_late_authorised_overspend_beyond_one_event", "worst", "<=", 0.0,
     "late platforms: no overspend beyond one event (bar the unasked)"),
    (PS, "double_counted_micros", "worst", "<=", 0.0, "double-counted spend == 0"),
    (PS, "reallocation_gain", "mean", ">=", 0.10,
     "reallocation >= +10% conversions over the static split"),
    (PS, "reallocation_utilisation_gain", "mean", ">=", 0.0,
     "reallocation's utilisation >= the static split's"),
    (ML, "utilisation", "mean", ">=", 0.99, "predictive_ml utilisation >= 0.99"),
)  # fmt: skip

#: Why a target the report checks is missed on the default scenario, with the experiment
#: that shows it: shown beside the target when the run misses it (``report.check_targets``).
WHY_MISSED: dict[tuple[str, str], str] = {
    (PS, "oracle_share"): (
        "no causal rule measured meets it with tracking error <= 0.03 and utilisation "
        ">= 0.99: on the split pacer-stream starts each day from (seeds 0-9, where it "
        "reads 0.830) a threshold buyer without hindsight reaches 0.897 at tracking "
        "error 0.060; under the engine's frontload protection and hour ceiling, 0.840 "
        "at utilisation 0.971 (docs/simulation.md 15.3, 16; scripts/causal_threshold.py "
        "--split start)"
    ),
    (PS, "reallocation_gain"): (
        "the static split it is measured against gained more from the plans' lean on "
        "the learned hour curve (0.692 -> 0.755 of the free oracle) than the "
        "reallocated row (0.804 -> 0.824): a tilted channel refuses demand in its weak "
        "hours and reallocation reads that as demand it could not serve "
        "(docs/simulation.md 15.1-15.2)"
    ),
    (PS, "runaway_excess_share_max"): (
        "the excess above 2% is spend the bidder sent before its first event could be "
        "reported: on a channel of 61-300 units a day one event at 3x the cost is 2-7% of "
        "its budget, out of reach of a pacer that learns of unasked spend from reports "
        "(docs/simulation.md 13.1-13.3; scripts/runaway_incidents.py)"
    ),
}


def markdown_table() -> str:
    """:data:`TARGETS` as the Markdown table docs/targets.md carries (a unit test keeps
    the two equal, so a target is changed here and the page follows)."""
    lines = ["| target | row | judged on |", "|---|---|---|"]
    for row, metric, stat, _op, _bound, note in TARGETS:
        lines.append(f"| {note} | {row} | {stat} of `{metric}` over the seeds |")
    return "\n".join(lines) + "\n"
