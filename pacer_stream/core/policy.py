"""The can-spend decision: ordered rules, each with a stable code and a human reason.

Order (first failing rule decides):
 1. unknown campaign / channel without a budget
 2. emergency stop
 3. circuit breaker OPEN (or HALF_OPEN with its trial spends, or the small share of
    the hour's allowance trials may hold, used up)
 4. invalid amount -> raises ``InvalidAmount`` (an error, not a denial); then the
    channel's held reservations (``MAX_HELD_RESERVATIONS``)
 5. daily cap: spent + reserved + expired-unreported + amount <= daily budget
 6. hourly cap: the hour's allowance after rollover, frontload and max-hour limits,
    released linearly across the hour
 7. velocity: trailing-window spend + reserved + amount <= multiple x planned rate
For 6 and 7 a request may *cross* the line once: while the hour (or window) is still
under its line, a request (for the hour: one no larger than the hour's whole allowance)
is allowed even if it ends above the line. Spend arrives in lumps (an auction
batch, a bid of a fixed size); refusing every lump that does not fit the remaining
sliver would strand the sliver and under-deliver small budgets. The overshoot is at most
one request, and the hourly rollover takes it back from the later hours. The daily cap
(5) has no such slack: it is never crossed.
 8. performance thresholds: a violation that persisted ``performance_grace_s``
The reason for a breaker denial contains the words "circuit breaker", as callers of the
original Budget Pacer test for them.
"""

from __future__ import annotations

from dataclasses import dataclass

from pacer_stream.core.money import MAX_MICROS, check_micros
from pacer_stream.core.pacing import hour_lines, rate_limit, released_allowance
from pacer_stream.core.state import CampaignState, ChannelState
from pacer_stream.core.types import CircuitBreakerState, Code
from pacer_stream.core.windows import VELOCITY


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    code: Code
    reason: str


OK = Verdict(True, Code.OK, "spend authorised")
#: Reservations a channel may hold at once, live or expired-but-unreported (each is a
#: few hundred bytes of campaign state): a flood of tiny requests is refused with
#: ``reservation_limit`` instead of growing the state without bound.
MAX_HELD_RESERVATIONS = 10_000


def _units(micros: int) -> str:
    return f"{micros / 1_000_000:.2f}"


def blocked(camp: CampaignState, ch: ChannelState) -> Verdict | None:
    """Rules 1-3 for a request that already holds a reservation (a retry): an emergency
    stop, no budget or an OPEN breaker refuse even an existing hold. A HALF_OPEN
    breaker does not: the hold was admitted as one of its trial spends."""
    if camp.configured and camp.emergency_stopped:
        return Verdict(
            False, Code.EMERGENCY_STOP, f"campaign emergency stopped: {camp.stop_reason}"
        )
    if not camp.configured or ch.budget <= 0:
        return Verdict(False, Code.NO_BUDGET, "channel has no budget for this campaign")
    if ch.breaker.state is CircuitBreakerState.OPEN:
        cause = ch.breaker.cause.value if ch.breaker.cause else "violation"
        return Verdict(False, Code.BREAKER_OPEN, f"circuit breaker open ({cause})")
    return None


def evaluate(
    camp: CampaignState | None, ch: ChannelState | None, amount: int, ts: float
) -> Verdict:
    if camp is None or not camp.configured:
        return Verdict(False, Code.UNKNOWN_CAMPAIGN, "unknown campaign: no budget configured")
    # A stopped campaign says so whatever its channels' budgets: moves made while it is
    # stopped (an overrun taken from a sister channel) may have emptied one.
    if camp.emergency_stopped:
        return Verdict(
            False, Code.EMERGENCY_STOP, f"campaign emergency stopped: {camp.stop_reason}"
        )
    if ch is None or ch.budget <= 0:
        return Verdict(False, Code.NO_BUDGET, "channel has no budget for this campaign")
    t = camp.thresholds
    br = ch.breaker
    trial_allowance = None
    if br.state is CircuitBreakerState.HALF_OPEN and amount > 0:
        trial_allowance = released_allowance(ch, ts, t)[1]
    if br.state is not CircuitBreakerState.CLOSED and not br.can_admit(t, amount, trial_allowance):
        if br.state is CircuitBreakerState.HALF_OPEN:
            return Verdict(
                False,
                Code.BREAKER_TRIAL_LIMIT,
                "circuit breaker half-open: trial spends (or their bounded amount) in "
                "use, waiting for evidence",
            )
        cause = br.cause.value if br.cause else "violation"
        return Verdict(False, Code.BREAKER_OPEN, f"circuit breaker open ({cause})")
    if type(amount) is not int or not 0 < amount <= MAX_MICROS:  # the usual case: skip the call
        check_micros(amount, what="amount", allow_zero=False)
    holds, reserved, unreported = ch.held()
    if holds >= MAX_HELD_RESERVATIONS:
        return Verdict(
            False,
            Code.RESERVATION_LIMIT,
            f"channel already holds {MAX_HELD_RESERVATIONS} reservations; settle or "
            "release some first",
        )
    if ch.spent_total + reserved + unreported + amount > ch.budget:
        return Verdict(
            False,
            Code.DAILY_CAP,
            f"daily budget exhausted: {_units(ch.remaining)} of {_units(ch.budget)} left",
        )
    slot, allowance, released, span_s = hour_lines(ch, ts, t)
    used = ch.spent[slot] + reserved
    if used + amount > released and (used >= released or amount > allowance):
        return Verdict(
            False,
            Code.HOURLY_CAP,
            f"hourly allowance reached: {_units(released)} released of {_units(allowance)} "
            "for this hour",
        )
    window = ch.ring_total(VELOCITY, ts, t.velocity_window_s)
    if window > 0:
        limit = rate_limit(allowance, span_s, t, t.velocity_multiple)
        recent = window + reserved
        if recent + amount > limit and recent >= limit:
            return Verdict(
                False,
                Code.VELOCITY,
                f"velocity limit: {_units(window)} spent in the last "
                f"{t.velocity_window_s}s, limit {_units(limit)}",
            )
    since = ch.perf_violation_since
    if since is not None and ts - since >= t.performance_grace_s:
        return Verdict(
            False,
            Code.PERFORMANCE_THRESHOLD,
            f"performance threshold violated since {int(ts - since)}s: {ch.perf_violation_reason}",
        )
    return OK
