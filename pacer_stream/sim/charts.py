"""PNG charts of the report (matplotlib, Agg backend, imported only when drawing).

* ``spend_vs_plan.png``: cumulative spend of one sample campaign (first seed, untouched
  by runaway and late-reporting faults) under every strategy, as a share of its budget,
  against pacer-stream's planned curve and the even line.
* ``runaway.png``: the first runaway incident of the first seed: spend rate on the
  runaway channel per strategy, and pacer-stream's breaker state and alerts over time.
* ``conversions_per_unit.png``: conversions per currency unit spent by row (mean over
  seeds and evaluation days).
* ``hour_weights.png``: for a learning strategy on the last evaluation day, the
  conversion rate by local hour it planned with and the hour curve ADAPTIVE_HYBRID
  leans on, against the true one (each over its mean), per channel of the sample
  campaign.
* ``charts.json``: the data of the charts, for other renderings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pacer_stream.sim.scenario import STRATEGIES

#: Upper limit of the hour-weights chart's y axis.
HOUR_WEIGHT_YMAX = 3.0
_BREAKER_LEVEL = {"closed": 0.0, "half_open": 0.5, "open": 1.0}


def draw(charts: dict[str, Any], out: Path) -> list[Path]:
    """Write the charts that the data allows; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if charts:
        data = out / "charts.json"
        data.write_text(json.dumps(charts, allow_nan=False) + "\n")
        written.append(data)
    if charts:
        written.append(_spend_vs_plan(plt, charts, out / "spend_vs_plan.png"))
    if "incident" in charts.get("pacer-stream", {}):
        written.append(_runaway(plt, charts, out / "runaway.png"))
    if charts.get("conversions_per_unit"):
        written.append(_conversions(plt, charts["conversions_per_unit"], out))
    if charts.get("hour_weights"):
        written.append(_hour_weights(plt, charts["hour_weights"], out / "hour_weights.png"))
    return written


def _conversions(plt: Any, per_row: dict[str, float], out: Path) -> Path:
    path = out / "conversions_per_unit.png"
    names = [n for n in STRATEGIES if per_row.get(n) is not None]
    values = [per_row[n] for n in names]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    colors = [
        "tab:blue" if n == "pacer-stream" or "_" in n else
        "tab:grey" if n.startswith("oracle") else "tab:orange"
        for n in names
    ]  # fmt: skip
    ax.barh(names[::-1], values[::-1], color=colors[::-1])
    for y, v in enumerate(values[::-1]):
        ax.annotate(f"{v:.4f}", (v, y), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=8)  # fmt: skip
    ax.set_xlabel("conversions per currency unit spent (mean over seeds)")
    ax.set_title("Conversions per unit by strategy (blue: product, orange: baselines)")
    ax.grid(axis="x", alpha=0.3)
    return _save(plt, fig, path)


def _hour_weights(plt: Any, per_row: dict[str, Any], path: Path) -> Path:
    channels = list(dict.fromkeys(ch for row in per_row.values() for ch in row))
    fig, axes = plt.subplots(
        1, len(channels), figsize=(4.2 * len(channels), 3.8), squeeze=False, sharey=True
    )
    hours = list(range(24))
    for ax, channel in zip(axes[0], channels, strict=True):
        true = next(row[channel]["true"] for row in per_row.values() if channel in row)
        ax.plot(hours, true, "k-", linewidth=2.2, label="true")
        for name, row in per_row.items():
            if channel in row:
                ax.plot(hours, row[channel]["learned"], "--", linewidth=1.4, label=name)
        # the curve ADAPTIVE_HYBRID (the pacer-stream row) leaned on
        curve = per_row.get("pacer-stream", {}).get(channel, {}).get("curve")
        if curve is not None:
            ax.plot(hours, curve, "-", color="tab:red", linewidth=1.8, label="hour curve")
        ax.set_title(channel, fontsize=9)
        ax.set_xlabel("local hour")
        ax.set_xticks(range(0, 25, 4))
        # A channel with almost no conversions can predict one spike: keep the scale
        # readable (the data is in charts.json).
        ax.set_ylim(0, HOUR_WEIGHT_YMAX)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("conversion rate / its daily mean")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(
        "Learned (dashed: conversion rate; red: ADAPTIVE_HYBRID's hour curve) vs true,"
        " sample campaign, last day"
    )
    return _save(plt, fig, path)


def _spend_vs_plan(plt: Any, charts: dict[str, Any], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(10, 6))
    any_data = next(iter(charts.values()))
    budget = any_data["sample_budget"]
    hours = [m / 60.0 for m in range(len(any_data["cumulative"]))]
    for name in STRATEGIES:
        d = charts.get(name)
        if d is None:
            continue
        width = 2.4 if name == "pacer-stream" else 1.2
        ax.plot(hours, [v / budget for v in d["cumulative"]], label=name, linewidth=width)
    ps = charts.get("pacer-stream")
    if ps is not None:
        ax.plot(
            hours, [v / budget for v in ps["plan"]], "k--", linewidth=1.2,
            label="pacer-stream plan",
        )  # fmt: skip
    ax.plot([0, 24], [0, 1], ":", color="grey", linewidth=1, label="even line")
    ax.set_xlim(0, 24)
    ax.set_xticks(range(0, 25, 2))
    ax.set_xlabel(f"local hour ({any_data['sample_zone']})")
    ax.set_ylabel("cumulative spend / daily budget")
    ax.set_title(f"Sample campaign {any_data['sample_campaign']}: cumulative spend vs plan")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return _save(plt, fig, path)


def _runaway(plt: Any, charts: dict[str, Any], path: Path) -> Path:
    inc = charts["pacer-stream"]["incident"]
    budget = inc["budget"]
    lo = inc["from_minute"]
    fig, (ax1, ax2) = plt.subplots(
        2, 1, figsize=(10, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    for name in STRATEGIES:
        d = charts.get(name, {}).get("incident")
        if d is None or name.startswith("oracle"):
            continue
        xs = [(lo + i) / 60.0 for i in range(len(d["spend_per_minute"]))]
        ys = [100.0 * v / budget for v in d["spend_per_minute"]]
        width = 2.4 if name == "pacer-stream" else 1.0
        ax1.step(xs, ys, where="post", label=name, linewidth=width)
    for x in (inc["start_minute"], inc["end_minute"]):
        ax1.axvline(x / 60.0, color="red", linestyle=":", linewidth=1)
    ax1.set_ylabel("spend per minute (% of channel budget)")
    ax1.set_yscale("symlog", linthresh=0.1)
    ax1.set_ylim(bottom=0)
    ax1.set_title(
        f"Runaway bidder on campaign {inc['campaign']} / {inc['channel']} "
        "(20x requests, 3x cost, 15 min; dotted: incident)"
    )
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=8, loc="upper right")
    tl = inc.get("timeline", {})
    t_end = (lo + len(inc["spend_per_minute"])) / 60.0
    t_lo = lo / 60.0
    level = 0.0
    for t, state in tl.get("breaker", []):
        if t / 3600.0 <= t_lo:
            level = _BREAKER_LEVEL.get(state, 0.0)
    xs = [t_lo]
    ys = [level]
    for t, state in tl.get("breaker", []):
        if t_lo < t / 3600.0 < t_end:
            xs.append(t / 3600.0)
            ys.append(_BREAKER_LEVEL.get(state, 0.0))
    xs.append(t_end)
    ys.append(ys[-1])
    ax2.step(xs, ys, where="post", color="black", label="pacer-stream breaker")
    for t, kind in tl.get("alerts", []):
        if lo / 60.0 <= t / 3600.0 <= t_end:
            ax2.plot([t / 3600.0], [1.15], "v", color="tab:red")
            ax2.annotate(kind, (t / 3600.0, 1.15), fontsize=6, rotation=30)
    ax2.set_yticks([0, 0.5, 1.0])
    ax2.set_yticklabels(["closed", "half-open", "open"])
    ax2.set_ylim(-0.2, 1.6)
    ax2.set_xlabel("local hour")
    ax2.grid(alpha=0.3)
    return _save(plt, fig, path)


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
