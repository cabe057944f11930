"""The shared pristine breaker (copy-on-write): channels that never trip share one
read-only breaker, and nothing the engine does ever writes to it.

Why it matters: the breaker is shared by every such channel of a worker, so one write
to it would change the breaker of all of them at once. These tests drive a day of
trips, trials and commands and check the shared breaker is as new afterwards, and that
a slip (a write without ``own_breaker``) fails loudly instead of spreading.
"""

from __future__ import annotations

import copy
import pickle
from datetime import timedelta

import pytest

from pacer_stream.core import serde
from pacer_stream.core.breaker import _FIELDS, PRISTINE, Breaker, shared_if_pristine
from pacer_stream.core.pacing import planned_at
from pacer_stream.core.state import ChannelState
from pacer_stream.core.types import (
    BreakerCause,
    BreakerTransition,
    CircuitBreakerState,
    Output,
    Thresholds,
)

from .conftest import DAY0, UNCAPPED, F, G, Harness, U

CLOSED = CircuitBreakerState.CLOSED
OPEN = CircuitBreakerState.OPEN
HALF_OPEN = CircuitBreakerState.HALF_OPEN
T = Thresholds()


def _fields(b: Breaker) -> tuple[object, ...]:
    return tuple(getattr(b, f) for f in _FIELDS)


AS_NEW = _fields(Breaker())


def _states(outputs: list[Output]) -> list[CircuitBreakerState]:
    return [o.state for o in outputs if isinstance(o, BreakerTransition)]


def test_a_new_channel_shares_the_pristine_breaker() -> None:
    h = Harness({G: 100 * U, F: 100 * U})
    assert h.ch(G).breaker is PRISTINE and h.ch(F).breaker is PRISTINE
    assert ChannelState(G).breaker is PRISTINE
    assert Breaker() == PRISTINE and PRISTINE.__eq__(Breaker()) is True  # either side first


def test_the_pristine_breaker_refuses_every_write() -> None:
    with pytest.raises(TypeError):
        PRISTINE.state = OPEN
    with pytest.raises(TypeError):
        PRISTINE.trip(1000.0, BreakerCause.RUNAWAY_VELOCITY, T)
    with pytest.raises(TypeError):
        PRISTINE.force(OPEN, 1000.0, BreakerCause.FORCED)
    with pytest.raises(TypeError):
        del PRISTINE.trips
    # the calls that leave a CLOSED breaker as it is write nothing
    assert PRISTINE.poll(10**9, T) is None and PRISTINE.resume(1.0) is None
    assert PRISTINE.on_spend(1.0, False, T) is None
    PRISTINE.admit_trial(5)
    PRISTINE.settle_trial(5)
    PRISTINE.release_trial(5)
    assert _fields(PRISTINE) == AS_NEW


def test_copies_and_pickles_of_the_pristine_breaker_are_itself() -> None:
    assert copy.copy(PRISTINE) is PRISTINE and copy.deepcopy(PRISTINE) is PRISTINE
    assert pickle.loads(pickle.dumps(PRISTINE)) is PRISTINE
    h = Harness()
    assert copy.deepcopy(h.state).channels[G].breaker is PRISTINE


def test_own_breaker_copies_once_and_leaves_the_shared_one_alone() -> None:
    ch = Harness().ch()
    own = ch.own_breaker()
    assert own is not PRISTINE and type(own) is Breaker and own == PRISTINE
    assert ch.breaker is own and ch.own_breaker() is own
    own.trip(1000.0, BreakerCause.RUNAWAY_VELOCITY, T)
    assert ch.breaker.state is OPEN and _fields(PRISTINE) == AS_NEW


def test_a_day_of_trips_trials_and_commands_never_writes_the_shared_breaker() -> None:
    calm = Harness({G: 2400 * U, F: 2400 * U}, thresholds=UNCAPPED, campaign_id="calm")
    wild = Harness({G: 2400 * U, F: 2400 * U}, thresholds=UNCAPPED, campaign_id="wild")
    seen: list[CircuitBreakerState] = []
    # the morning on plan for both
    for h in (calm, wild):
        h.at(DAY0 + timedelta(hours=12))
        for c in (G, F):
            h.spend(
                planned_at(h.ch(c), h.now.timestamp()), channel=c, when=DAY0 + timedelta(hours=11)
            )
    # wild/G: the hour spent early, then repeated overspend trips it
    wild.at(DAY0 + timedelta(hours=12, minutes=58))
    wild.spend(100 * U, when=DAY0 + timedelta(hours=12, minutes=5))
    for k in range(5):
        wild.at(DAY0 + timedelta(hours=12, minutes=58, seconds=k))
        seen += _states(wild.spend(U // 10).outputs)
    assert wild.ch(G).breaker.state is OPEN
    # cooldown, then trials: reserved, settled on pace, closing it
    wild.at(DAY0 + timedelta(hours=13, minutes=3, seconds=5))
    seen += _states(wild.tick())
    for _ in range(3):
        d = wild.reserve(U)
        assert d.allowed
        seen += _states(wild.spend(U, reservation_id=d.reservation_id).outputs)
    assert wild.ch(G).breaker.state is CLOSED
    # a trial left unused (released by expiry) and one far ahead of plan (failed)
    wild.at(DAY0 + timedelta(hours=14))
    wild.engine.force_breaker(wild.state, G, OPEN, wild.now)
    wild.ch(G).own_breaker().forced = False  # an ordinary trip, whose cooldown ends
    wild.ch(G).own_breaker().until = wild.now.timestamp()
    seen += _states(wild.tick())
    assert wild.reserve(U).allowed  # a trial that is never reported
    wild.advance(minutes=30)
    wild.tick()
    seen += _states(wild.spend(700 * U).outputs)
    # calls every channel of both campaigns sees, tripped or not
    for h in (calm, wild):
        h.advance(minutes=1)
        for c in (G, F):
            h.decide(U, c)
            d = h.reserve(U, c)
            if d.allowed:
                h.spend(U, channel=c, reservation_id=d.reservation_id)
            h.engine.allowance(h.state, c, h.now, 60.0)
            h.engine.snapshot(h.state, c, h.now)
        h.tick()
    calm.engine.resume(calm.state, calm.now)  # nothing was stopped: changes nothing
    # an emergency stop and resume of the wild campaign, a forced close of its F
    seen += _states(wild.engine.emergency_stop(wild.state, "test", wild.now))
    seen += _states(wild.engine.resume(wild.state, wild.now))
    seen += _states(wild.engine.force_breaker(wild.state, F, CLOSED, wild.now))
    # the rest of the day and the next one's start
    for h in (calm, wild):
        h.at(DAY0 + timedelta(days=1, hours=1))
        h.tick()
        h.engine.reallocate(h.state, h.now)
        copy = serde.loads(serde.dumps(h.state))
        assert serde.dumps(copy) == serde.dumps(h.state)
    assert {OPEN, HALF_OPEN, CLOSED} <= set(seen)
    assert _fields(PRISTINE) == AS_NEW and type(PRISTINE) is not Breaker
    # channels that never left the pristine state still share it; the others own theirs
    assert calm.ch(G).breaker is PRISTINE and calm.ch(F).breaker is PRISTINE
    assert wild.ch(G).breaker is not PRISTINE and wild.ch(G).breaker.trips > 0
    assert wild.ch(F).breaker is not PRISTINE and wild.ch(F).breaker.cause is BreakerCause.FORCED


def test_a_loaded_breaker_is_shared_only_while_pristine() -> None:
    h = Harness({G: 100 * U, F: 100 * U})
    h.at(DAY0 + timedelta(hours=1))
    h.engine.force_breaker(h.state, F, CLOSED, h.now)  # CLOSED, but no longer as new
    text = serde.dumps(h.state)
    loaded = serde.loads(text)
    assert loaded.channels[G].breaker is PRISTINE
    assert loaded.channels[F].breaker is not PRISTINE
    assert loaded.channels[F].breaker.cause is BreakerCause.FORCED
    assert serde.dumps(loaded) == text
    assert shared_if_pristine(Breaker()) is PRISTINE
    tripped = Breaker(trips=1)
    assert shared_if_pristine(tripped) is tripped
