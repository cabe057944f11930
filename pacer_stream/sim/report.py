"""The report: ``report.json`` (its JSON shape below) and the terminal table.

``report.json`` is ``{"seeds": N, "strategies": {NAME: {METRIC: {"mean": x, "worst":
y}}}}`` with every report metric for every strategy (``null`` where a metric does not
exist on that run, e.g. runaway metrics with faults off), plus extra keys: extra
metrics per strategy (``conversions``, ``utilisation_p5``, ...), ``extra_strategies``
(``pacer-stream-static``: the same engine with reallocation off), ``targets``
(the targets of :data:`TARGETS`, docs/targets.md, and whether they were met),
``scenario``, ``per_seed``,
``counters`` (engine decisions, alerts and breaker transitions) and ``timing``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pacer_stream.sim.metrics import STATIC_ROW
from pacer_stream.sim.scenario import METRICS, STRATEGIES
from pacer_stream.sim.targets import TARGETS, WHY_MISSED

#: Terminal label of the extra row: pacer-stream with reallocation off.
STATIC_LABEL = "  (static split)"
#: Optional extra row (``--multiplier``): the bid engine applies the pacing multiplier.
MULTIPLIER_ROW = "pacer-stream-multiplier"
MULTIPLIER_LABEL = "  (multiplier)"

#: Short column headers for the terminal.
HEADERS = {
    "utilisation": "util",
    "overspend_share": "over",
    "tracking_error": "track",
    "exhausted_before_18": "ex<18",
    "exhausted_before_22": "ex<22",
    "alive": "alive",
    "conversions_per_unit": "conv/u",
    "oracle_share": "oracle",
    "runaway_detect_minutes": "detect",
    "runaway_excess_share": "excess",
    "double_counted_micros": "dbl µ",
    "reallocation_gain": "realloc",
}


def check_targets(report: dict[str, Any], faults: bool) -> list[dict[str, Any]]:
    """Each target (:data:`TARGETS`): the measured value and met / missed; a missed one
    also says by how much (``short_by``, in the metric's unit) and, where the project
    knows it, why (:data:`~pacer_stream.sim.targets.WHY_MISSED`)."""
    out = []
    for name, metric, stat, op, bound, note in TARGETS:
        row = report["strategies"].get(name, {})
        if metric == "tracking_error" and faults:
            bound = 0.03
        value = row.get(metric, {}).get(stat)
        met = None
        if value is not None:
            met = value >= bound if op == ">=" else value <= bound
        entry = {"row": name, "metric": metric, "statistic": stat, "op": op, "bound": bound,
                 "value": value, "met": met, "target": note}  # fmt: skip
        if met is False:
            entry["short_by"] = round(abs(bound - value), 6)
            why = WHY_MISSED.get((name, metric))
            if why is not None:
                entry["why"] = why
        out.append(entry)
    return out


def write_json(report: dict[str, Any], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.json"
    public = {k: v for k, v in report.items() if not k.startswith("_")}
    path.write_text(json.dumps(public, indent=2, allow_nan=False) + "\n")
    return path


def fmt(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    if metric == "double_counted_micros":
        return f"{value:,.0f}"
    if metric == "runaway_detect_minutes":
        return f"{value:.2f}"
    if metric == "conversions_per_unit":
        return f"{value:.4f}"
    if metric in ("reallocation_gain",):
        return f"{value:+.1%}"
    return f"{value:.3f}"


def render(report: dict[str, Any]) -> Any:
    """A rich renderable: strategy rows x metric columns ('mean' over dim 'worst' in each
    cell), split in two tables so it fits an 80-column terminal, then the targets."""
    from rich import box
    from rich.console import Group
    from rich.table import Table

    parts: list[Any] = []
    half = len(METRICS) // 2
    for i, metrics in enumerate((METRICS[:half], METRICS[half:])):
        span = (
            f", {report['days'] - report['warmup_days']} evaluation day(s) after "
            f"{report['warmup_days']} warm-up"
            if report.get("days", 1) > 1
            else ""
        )
        title = (
            f"pacing quality over {report['seeds']} seed(s){span}: mean / worst" if i == 0 else None
        )
        table = Table(title=title, box=box.SIMPLE_HEAD, show_lines=False, pad_edge=False)
        table.add_column("strategy", no_wrap=True)
        for m in metrics:
            table.add_column(HEADERS[m], justify="right", no_wrap=True)
        rows = [(n, report["strategies"].get(n)) for n in STRATEGIES]
        rows.insert(1, (STATIC_LABEL, report.get("extra_strategies", {}).get(STATIC_ROW)))
        rows.insert(2, (MULTIPLIER_LABEL, report.get("extra_strategies", {}).get(MULTIPLIER_ROW)))
        for name, row in rows:
            if row is None:
                continue
            cells = [
                f"{fmt(m, row[m]['mean'])}\n[dim]{fmt(m, row[m]['worst'])}[/dim]" for m in metrics
            ]
            table.add_row(name, *cells)
        parts.append(table)
    late = _late_table(report)
    if late is not None:
        parts.append(late)
    parts.append(render_targets(report.get("targets", [])))
    if "collapse" in report:
        parts.append(render_collapse(report["collapse"]))
    return Group(*parts)


#: The late-platform runaway row: (metric, header, format); detection counts from the
#: first unauthorised spend, so it includes the platform's reporting delay.
LATE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("runaway_late_detect_minutes", "detect", "{:.2f}"),
    ("runaway_late_detect_minutes_max", "worst", "{:.2f}"),
    ("runaway_late_excess_share", "excess", "{:.2f}"),
    ("runaway_late_overspend_beyond_one_event", ">1 ev", "{:.1f}"),
    ("runaway_late_authorised_overspend_beyond_one_event", "asked", "{:.1f}"),
)


def _late_table(report: dict[str, Any]) -> Any:
    """Runaways on late-reporting platforms, one row per strategy that met any (None
    when the run had none)."""
    from rich import box
    from rich.table import Table

    rows = []
    for name in STRATEGIES:
        row = report["strategies"].get(name)
        if row is None or row.get("runaway_late_detect_minutes", {}).get("mean") is None:
            continue
        cells = []
        for key, _, form in LATE_COLUMNS:
            mean, worst = row[key]["mean"], row[key]["worst"]
            cells.append(f"{form.format(mean)}\n[dim]{form.format(worst)}[/dim]")
        rows.append((name, cells))
    if not rows:
        return None
    table = Table(
        title=(
            "runaways on late platforms: minutes from the first unasked spend (target "
            "delay + 1), excess / channel budget, channels over by >1 event (all; asked "
            "spend only): mean / worst"
        ),
        box=box.SIMPLE_HEAD,
    )
    table.add_column("strategy", no_wrap=True)
    for _, header, _ in LATE_COLUMNS:
        table.add_column(header, justify="right", no_wrap=True)
    for name, cells in rows:
        table.add_row(name, *cells)
    return table


#: Collapse figures shown in the terminal: (key, label, format).
COLLAPSE_ROWS: tuple[tuple[str, str, str], ...] = (
    ("collapsed_share_after_without_floor", "collapsed share of spend after, no floor", "{:.3f}"),
    ("collapsed_share_after_with_floor", "... with the floor", "{:.3f}"),
    ("collapsed_share_after_without_floor_fired", "same, where it fired, no floor", "{:.3f}"),
    ("collapsed_share_after_with_floor_fired", "... with the floor", "{:.3f}"),
    ("share_throttled", "campaigns throttled after the collapse", "{:.2f}"),
    ("share_denied", "campaigns denied (performance_threshold)", "{:.2f}"),
    ("throttle_minutes_median", "minutes to first throttle (median)", "{:.0f}"),
    ("denial_minutes_median", "minutes to first denial (median)", "{:.0f}"),
    ("alert_minutes_median", "minutes to first alert (median)", "{:.0f}"),
    ("conversions_after_without_floor", "conversions after the collapse, no floor", "{:,.0f}"),
    ("conversions_after_with_floor", "... with the floor", "{:,.0f}"),
    ("utilisation_without_floor", "utilisation, no floor", "{:.3f}"),
    ("utilisation_with_floor", "... with the floor", "{:.3f}"),
    ("false_episodes_other_channels", "violations on the other channels", "{:.1f}"),
    ("false_denials_other_channels", "denials on the other channels", "{:.1f}"),
)  # fmt: skip


def render_targets(targets: list[dict[str, Any]]) -> Any:
    """The targets (:func:`check_targets`) as a table: measured, met or missed, and for a
    missed one by how much and why."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    title = "targets (pacer-stream: the default strategy; docs/targets.md)"
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for col in ("target", "measured", "result"):
        table.add_column(col)
    for t in targets:
        v = t["value"]
        shown = "-" if v is None else f"{t['statistic']} {_fmt_any(t['metric'], v)}"
        if t["met"] is None:
            result = "n/a"
        elif t["met"]:
            result = "[green]met[/green]"
        else:
            short = _fmt_any(t["metric"], t["short_by"]).lstrip("+")  # a distance: no sign
            result = f"[red]missed[/red] by {short}"
            if "why" in t:
                result += f"\n[dim]{escape(t['why'])}[/dim]"
        table.add_row(t["target"], shown, result)
    return table


def render_collapse(collapse: dict[str, Any]) -> Any:
    """The collapse scenario's figures, one column per bid engine (mean over seeds)."""
    from rich import box
    from rich.table import Table

    variants = collapse.get("variants", {})
    table = Table(title="conversion collapse (mean over seeds)", box=box.SIMPLE_HEAD)
    table.add_column("figure")
    for v in variants:
        table.add_column(v, justify="right")
    for key, label, pattern in COLLAPSE_ROWS:
        cells = []
        for v in variants.values():
            value = v.get(key, {}).get("mean")
            cells.append("-" if value is None else pattern.format(value))
        table.add_row(label, *cells)
    return table


def _fmt_any(metric: str, value: float) -> str:
    if metric in HEADERS:
        return fmt(metric, value)
    if metric.startswith("vs_"):
        return f"{value:+.1%}"
    if metric == "reallocation_utilisation_gain":
        return f"{value:+.4f}"
    return f"{value:.3f}"


def render_streaming(report: dict[str, Any]) -> Any:
    """Table of a ``--bootstrap`` run: the worker against the in-process mirror."""
    from rich import box
    from rich.table import Table

    table = Table(title="pacer-stream through Kafka vs the in-process engine", box=box.SIMPLE_HEAD)
    for col in ("seed", "requests", "agree", "allowed w/m", "authorised w/m", "double-counted"):
        table.add_column(col, justify="right")
    for r in report["runs"]:
        dbl = r["double_counted_micros"]
        table.add_row(
            str(r["seed"]),
            str(r["requests"]),
            f"{r['agreement']:.1%}",
            f"{r['worker_allowed']}/{r['mirror_allowed']}",
            f"{r['worker_authorised_micros'] / 1e6:,.2f}"
            f"/{r['mirror_authorised_micros'] / 1e6:,.2f}",
            "n/a (no web view)" if dbl is None else f"{dbl:,}",
        )
    return table
