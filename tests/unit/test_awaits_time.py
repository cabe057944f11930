"""``PacingEngine.awaits_time``: which campaigns the worker's maintenance ticks every
interval (time alone will change them in a way others must see promptly) and which it
leaves to the periodic full tick."""

from __future__ import annotations

from pacer_stream.core.types import BreakerCause, CircuitBreakerState, Thresholds

from .conftest import Harness, U


def test_an_idle_campaign_awaits_nothing() -> None:
    h = Harness()
    h.spend(5 * U)  # spend that names no reservation holds nothing
    assert not h.engine.awaits_time(h.state)


def test_a_hold_awaits_its_expiry_and_the_report_grace_after_it() -> None:
    h = Harness(thresholds=Thresholds(reservation_ttl_s=60, report_grace_s=600))
    assert h.reserve(2 * U).allowed
    assert h.engine.awaits_time(h.state)
    h.advance(seconds=61)
    h.tick()  # expired unused: held on as unreported for the grace
    assert h.ch().reserved_total == 0 and h.ch().unreported_total == 2 * U
    assert h.engine.awaits_time(h.state)
    h.advance(seconds=3600)
    h.tick()
    assert h.ch().unreported_total == 0
    assert not h.engine.awaits_time(h.state)


def test_a_hold_settled_by_its_spend_awaits_nothing() -> None:
    h = Harness()
    d = h.reserve(2 * U)
    assert d.allowed and h.engine.awaits_time(h.state)
    h.spend(2 * U, reservation_id=d.reservation_id)
    assert not h.engine.awaits_time(h.state)


def _trip(h: Harness) -> None:
    """Open the channel's breaker as a runaway would (cooldown 300 s)."""
    h.ch().own_breaker().trip(h.now.timestamp(), BreakerCause.RUNAWAY_VELOCITY, Thresholds())


def test_a_breaker_away_from_closed_awaits_time() -> None:
    h = Harness()
    _trip(h)
    assert h.engine.awaits_time(h.state)  # a cooldown to end
    h.advance(seconds=301)
    h.tick()
    assert h.ch().breaker.state is CircuitBreakerState.HALF_OPEN
    assert h.engine.awaits_time(h.state)  # a trial under way
    h.engine.force_breaker(h.state, h.ch().channel, CircuitBreakerState.CLOSED, h.now)
    assert not h.engine.awaits_time(h.state)


def test_outputs_waiting_in_the_outbox_await_the_next_tick() -> None:
    h = Harness()
    _trip(h)
    h.advance(seconds=301)
    h.decide(1 * U)  # the cooldown ends lazily; its transition waits in the outbox
    assert h.state.outbox
    h.engine.force_breaker(h.state, h.ch().channel, CircuitBreakerState.CLOSED, h.now)
    assert h.state.outbox  # forcing returns its own transition, the earlier one waits
    assert h.engine.awaits_time(h.state)
    h.tick()
    assert not h.state.outbox
    assert not h.engine.awaits_time(h.state)
