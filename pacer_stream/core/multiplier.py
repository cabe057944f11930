"""The pacing multiplier a bid engine applies to its bids or its request rate.

A bounded proportional controller on the pace error:

    m = clamp(1 + gain * (1 - r), 0, max_multiplier) * throttle

where ``r`` is the pace ratio (actual / planned spend by now). On plan (r = 1) the
multiplier is 1; underpacing with budget left raises it (up to ``max_multiplier``),
overpacing lowers it, and at r >= 1 + 1/gain it reaches 0. It is monotone: more
overpacing never raises it. Before the plan is meaningful (planned < 2% of the day)
r is taken as 1, the same guard the pace alerts use. The result is 0 whenever the
channel is blocked (no budget, emergency stop, breaker OPEN, daily budget used up),
capped at 0.5 while the breaker is HALF_OPEN (trial spends only), and multiplied by
``performance_throttle`` (0.5) while a performance threshold is violated.

Why proportional and not PI: the engine already re-plans every hour from what is left
(rollover), which is the integral action; a second integrator here would wind up.
"""

from __future__ import annotations

from pacer_stream.core.pacing import planned_at
from pacer_stream.core.state import CampaignState, ChannelState
from pacer_stream.core.types import CircuitBreakerState

HALF_OPEN_CAP = 0.5


def pacing_multiplier(state: CampaignState, ch: ChannelState, ts: float) -> float:
    t = state.thresholds
    if (
        not state.configured
        or state.emergency_stopped
        or ch.budget <= 0
        or ch.remaining <= 0
        or ch.breaker.state is CircuitBreakerState.OPEN
    ):
        return 0.0
    planned = planned_at(ch, ts)
    ratio = 1.0 if planned < ch.budget * t.pace_min_planned_pct else ch.spent_total / planned
    m = 1.0 + t.multiplier_gain * (1.0 - ratio)
    m = min(max(m, 0.0), t.max_multiplier)
    if ch.breaker.state is CircuitBreakerState.HALF_OPEN:
        m = min(m, HALF_OPEN_CAP)
    if ch.perf_violation_since is not None:
        m *= t.performance_throttle
    return m
