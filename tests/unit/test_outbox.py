"""Lazy breaker transitions seen by read-only calls are not lost."""

from __future__ import annotations

from datetime import timedelta

from pacer_stream.core.serde import dumps, loads
from pacer_stream.core.types import BreakerTransition, CircuitBreakerState

from .conftest import DAY0, G, Harness, U


def _opened() -> Harness:
    h = Harness({G: 1000 * U})
    h.at(DAY0 + timedelta(hours=12))
    h.engine.force_breaker(h.state, G, CircuitBreakerState.OPEN, h.now)
    h.ch().breaker.forced = False  # an ordinary trip: cooldown applies
    h.ch().breaker.until = (h.now + timedelta(minutes=5)).timestamp()
    return h


def test_transition_consumed_by_a_read_is_emitted_by_the_next_tick() -> None:
    h = _opened()
    h.advance(minutes=6)
    h.decide(U)  # lazily moves OPEN -> HALF_OPEN
    assert h.ch().breaker.state is CircuitBreakerState.HALF_OPEN
    out = [o for o in h.tick() if isinstance(o, BreakerTransition)]
    assert [(o.previous, o.state) for o in out] == [
        (CircuitBreakerState.OPEN, CircuitBreakerState.HALF_OPEN)
    ]
    assert h.tick() == []  # handed out once


def test_pending_transition_survives_serialisation() -> None:
    h = _opened()
    h.advance(minutes=6)
    h.engine.allowance(h.state, G, h.now, 10)
    restored = loads(dumps(h.state))
    out = h.engine.tick(restored, h.now)
    assert any(isinstance(o, BreakerTransition) for o in out)
