"""How a reservation ends: settled by spend, released, or expired into a late-report grace.

Both the decision path (a spend settles a hold, a caller releases one) and lazy time
(a hold outlives its TTL) end reservations. Every ending marks the remembered answer of
the request that made the hold, and a hold that ends unused gives its breaker trial
back; those shared steps live here so the engine and ``day`` need not import each other.
"""

from __future__ import annotations

from pacer_stream.core.compact import own, shared_if_empty
from pacer_stream.core.report_lag import report_grace
from pacer_stream.core.state import (
    AnswerStatus,
    CampaignState,
    ChannelState,
    Reservation,
    Unreported,
)
from pacer_stream.core.types import CircuitBreakerState


def mark_answer(state: CampaignState, reservation_id: str, status: AnswerStatus) -> None:
    """Record how a reservation ended on the answer of the request that made it."""
    if not reservation_id.startswith("res-"):
        return
    answer = state.answered.get(reservation_id[4:])
    if answer is not None and answer.reservation_id == reservation_id:
        answer.status = status


def unused_trial(ch: ChannelState, res: Reservation) -> None:
    """Every reservation made while HALF_OPEN was a trial admission; one that ends
    without a spend gives its trial back."""
    br = ch.breaker
    if br.state is CircuitBreakerState.HALF_OPEN and res.created_at >= br.since:
        br.release_trial(res.amount)


def expire_holds(state: CampaignState, ch: ChannelState, ts: float) -> None:
    """Expire reservations past their TTL into ``unreported`` (held until a late report
    could still arrive) and drop unreported holds whose grace has passed."""
    res = ch.reservations
    if res:
        while res:
            first = next(iter(res.values()))
            if first.expires_at > ts:
                break
            del res[first.reservation_id]
            ch.reserved_total -= first.amount
            unused_trial(ch, first)
            mark_answer(state, first.reservation_id, AnswerStatus.EXPIRED)
            grace = first.expires_at + report_grace(ch.report_lags, state.thresholds)
            ch.unreported = own(ch.unreported)
            ch.unreported[first.reservation_id] = Unreported(first.amount, grace, first.created_at)
            ch.unreported_total += first.amount
    unrep = ch.unreported
    while unrep:
        rid0, late = next(iter(unrep.items()))
        if late.drop_at > ts:
            break
        del unrep[rid0]
        ch.unreported_total -= late.amount
    # An idle channel gives its emptied maps back (their grown tables stay otherwise).
    ch.reservations = shared_if_empty(ch.reservations)
    ch.unreported = shared_if_empty(ch.unreported)
