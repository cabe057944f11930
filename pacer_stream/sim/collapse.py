"""Scenario: one channel's conversion rate collapses mid-day.

On each campaign's channel with the lowest normal conversion rate (see
:class:`~pacer_stream.sim.scenario.Collapse` for why that one), every batch from
``start_minute`` (local) on keeps each realised conversion with probability ``factor``
(binomial thinning of the shared Poisson draws: the conversions become Poisson with
``factor`` x the mean; clicks and costs are unchanged). The draws come from a stream of
their own, so the rest of the day is the default day of the seed.

pacer-stream runs twice on that day: with a performance floor (``min_conversion_rate``
= ``floor_share`` x the collapsed channel's normal rate, every other threshold at its
default: minimum sample, window, grace, throttle) and without one. What is measured:

* how fast the engine reacts on the collapsed channel: minutes from the collapse to
  the first throttled multiplier (the channel in violation), the first
  ``performance_threshold`` denial and the first ``performance_degradation`` alert, and
  the share of campaigns on which each happened at all;
* where the money went: the collapsed channel's share of the campaign's spend after
  the collapse, with and without the floor (all campaigns; and the campaigns whose
  floor fired), and conversions after the collapse;
* false positives: violation episodes that started before the collapse or on another
  channel, and denials on other channels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pacer_stream.core.types import Thresholds
from pacer_stream.sim.scenario import Collapse
from pacer_stream.sim.trace import Trace
from pacer_stream.sim.traffic import Traffic

#: Tag of the collapse's random stream (independent of traffic, faults and bidding).
STREAM_TAG = 88


def collapsed_channels(traffic: Traffic) -> list[int]:
    """Per campaign, the channel whose conversion rate collapses: its lowest-rate one."""
    return [int(h) for h in np.argmin(traffic.cvr, axis=1)]


def apply_collapse(traffic: Traffic, collapse: Collapse) -> tuple[Traffic, list[int]]:
    """The seed's day with the collapse applied, and the collapsed channel per campaign."""
    channels = collapsed_channels(traffic)
    rng = np.random.default_rng([traffic.seed, STREAM_TAG])
    conversions = traffic.conversions.copy()
    expected = traffic.expected_conversions.copy()
    quality = traffic.quality.copy()
    s = collapse.start_minute
    for c, h in enumerate(channels):
        conversions[c, h, s:] = rng.binomial(conversions[c, h, s:], collapse.factor)
        expected[c, h, s:] *= collapse.factor
        quality[c, h, s:] *= collapse.factor
    day = dataclasses.replace(
        traffic, conversions=conversions, expected_conversions=expected, quality=quality
    )
    return day, channels


def floor_thresholds(
    traffic: Traffic, channels: Sequence[int], collapse: Collapse
) -> list[Thresholds]:
    """Per campaign: the defaults plus ``min_conversion_rate`` = floor_share x the
    collapsed channel's normal conversion rate."""
    return [
        Thresholds(min_conversion_rate=float(collapse.floor_share * traffic.cvr[c, h]))
        for c, h in enumerate(channels)
    ]


def run_summary(trace: Trace, collapse: Collapse) -> dict[str, Any]:
    """What one run (floor on or off) says, per campaign (small lists)."""
    s = collapse.start_minute
    after = trace.spend[:, :, s:].sum(axis=2)  # [C, H]
    channel_after = [int(after[p.campaign, p.channel]) for p in trace.perf]
    return {
        "channel_spend_after": channel_after,
        "campaign_spend_after": [int(x) for x in after.sum(axis=1)],
        "conversions_after": [int(sum(p.conversions_after)) for p in trace.perf],
        "throttle_min": [_minutes(p.throttle_s, p.collapse_s) for p in trace.perf],
        "denial_min": [_minutes(p.denial_s, p.collapse_s) for p in trace.perf],
        "alert_min": [_minutes(p.alert_s, p.collapse_s) for p in trace.perf],
        "denial_after_episode_s": [
            None
            if p.denial_s is None or p.denial_episode_s is None
            else p.denial_s - p.denial_episode_s
            for p in trace.perf
        ],
        "episodes_before": sum(p.episodes_before for p in trace.perf),
        "episodes_other": sum(p.episodes_other for p in trace.perf),
        "denials_other": sum(p.denials_other for p in trace.perf),
        "spend_units": float(trace.spend.sum()) / 1e6,
        "budget_units": float(trace.budget.sum()) / 1e6,
    }


def _minutes(at: float | None, start: float) -> float | None:
    return None if at is None else (at - start) / 60.0


def seed_figures(on: Mapping[str, Any], off: Mapping[str, Any]) -> dict[str, Any]:
    """One seed's figures from the run with the floor (``on``) and without (``off``)."""
    fired = [i for i, t in enumerate(on["throttle_min"]) if t is not None]

    def share(run: Mapping[str, Any], idx: Sequence[int] | None = None) -> float | None:
        idx = range(len(run["channel_spend_after"])) if idx is None else idx
        num = sum(run["channel_spend_after"][i] for i in idx)
        den = sum(run["campaign_spend_after"][i] for i in idx)
        return num / den if den else None

    def stats(values: Sequence[float | None]) -> tuple[float | None, float | None, float | None]:
        got = [v for v in values if v is not None]
        if not got:
            return None, None, None
        return float(np.mean(got)), float(np.median(got)), float(np.max(got))

    n = len(on["throttle_min"])
    out: dict[str, Any] = {
        "campaigns": n,
        "collapsed_share_after_with_floor": share(on),
        "collapsed_share_after_without_floor": share(off),
        "collapsed_share_after_with_floor_fired": share(on, fired) if fired else None,
        "collapsed_share_after_without_floor_fired": share(off, fired) if fired else None,
        "conversions_after_with_floor": sum(on["conversions_after"]),
        "conversions_after_without_floor": sum(off["conversions_after"]),
        "utilisation_with_floor": on["spend_units"] / on["budget_units"],
        "utilisation_without_floor": off["spend_units"] / off["budget_units"],
        "share_throttled": len(fired) / n if n else None,
        "share_denied": sum(1 for t in on["denial_min"] if t is not None) / n if n else None,
        "share_alerted": sum(1 for t in on["alert_min"] if t is not None) / n if n else None,
        "false_episodes_before_collapse": on["episodes_before"],
        "false_episodes_other_channels": on["episodes_other"],
        "false_denials_other_channels": on["denials_other"],
        "denials_without_floor": sum(1 for t in off["denial_min"] if t is not None),
    }
    for key in ("throttle", "denial", "alert"):
        mean, median, worst = stats(on[f"{key}_min"])
        out[f"{key}_minutes_mean"] = mean
        out[f"{key}_minutes_median"] = median
        out[f"{key}_minutes_max"] = worst
    gaps = [g for g in on["denial_after_episode_s"] if g is not None]
    out["denial_after_violation_start_min_s"] = min(gaps) if gaps else None
    return out


def aggregate(per_seed: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Mean, min and max over seeds of every figure."""
    keys = list(dict.fromkeys(k for s in per_seed for k in s))
    out: dict[str, dict[str, float | None]] = {}
    for k in keys:
        vals = [float(s[k]) for s in per_seed if s.get(k) is not None]
        out[k] = (
            {"mean": float(np.mean(vals)), "min": min(vals), "max": max(vals)}
            if vals
            else {"mean": None, "min": None, "max": None}
        )
    return out
