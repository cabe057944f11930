"""A granted reservation as a fact of its own, so the stream worker can make a grant
durable without writing the whole campaign.

A grant changes three things in a campaign's state: the channel's reservation, its
reserved total and the remembered answer to the request (so a retry gets the same hold).
:func:`grant_of` reads those back after :meth:`PacingEngine.reserve` granted a request,
and :func:`restore` puts them back into a state saved before the grant (after a restart);
nothing else is derived here, so the engine stays the only place that decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from pacer_stream.core.compact import own
from pacer_stream.core.state import Answer, CampaignState, Reservation
from pacer_stream.core.types import ChannelType, CircuitBreakerState


@dataclass(frozen=True, slots=True)
class Grant:
    channel: ChannelType
    amount: int
    request_id: str
    reservation_id: str
    created_at: float
    expires_at: float


def grant_of(state: CampaignState, channel: ChannelType, request_id: str) -> Grant | None:
    """The grant the engine just made for ``request_id``, when restoring it later would
    rebuild the whole change: a hold on a CLOSED channel (a HALF_OPEN trial also moves
    the breaker's trial count, which only the campaign's own value carries)."""
    answer = state.answered.get(request_id)
    ch = state.channels.get(channel)
    if answer is None or ch is None or ch.breaker.state is not CircuitBreakerState.CLOSED:
        return None
    res = ch.reservations.get(answer.reservation_id)
    if res is None:
        return None
    return Grant(
        channel, res.amount, request_id, res.reservation_id, res.created_at, res.expires_at
    )


def restore(state: CampaignState, grant: Grant) -> bool:
    """Put a saved grant back into a state saved before it; False when the state knows
    the request already (or no longer has the channel)."""
    ch = state.channels.get(grant.channel)
    if ch is None or grant.request_id in state.answered:
        return False
    rid = grant.reservation_id
    ch.reservations = own(ch.reservations)
    ch.reservations[rid] = Reservation(rid, grant.amount, grant.expires_at, grant.created_at)
    ch.reserved_total += grant.amount
    state.answered = own(state.answered)
    state.answered[grant.request_id] = Answer(grant.channel, grant.amount, rid, grant.created_at)
    return True
