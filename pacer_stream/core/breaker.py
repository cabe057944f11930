"""Per campaign/channel circuit breaker: an explicit state machine with an injected clock.

    CLOSED --trip(cause)--> OPEN --cooldown elapsed--> HALF_OPEN --k good spends--> CLOSED
                             ^                              |
                             +-------- trial failed --------+

* Cooldowns back off exponentially on repeated trips (base x 2^(trips-1), capped); the
  trip count resets after the breaker has stayed CLOSED for the maximum cooldown.
* A trip on *unasked* spend (a campaign that reserves, tripped by spend nobody
  authorised) holds OPEN for the maximum cooldown at once: HALF_OPEN bounds only what
  is asked for, so a bidder that spends without asking would get a whole burst out at
  every re-test; it is re-tested rarely instead (see docs/simulation.md, "Runaway
  excess").
* HALF_OPEN admits at most ``half_open_trial_spends`` trial spends, together at most
  :data:`TRIAL_ALLOWANCE_SHARE` of the hour's allowance (while under that amount one
  trial may cross it, as a lump must fit somewhere): a bidder that is still broken
  re-opens the breaker on a small amount, not a second burst. It closes only on
  evidence (that many trial spends on pace), never merely because time passed.
* A *forced* OPEN (emergency stop, operator command) never leaves OPEN by itself: only
  :meth:`Breaker.resume` (or an explicit force to another state) ends it.

Every transition returns a :class:`Transition` with its cause; the engine turns it into a
``BreakerTransition`` output event. Time is epoch seconds passed in by the caller.

Most channels never trip, so their breaker stays as it was created all its life: they
all hold :data:`PRISTINE`, one shared breaker that refuses every write (104 bytes less
per channel). A channel takes a breaker of its own before the first transition that
can leave that state (``ChannelState.own_breaker``, copy-on-write); every other writer
acts only on a breaker that has already left it, and if one ever did not, the shared
breaker raises instead of changing every channel at once.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Final

from pacer_stream.core.types import BreakerCause, CircuitBreakerState, Thresholds

#: Share of the current hour's allowance HALF_OPEN trials may hold together.
TRIAL_ALLOWANCE_SHARE = 0.05
#: Unauthorised spend a channel may accumulate: more than this share of its daily budget
#: within :data:`UNAUTHORISED_WINDOW_S` trips the breaker whatever the number of events
#: or the rate (the runaway rule needs a rate and two events; this one needs an amount).
#: One odd event below this share still never trips; one above it does (see
#: docs/simulation.md, "Unauthorised spend limit", for the trade-off).
UNAUTHORISED_TRIP_SHARE = 0.01
#: ... over the trailing window the channel's unauthorised-spend ring holds (15 minutes).
UNAUTHORISED_WINDOW_S = 900

CLOSED = CircuitBreakerState.CLOSED
OPEN = CircuitBreakerState.OPEN
HALF_OPEN = CircuitBreakerState.HALF_OPEN


@dataclass(frozen=True, slots=True)
class Transition:
    previous: CircuitBreakerState
    state: CircuitBreakerState
    cause: BreakerCause
    at: float
    until: float | None
    forced: bool


@dataclass(slots=True, eq=False)
class Breaker:
    state: CircuitBreakerState = CLOSED
    since: float = 0.0
    #: End of the OPEN cooldown (None while forced or not OPEN).
    until: float | None = None
    cause: BreakerCause | None = None
    trips: int = 0
    forced: bool = False
    trials_admitted: int = 0
    trials_passed: int = 0
    #: Micros admitted by the current HALF_OPEN episode's trials (bounded, see above).
    trial_amount: int = 0

    def __eq__(self, other: object) -> bool:
        """Equal fields, whatever the class: the shared :data:`PRISTINE` equals a new
        ``Breaker()`` (a channel holding either is the same channel)."""
        if not isinstance(other, Breaker):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in _FIELDS)

    __hash__ = None  # type: ignore[assignment]  # mutable

    # -- queries --------------------------------------------------------------------
    def poll(self, now: float, t: Thresholds) -> Transition | None:
        """Apply the time-based transition (OPEN -> HALF_OPEN) lazily."""
        if self.state is OPEN and not self.forced and self.until is not None and now >= self.until:
            return self._go(HALF_OPEN, BreakerCause.COOLDOWN_ELAPSED, self.until, None)
        return None

    def can_admit(self, t: Thresholds, amount: int = 0, allowance: int | None = None) -> bool:
        """Whether a spend may pass (HALF_OPEN admits a bounded number of trials, and,
        given the hour's ``allowance``, a bounded amount)."""
        if self.state is CLOSED:
            return True
        if self.state is HALF_OPEN:
            if self.trials_admitted >= t.half_open_trial_spends:
                return False
            if allowance is None:
                return True
            bound = max(1, int(allowance * TRIAL_ALLOWANCE_SHARE))
            return self.trial_amount < bound and (
                self.trial_amount + amount <= bound or self.trial_amount == 0
            )
        return False

    def admit_trial(self, amount: int = 0) -> None:
        if self.state is HALF_OPEN:
            self.trials_admitted += 1
            self.trial_amount += amount

    def settle_trial(self, amount: int) -> None:
        """A trial's spend was reported: its amount no longer holds the bound (the trial
        still counts toward ``half_open_trial_spends``), so the next trial may follow."""
        if self.state is HALF_OPEN:
            self.trial_amount = max(0, self.trial_amount - amount)

    def release_trial(self, amount: int = 0) -> None:
        """A trial reservation expired or was released unused: its slot is free again
        (otherwise unused trials would block HALF_OPEN for good)."""
        if self.state is HALF_OPEN and self.trials_admitted > 0:
            self.trials_admitted -= 1
            self.trial_amount = max(0, self.trial_amount - amount)

    # -- events ---------------------------------------------------------------------
    def trip(
        self, now: float, cause: BreakerCause, t: Thresholds, *, unasked: bool = False
    ) -> Transition | None:
        """A violation. CLOSED/HALF_OPEN -> OPEN with a backed-off cooldown (the
        maximum one at once when ``unasked``: the spend that tripped it was never asked
        for, so a HALF_OPEN trial could not bound it)."""
        if self.state is OPEN:
            return None
        if self.state is CLOSED and now - self.since >= t.breaker_max_cooldown_s:
            self.trips = 0
        self.trips += 1
        cooldown = min(t.breaker_cooldown_s * 2 ** (self.trips - 1), t.breaker_max_cooldown_s)
        if unasked:
            cooldown = max(cooldown, t.breaker_max_cooldown_s)
        actual = BreakerCause.TRIAL_FAILED if self.state is HALF_OPEN else cause
        tr = self._go(OPEN, actual, now, now + cooldown)
        self.cause = cause
        return tr

    def on_spend(self, now: float, on_pace: bool, t: Thresholds) -> Transition | None:
        """A recorded spend while HALF_OPEN is a trial: enough good ones close it."""
        if self.state is not HALF_OPEN:
            return None
        if not on_pace:
            return self.trip(now, BreakerCause.TRIAL_FAILED, t)
        self.trials_passed += 1
        if self.trials_passed >= t.half_open_trial_spends:
            return self._go(CLOSED, BreakerCause.TRIAL_PASSED, now, None)
        return None

    def force(self, state: CircuitBreakerState, now: float, cause: BreakerCause) -> Transition:
        """Operator override. A forced OPEN holds until resume or another force."""
        tr = self._go(state, cause, now, None, forced=state is OPEN)
        if state is CLOSED:
            self.trips = 0
        return tr

    def resume(self, now: float) -> Transition | None:
        """End a forced OPEN (emergency stop). Resuming goes through HALF_OPEN so the
        channel proves it is on pace before it is fully CLOSED."""
        if not self.forced:
            return None
        return self._go(HALF_OPEN, BreakerCause.RESUME, now, None)

    def _go(
        self,
        state: CircuitBreakerState,
        cause: BreakerCause,
        at: float,
        until: float | None,
        *,
        forced: bool = False,
    ) -> Transition:
        previous = self.state
        self.state = state
        self.since = at
        self.until = until
        self.cause = cause
        self.forced = forced
        self.trials_admitted = 0
        self.trials_passed = 0
        self.trial_amount = 0
        return Transition(previous, state, cause, at, until, forced)


_FIELDS: Final = tuple(f.name for f in fields(Breaker))


class _PristineBreaker(Breaker):
    """The breaker of every channel that has never left its initial state (see the
    module docstring): shared, so it refuses writes; a writer asks the channel for its
    own first."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise TypeError("the shared pristine breaker is never written: own it first")

    def __delattr__(self, name: str) -> None:
        raise TypeError("the shared pristine breaker is never written: own it first")

    def __reduce__(self) -> str:
        """Copies and pickles are the shared instance itself (owners test identity)."""
        return "PRISTINE"


def _pristine() -> Breaker:
    """The shared breaker, set field by field past its refusing ``__setattr__``."""
    new, shared = Breaker(), object.__new__(_PristineBreaker)
    for name in _FIELDS:
        object.__setattr__(shared, name, getattr(new, name))
    return shared


#: The breaker of every channel whose breaker is as new (CLOSED, never tripped nor
#: forced): read-only and shared; ``ChannelState.own_breaker`` replaces it by a copy.
PRISTINE: Final[Breaker] = _pristine()


def shared_if_pristine(breaker: Breaker) -> Breaker:
    """:data:`PRISTINE` if ``breaker`` is as new (a loaded value), else ``breaker``."""
    return PRISTINE if breaker == PRISTINE else breaker
