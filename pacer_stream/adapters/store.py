"""The allowance store port.

``AllowanceStore`` is what the fast path needs from storage. ``RedisStore`` implements it
with the Lua scripts (many bid engines, one truth); the rules live only there -- there is
no Python twin to keep in step. The component tests run the behavioural suite against
the real local Redis.

Semantics (see ``docs/redis.md`` for the full contract):

* The worker publishes, per campaign/channel, a *generation*: a spend allowance for the
  next slice plus the breaker state, valid until an expiry stamp in store time.
* ``reserve`` takes an amount from the current generation atomically; it is denied when
  the amount does not fit, the breaker is not CLOSED, or the state is missing/expired.
  The store never lets the remaining allowance go below zero.
* Every operation is idempotent: ``reserve`` by request id, ``settle``/``release`` by
  reservation id.
* Failures close: if the store cannot answer, the reservation is denied
  (``Code.STORE_UNAVAILABLE``); stale state is denied with ``Code.STATE_STALE``.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from pacer_stream.adapters import keys
from pacer_stream.core.money import MAX_MICROS, check_micros
from pacer_stream.core.types import ChannelType, CircuitBreakerState, Code
from pacer_stream.errors import InvalidArgument, PacerError, WrongType

#: Callback told about every fail-closed denial (wire to a Prometheus counter).
FailClosedHook = Callable[[Code], None]

#: Defaults of a publish (the worker normally passes settings values).
DEFAULT_RESERVATION_TTL_S = 60.0
#: Records of finished reservations are kept this long after expiry so that late retries
#: of reserve/settle/release still get their original answer.
DEFAULT_RETENTION_S = 300.0
#: The ledger (epoch, settled totals) outlives idle periods so that a campaign paused
#: overnight is not mistaken for lost state in the morning.
DEFAULT_LEDGER_TTL_S = 48 * 3600.0
#: After the ledger is found lost, publish 0 for this long: reservations issued from the
#: lost ledger may still be spent and reported during that time.
DEFAULT_QUARANTINE_S = 120.0


def _noop_hook(reason: Code) -> None:
    return None


class StoreUnavailable(PacerError, ConnectionError):
    """The store could not be reached or did not answer in time.

    ``reserve`` never raises it (it denies with ``Code.STORE_UNAVAILABLE``); ``settle``
    and ``release`` do, because the caller must retry them (they are idempotent).
    """

    code = Code.STORE_UNAVAILABLE.value


class IdempotencyConflict(InvalidArgument):
    """A request/reservation id was reused with a different amount."""

    code = "idempotency_conflict"


@dataclass(frozen=True, slots=True)
class Reservation:
    """Answer to ``reserve``.

    ``allowed`` with ``code == Code.OK`` means ``amount`` is held for the bid engine until
    ``expires_at_ms`` (store time, epoch milliseconds) or until settled/released.
    ``remaining_micros`` is what is left of the current allowance after this decision.
    """

    allowed: bool
    code: Code
    reservation_id: str | None
    remaining_micros: int
    reason: str
    generation: int | None = None
    expires_at_ms: int | None = None
    replayed: bool = False


class SettleStatus(StrEnum):
    SETTLED = "settled"
    #: The reservation had expired or been released, or was unknown: the actual amount
    #: was charged to the current allowance as unreserved spend.
    SETTLED_LATE = "settled_late"
    #: The reservation came from a ledger that no longer exists (state lost): nothing
    #: could be recorded; the worker still sees the spend through Kafka.
    UNKNOWN_EPOCH = "unknown_epoch"


class ReleaseStatus(StrEnum):
    RELEASED = "released"
    ALREADY_SETTLED = "already_settled"
    EXPIRED = "expired"
    UNKNOWN = "unknown"
    UNKNOWN_EPOCH = "unknown_epoch"


@dataclass(frozen=True, slots=True)
class Settlement:
    """Answer to ``settle``. ``excess_micros`` is spend that did not fit in the allowance
    (it was charged down to zero; the rest is recorded, not lost)."""

    status: SettleStatus
    reservation_id: str
    reserved_micros: int
    actual_micros: int
    refunded_micros: int
    excess_micros: int
    remaining_micros: int
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class Release:
    status: ReleaseStatus
    reservation_id: str
    refunded_micros: int
    remaining_micros: int
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What a publish did, for the worker's accounting and for alerts.

    ``net_micros`` is the allowance actually published: ``allowance_micros`` minus
    ``outstanding_micros`` (live fast-path reservations of every generation) minus
    ``unreported_micros`` (fast-path spend settled but not yet counted by the core), or 0
    while ``quarantined``. ``epoch`` names the ledger; when it changes, the worker's
    per-epoch count of reported fast-path spend starts again at 0.
    """

    accepted: bool
    generation: int
    net_micros: int
    outstanding_micros: int
    unreported_micros: int
    previous_generation: int
    previous_remaining_micros: int
    settled_micros: int
    excess_micros: int
    epoch: str
    created: bool
    lost: bool
    quarantined: bool
    quarantine_until_ms: int
    expires_at_ms: int


@dataclass(frozen=True, slots=True)
class Usage:
    """Accounting of one campaign/channel as stored (no reclaim is run to read it)."""

    epoch: str
    generation: int
    granted_micros: int
    consumed_micros: int
    remaining_micros: int
    outstanding_micros: int
    settled_micros: int
    excess_micros: int
    expires_at_ms: int
    quarantine_until_ms: int
    breaker_state: CircuitBreakerState | None
    now_ms: int


@runtime_checkable
class AllowanceStore(Protocol):
    """The port both stores implement (all coroutines, so callers are store-agnostic)."""

    async def reserve(
        self,
        campaign_id: str,
        channel: ChannelType | str,
        amount_micros: int,
        request_id: str,
    ) -> Reservation: ...

    async def settle(self, reservation_id: str, actual_micros: int) -> Settlement: ...

    async def release(self, reservation_id: str) -> Release: ...

    async def publish(self, request: PublishRequest) -> PublishResult: ...

    async def publish_breaker(
        self,
        campaign_id: str,
        channel: ChannelType | str,
        state: CircuitBreakerState | str,
        ttl_s: float,
    ) -> int: ...

    async def breaker_state(
        self, campaign_id: str, channel: ChannelType | str
    ) -> CircuitBreakerState | None: ...

    async def usage(self, campaign_id: str, channel: ChannelType | str) -> Usage: ...

    async def aclose(self) -> None: ...


# ---------------------------------------------------------------- argument validation
# Shared by both stores so invalid input raises the same typed error before any I/O.


def check_reserve_args(
    campaign_id: object, channel: object, amount_micros: object, request_id: object
) -> tuple[str, ChannelType, int, str]:
    cid = keys.check_campaign_id(campaign_id)
    ch = keys.check_channel(channel)
    amount = check_micros(amount_micros, what="amount_micros", allow_zero=False)  # type: ignore[arg-type]
    rid = keys.check_id(request_id, "request_id")
    return cid, ch, amount, rid


def check_actual(actual_micros: object) -> int:
    return check_micros(actual_micros, what="actual_micros", allow_zero=True)  # type: ignore[arg-type]


def check_breaker_state(state: object) -> CircuitBreakerState:
    if isinstance(state, CircuitBreakerState):
        return state
    if not isinstance(state, str):
        raise WrongType(f"breaker state must be a CircuitBreakerState, got {state!r}")
    try:
        return CircuitBreakerState(state)
    except ValueError:
        raise InvalidArgument(f"unknown breaker state {state!r}") from None


def seconds_to_ms(value: object, what: str, *, minimum: float) -> int:
    """A duration in seconds (int or float, finite, >= minimum) as integer milliseconds."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WrongType(f"{what} must be a number of seconds, got {type(value).__name__}")
    if not math.isfinite(value) or value < minimum:
        raise InvalidArgument(f"{what} must be a finite number >= {minimum}, got {value}")
    ms = round(value * 1000)
    if ms > MAX_MICROS:
        raise InvalidArgument(f"{what} is too large")
    return ms


@dataclass(frozen=True, slots=True)
class PublishRequest:
    """One publish, as the worker asks for it (seconds, micros, enum or str values):
    a new generation of ``allowance_micros`` for the slice plus the breaker state,
    valid for ``ttl_s``. The store validates it (:func:`check_publish_args`) before any
    I/O."""

    campaign_id: str
    channel: ChannelType | str
    allowance_micros: int
    breaker_state: CircuitBreakerState | str
    ttl_s: float
    reservation_ttl_s: float = DEFAULT_RESERVATION_TTL_S
    #: Fences a stale publisher: not above the stored generation = rejected.
    generation: int | None = None
    #: Fast-path spend of this ledger epoch the core has already counted.
    reported_micros: int | None = None
    #: The rule that bounds the allowance (denials for an exhausted allowance carry it).
    limit_code: Code = Code.HOURLY_CAP
    #: The ledger epoch the publisher saw last (a different one means Redis lost it).
    expected_epoch: str | None = None
    quarantine_s: float = DEFAULT_QUARANTINE_S
    retention_s: float = DEFAULT_RETENTION_S
    ledger_ttl_s: float = DEFAULT_LEDGER_TTL_S


@dataclass(frozen=True, slots=True)
class PublishArgs:
    """Validated publish arguments, in the units the store works in."""

    keys: keys.ChannelKeys
    campaign_id: str
    channel: ChannelType
    gross: int
    state: CircuitBreakerState
    ttl_ms: int
    reservation_ttl_ms: int
    retention_ms: int
    generation: int | None
    reported: int | None
    limit_code: Code
    expected_epoch: str | None
    quarantine_ms: int
    ledger_ttl_ms: int


def check_publish_args(request: object, *, prefix: str) -> PublishArgs:
    if not isinstance(request, PublishRequest):
        raise WrongType(f"publish takes a PublishRequest, got {type(request).__name__}")
    campaign_id, channel = request.campaign_id, request.channel
    allowance_micros, breaker_state = request.allowance_micros, request.breaker_state
    ttl_s, reservation_ttl_s = request.ttl_s, request.reservation_ttl_s
    generation, reported_micros = request.generation, request.reported_micros
    limit_code, expected_epoch = request.limit_code, request.expected_epoch
    quarantine_s, retention_s = request.quarantine_s, request.retention_s
    ledger_ttl_s = request.ledger_ttl_s
    cid = keys.check_campaign_id(campaign_id)
    ch = keys.check_channel(channel)
    gross = check_micros(allowance_micros, what="allowance_micros")
    state = check_breaker_state(breaker_state)
    ttl_ms = seconds_to_ms(ttl_s, "ttl_s", minimum=0.001)
    if generation is not None and (
        isinstance(generation, bool) or not isinstance(generation, int) or generation < 1
    ):
        raise InvalidArgument(f"generation must be a positive int, got {generation!r}")
    reported = None
    if reported_micros is not None:
        reported = check_micros(reported_micros, what="reported_micros")
    if not isinstance(limit_code, Code):
        raise WrongType(f"limit_code must be a Code, got {limit_code!r}")
    if expected_epoch is not None and (
        not isinstance(expected_epoch, str) or not expected_epoch.isalnum()
    ):
        raise InvalidArgument(f"expected_epoch must be alphanumeric, got {expected_epoch!r}")
    return PublishArgs(
        keys=keys.channel_keys(cid, ch, prefix=prefix),
        campaign_id=cid,
        channel=ch,
        gross=gross,
        state=state,
        ttl_ms=ttl_ms,
        reservation_ttl_ms=seconds_to_ms(reservation_ttl_s, "reservation_ttl_s", minimum=0),
        retention_ms=seconds_to_ms(retention_s, "retention_s", minimum=0.001),
        generation=generation,
        reported=reported,
        limit_code=limit_code,
        expected_epoch=expected_epoch,
        quarantine_ms=seconds_to_ms(quarantine_s, "quarantine_s", minimum=0),
        ledger_ttl_ms=seconds_to_ms(ledger_ttl_s, "ledger_ttl_s", minimum=0.001),
    )


def new_epoch() -> str:
    """A fresh ledger epoch token (alphanumeric, as the scripts require)."""
    return secrets.token_hex(6)


def code_of(value: str) -> Code:
    """Map a code string from the store back to the enum (unknown -> STATE_STALE, which
    denies: an unexpected answer must never turn into an allow)."""
    try:
        return Code(value)
    except ValueError:
        return Code.STATE_STALE
