"""Pure-Python ``AllowanceStore`` with an injected clock.

It mirrors the Lua scripts rule for rule (same reclaim batch, same record states, same
tie-breaking of expiry order, same key-TTL behaviour) so unit tests and the simulator
exercise the real fast-path semantics without a Redis server, and so the shared
behavioural suite can hold both implementations to one contract. The clock is a
callable returning epoch milliseconds; ``ManualClock`` lets a test move time explicitly.

Methods ending in ``_now`` are synchronous (the simulator drives them from its own
loop); the ``AllowanceStore`` coroutines wrap them.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pacer_stream.adapters import keys
from pacer_stream.adapters.store import (
    DEFAULT_LEDGER_TTL_S,
    DEFAULT_QUARANTINE_S,
    DEFAULT_RESERVATION_TTL_S,
    DEFAULT_RETENTION_S,
    FailClosedHook,
    IdempotencyConflict,
    PublishResult,
    Release,
    ReleaseStatus,
    Reservation,
    Settlement,
    SettleStatus,
    Usage,
    _noop_hook,
    check_actual,
    check_breaker_state,
    check_publish_args,
    check_reserve_args,
    code_of,
    new_epoch,
    seconds_to_ms,
)
from pacer_stream.core.types import ChannelType, CircuitBreakerState, Code

#: Same constants as ``lua/_lib.lua``.
RECLAIM_BATCH = 64
KEY_GRACE_MS = 60_000


class ManualClock:
    """A clock for tests and the simulator: epoch milliseconds that move only when told."""

    def __init__(self, start_ms: int = 1_767_225_600_000) -> None:
        self.now_ms = start_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> None:
        self.now_ms += ms


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class _Allowance:
    gen: int
    granted: int
    exp: int
    res_ttl: int
    retention: int
    limit: str
    pub: int
    key_expires_at: int


@dataclass(slots=True)
class _Breaker:
    state: str
    exp: int
    pub: int
    key_expires_at: int


@dataclass(slots=True)
class _Record:
    st: str  # R live, S settled, Z settled late, L released, X expired
    amount: int
    gen: int
    exp: int
    rem: int
    actual: int = 0
    refunded: int = 0
    excess: int = 0
    after: int = 0


@dataclass(slots=True)
class _Ledger:
    epoch: str
    gen: int = 0
    consumed: int = 0
    outstanding: int = 0
    settled: int = 0
    excess: int = 0
    q_until: int | None = None
    records: dict[str, _Record] = field(default_factory=dict)
    expires_at: int | None = None


@dataclass(slots=True)
class _Timers:
    scores: dict[str, int] = field(default_factory=dict)
    heap: list[tuple[int, str]] = field(default_factory=list)
    expires_at: int | None = None

    def add(self, score: int, member: str) -> None:
        self.scores[member] = score
        heapq.heappush(self.heap, (score, member))

    def remove(self, member: str) -> None:
        self.scores.pop(member, None)

    def due(self, now: int, limit: int) -> list[str]:
        """Members with score <= now, lowest (score, member) first -- like ZRANGEBYSCORE."""
        out: list[str] = []
        popped: list[tuple[int, str]] = []
        while self.heap and len(out) < limit and self.heap[0][0] <= now:
            score, member = heapq.heappop(self.heap)
            if self.scores.get(member) == score and member not in out:
                out.append(member)
                popped.append((score, member))
        for item in popped:  # still present until the caller removes them
            heapq.heappush(self.heap, item)
        return out


@dataclass(slots=True)
class _Channel:
    allowance: _Allowance | None = None
    breaker: _Breaker | None = None
    ledger: _Ledger | None = None
    timers: _Timers = field(default_factory=_Timers)


class MemoryStore:
    """In-process allowance store with the exact semantics of ``RedisStore``."""

    def __init__(
        self,
        *,
        clock: Callable[[], int] = wall_clock_ms,
        on_fail_closed: FailClosedHook | None = None,
    ) -> None:
        self._clock = clock
        self._on_fail_closed = on_fail_closed or _noop_hook
        self._channels: dict[tuple[str, ChannelType], _Channel] = {}

    # ------------------------------------------------------------------ helpers
    def _get(self, cid: str, ch: ChannelType, now: int) -> _Channel:
        c = self._channels.setdefault((cid, ch), _Channel())
        # Emulate Redis key expiry (keys vanish once their TTL has passed).
        if c.allowance is not None and c.allowance.key_expires_at <= now:
            c.allowance = None
        if c.breaker is not None and c.breaker.key_expires_at <= now:
            c.breaker = None
        if c.ledger is not None and c.ledger.expires_at is not None and c.ledger.expires_at <= now:
            c.ledger = None
        if c.timers.expires_at is not None and c.timers.expires_at <= now:
            c.timers = _Timers()
        return c

    @staticmethod
    def _extend(current: int | None, now: int, ms: int) -> int:
        target = now + ms
        return target if current is None or current < target else current

    @staticmethod
    def _expire_record(led: _Ledger, rid: str) -> None:
        r = led.records.get(rid)
        if r is None or r.st != "R":
            return
        led.outstanding -= r.amount
        if r.gen == led.gen:
            led.consumed -= r.amount
            r.refunded = r.amount
        r.st = "X"

    def _reclaim(self, c: _Channel, now: int) -> None:
        led = c.ledger
        for member in c.timers.due(now, RECLAIM_BATCH):
            kind, rid = member[:2], member[2:]
            if led is not None:
                self._expire_record(led, rid)
                if kind == keys.FORGET_MEMBER_PREFIX:
                    led.records.pop(rid, None)
            c.timers.remove(member)

    @staticmethod
    def _remaining(a: _Allowance | None, led: _Ledger | None) -> int:
        if a is None or led is None or led.gen != a.gen:
            return 0
        return max(0, a.granted - led.consumed)

    # ------------------------------------------------------------------ reserve
    def reserve_now(
        self, campaign_id: str, channel: ChannelType | str, amount_micros: int, request_id: str
    ) -> Reservation:
        cid, ch, amount, rid = check_reserve_args(campaign_id, channel, amount_micros, request_id)
        now = self._clock()
        c = self._get(cid, ch, now)
        self._reclaim(c, now)
        led, a = c.ledger, c.allowance
        epoch = led.epoch if led is not None else ""

        def deny(code: str, remaining: int, reason: str) -> Reservation:
            result = Reservation(False, code_of(code), None, remaining, reason)
            if result.code in (Code.STATE_STALE, Code.STORE_UNAVAILABLE):
                self._on_fail_closed(result.code)
            return result

        if led is not None and rid in led.records:
            r = led.records[rid]
            if r.amount > 0 and r.amount != amount:
                return Reservation(
                    False,
                    Code.IDEMPOTENCY_CONFLICT,
                    None,
                    self._remaining(a, led),
                    "request_id was already used with a different amount; "
                    "a new request needs a new request_id",
                )
            if r.st == "R":
                b = c.breaker
                if b is None or b.exp <= now:
                    return deny(
                        "state_stale",
                        0,
                        "circuit breaker state is stale (worker has not refreshed it)",
                    )
                if b.state != "closed":
                    return deny("circuit_breaker_open", 0, f"circuit breaker is {b.state}")
                return Reservation(
                    True,
                    Code.OK,
                    keys.reservation_id(cid, ch, epoch, rid),
                    r.rem,
                    "replayed: reservation already granted",
                    r.gen,
                    r.exp,
                    True,
                )
            code, what = {
                "S": ("reservation_settled", "settled"),
                "Z": ("reservation_settled", "settled"),
                "L": ("reservation_released", "released"),
            }.get(r.st, ("reservation_expired", "expired"))
            return Reservation(
                False,
                code_of(code),
                keys.reservation_id(cid, ch, epoch, rid),
                self._remaining(a, led),
                f"request_id names a reservation that was already {what}; "
                "nothing new is authorised",
                replayed=True,
            )
        b = c.breaker
        if b is None:
            return deny(
                "state_stale", 0, "no circuit breaker state published for this campaign/channel"
            )
        if b.exp <= now:
            return deny(
                "state_stale", 0, "circuit breaker state is stale (worker has not refreshed it)"
            )
        if b.state != "closed":
            return deny("circuit_breaker_open", 0, f"circuit breaker is {b.state}")
        if a is None:
            return deny("state_stale", 0, "no spend allowance published for this campaign/channel")
        if a.exp <= now:
            return deny("state_stale", 0, "spend allowance expired (worker has not refreshed it)")
        if led is None or led.gen != a.gen:
            return deny("state_stale", 0, "ledger does not match the published allowance")
        remaining = max(0, a.granted - led.consumed)
        if amount > remaining:
            return deny(
                a.limit,
                remaining,
                f"fast-path allowance exhausted: {remaining} micros left, {amount} requested",
            )
        led.consumed += amount
        led.outstanding += amount
        exp = now + a.res_ttl
        rem = remaining - amount
        led.records[rid] = _Record("R", amount, a.gen, exp, rem)
        c.timers.add(exp, keys.EXPIRY_MEMBER_PREFIX + rid)
        c.timers.add(exp + a.retention, keys.FORGET_MEMBER_PREFIX + rid)
        return Reservation(
            True,
            Code.OK,
            keys.reservation_id(cid, ch, epoch, rid),
            rem,
            "reserved from fast-path allowance",
            a.gen,
            exp,
            False,
        )

    # ------------------------------------------------------------------ settle
    def settle_now(self, reservation_id: str, actual_micros: int) -> Settlement:
        ref = keys.parse_reservation_id(reservation_id)
        actual = check_actual(actual_micros)
        now = self._clock()
        c = self._get(ref.campaign_id, ref.channel, now)
        led = c.ledger
        if led is None or led.epoch != ref.epoch:
            return Settlement(SettleStatus.UNKNOWN_EPOCH, reservation_id, 0, actual, 0, 0, 0)
        self._reclaim(c, now)
        a = c.allowance
        rid = ref.request_id
        r = led.records.get(rid)
        if r is not None and r.st in ("S", "Z"):
            if r.actual != actual:
                raise IdempotencyConflict("reservation was already settled with a different amount")
            status = SettleStatus.SETTLED if r.st == "S" else SettleStatus.SETTLED_LATE
            return Settlement(
                status, reservation_id, r.amount, r.actual, r.refunded, r.excess, r.after, True
            )
        reserved = refunded = extra = 0
        if r is not None and r.st == "R":
            st = "S"
            reserved = r.amount
            led.outstanding -= reserved
            c.timers.remove(keys.EXPIRY_MEMBER_PREFIX + rid)
            if actual <= reserved:
                if r.gen == led.gen and reserved > actual:
                    refunded = reserved - actual
                    led.consumed -= refunded
            else:
                extra = actual - reserved
        else:
            st = "Z"
            if r is not None:
                reserved = r.amount
            extra = actual
        excess = 0
        if extra > 0:
            take = 0
            if a is not None and led.gen == a.gen:
                take = min(extra, max(0, a.granted - led.consumed))
                led.consumed += take
            excess = extra - take
            led.excess += excess
        led.settled += actual
        rem = self._remaining(a, led)
        rec = _Record(st, reserved, led.gen, now, 0, actual, refunded, excess, rem)
        if r is not None:
            rec.gen, rec.exp, rec.rem = r.gen, r.exp, r.rem
        led.records[rid] = rec
        if r is None and c.timers.expires_at is not None:  # the key exists (publish made it)
            retention = a.retention if a is not None else 300_000
            c.timers.add(now + retention, keys.FORGET_MEMBER_PREFIX + rid)
        status = SettleStatus.SETTLED if st == "S" else SettleStatus.SETTLED_LATE
        return Settlement(status, reservation_id, reserved, actual, refunded, excess, rem, False)

    # ------------------------------------------------------------------ release
    def release_now(self, reservation_id: str) -> Release:
        ref = keys.parse_reservation_id(reservation_id)
        now = self._clock()
        c = self._get(ref.campaign_id, ref.channel, now)
        led = c.ledger
        if led is None or led.epoch != ref.epoch:
            return Release(ReleaseStatus.UNKNOWN_EPOCH, reservation_id, 0, 0)
        self._reclaim(c, now)
        a = c.allowance
        rid = ref.request_id
        r = led.records.get(rid)
        if r is None:
            return Release(ReleaseStatus.UNKNOWN, reservation_id, 0, self._remaining(a, led))
        if r.st == "L":
            return Release(ReleaseStatus.RELEASED, reservation_id, r.refunded, r.after, True)
        if r.st in ("S", "Z"):
            return Release(
                ReleaseStatus.ALREADY_SETTLED, reservation_id, 0, self._remaining(a, led), True
            )
        if r.st == "X":
            return Release(ReleaseStatus.EXPIRED, reservation_id, 0, self._remaining(a, led), True)
        led.outstanding -= r.amount
        c.timers.remove(keys.EXPIRY_MEMBER_PREFIX + rid)
        r.refunded = 0
        if r.gen == led.gen:
            led.consumed -= r.amount
            r.refunded = r.amount
        r.st = "L"
        r.after = self._remaining(a, led)
        return Release(ReleaseStatus.RELEASED, reservation_id, r.refunded, r.after, False)

    # ------------------------------------------------------------------ publish
    def publish_now(
        self,
        campaign_id: str,
        channel: ChannelType | str,
        allowance_micros: int,
        breaker_state: CircuitBreakerState | str,
        ttl_s: float,
        *,
        reservation_ttl_s: float = DEFAULT_RESERVATION_TTL_S,
        generation: int | None = None,
        reported_micros: int | None = None,
        limit_code: Code = Code.HOURLY_CAP,
        expected_epoch: str | None = None,
        quarantine_s: float = DEFAULT_QUARANTINE_S,
        retention_s: float = DEFAULT_RETENTION_S,
        ledger_ttl_s: float = DEFAULT_LEDGER_TTL_S,
        _test_expires_in_ms: int | None = None,
    ) -> PublishResult:
        p = check_publish_args(
            campaign_id,
            channel,
            allowance_micros,
            breaker_state,
            ttl_s,
            reservation_ttl_s=reservation_ttl_s,
            generation=generation,
            reported_micros=reported_micros,
            limit_code=limit_code,
            expected_epoch=expected_epoch,
            quarantine_s=quarantine_s,
            retention_s=retention_s,
            ledger_ttl_s=ledger_ttl_s,
            test_expires_in_ms=_test_expires_in_ms,
            prefix=keys.DEFAULT_PREFIX,
        )
        now = self._clock()
        c = self._get(p.campaign_id, p.channel, now)
        created = lost = False
        if c.ledger is None:
            c.ledger = _Ledger(new_epoch())
            created = True
            lost = p.expected_epoch is not None
        elif p.expected_epoch is not None and p.expected_epoch != c.ledger.epoch:
            lost = True
        led = c.ledger
        if lost:
            until = now + p.quarantine_ms
            if until > (led.q_until or 0):
                led.q_until = until
        self._reclaim(c, now)
        cur_gen = led.gen
        new_gen = cur_gen + 1
        if p.generation is not None:
            if p.generation <= cur_gen:
                return PublishResult(
                    False,
                    cur_gen,
                    0,
                    led.outstanding,
                    0,
                    cur_gen,
                    0,
                    led.settled,
                    led.excess,
                    led.epoch,
                    created,
                    lost,
                    False,
                    led.q_until or 0,
                    0,
                )
            new_gen = p.generation
        prev = c.allowance
        prev_gen = prev.gen if prev is not None else 0
        prev_remaining = self._remaining(prev, led)
        outstanding = max(0, led.outstanding)
        unreported = 0 if p.reported is None else max(0, led.settled - p.reported)
        net = max(0, p.gross - outstanding - unreported)
        limit = p.limit_code.value
        q_until = led.q_until or 0
        quarantined = q_until > now
        if quarantined:
            net = 0
            limit = Code.STATE_STALE.value
        exp = now + p.ttl_ms
        key_expires = now + max(0, p.ttl_ms) + KEY_GRACE_MS
        c.allowance = _Allowance(
            new_gen, net, exp, p.reservation_ttl_ms, p.retention_ms, limit, now, key_expires
        )
        c.breaker = _Breaker(p.state.value, exp, now, key_expires)
        led.gen = new_gen
        led.consumed = 0
        # Publish owns the TTLs (the timers key holds a sentinel so it always exists).
        keep = max(0, p.ttl_ms) + p.reservation_ttl_ms + p.retention_ms + KEY_GRACE_MS
        c.timers.expires_at = self._extend(c.timers.expires_at, now, keep)
        led.expires_at = self._extend(led.expires_at, now, max(keep, p.ledger_ttl_ms))
        return PublishResult(
            True,
            new_gen,
            net,
            outstanding,
            unreported,
            prev_gen,
            prev_remaining,
            led.settled,
            led.excess,
            led.epoch,
            created,
            lost,
            quarantined,
            q_until,
            exp,
        )

    def publish_breaker_now(
        self,
        campaign_id: str,
        channel: ChannelType | str,
        state: CircuitBreakerState | str,
        ttl_s: float,
    ) -> int:
        cid = keys.check_campaign_id(campaign_id)
        ch = keys.check_channel(channel)
        st = check_breaker_state(state)
        ttl_ms = seconds_to_ms(ttl_s, "ttl_s", minimum=0.001)
        now = self._clock()
        c = self._get(cid, ch, now)
        c.breaker = _Breaker(st.value, now + ttl_ms, now, now + ttl_ms + KEY_GRACE_MS)
        return now + ttl_ms

    def breaker_state_now(
        self, campaign_id: str, channel: ChannelType | str
    ) -> CircuitBreakerState | None:
        cid = keys.check_campaign_id(campaign_id)
        ch = keys.check_channel(channel)
        now = self._clock()
        b = self._get(cid, ch, now).breaker
        if b is None or b.exp <= now:
            self._on_fail_closed(Code.STATE_STALE)
            return None
        return CircuitBreakerState(b.state)

    def usage_now(self, campaign_id: str, channel: ChannelType | str) -> Usage:
        cid = keys.check_campaign_id(campaign_id)
        ch = keys.check_channel(channel)
        now = self._clock()
        c = self._get(cid, ch, now)
        a, led, b = c.allowance, c.ledger, c.breaker
        return Usage(
            epoch=led.epoch if led else "",
            generation=led.gen if led else 0,
            granted_micros=a.granted if a else 0,
            consumed_micros=led.consumed if led else 0,
            remaining_micros=self._remaining(a, led),
            outstanding_micros=led.outstanding if led else 0,
            settled_micros=led.settled if led else 0,
            excess_micros=led.excess if led else 0,
            expires_at_ms=a.exp if a else 0,
            quarantine_until_ms=(led.q_until or 0) if led else 0,
            breaker_state=CircuitBreakerState(b.state) if b else None,
            now_ms=now,
        )

    def drop_state(self, campaign_id: str, channel: ChannelType | str) -> None:
        """Forget everything about one campaign/channel (tests: 'Redis lost the data')."""
        self._channels.pop((keys.check_campaign_id(campaign_id), keys.check_channel(channel)), None)

    # ------------------------------------------------------------------ the port
    async def reserve(
        self, campaign_id: str, channel: ChannelType | str, amount_micros: int, request_id: str
    ) -> Reservation:
        return self.reserve_now(campaign_id, channel, amount_micros, request_id)

    async def settle(self, reservation_id: str, actual_micros: int) -> Settlement:
        return self.settle_now(reservation_id, actual_micros)

    async def release(self, reservation_id: str) -> Release:
        return self.release_now(reservation_id)

    async def publish(
        self,
        campaign_id: str,
        channel: ChannelType | str,
        allowance_micros: int,
        breaker_state: CircuitBreakerState | str,
        ttl_s: float,
        *,
        reservation_ttl_s: float = DEFAULT_RESERVATION_TTL_S,
        generation: int | None = None,
        reported_micros: int | None = None,
        limit_code: Code = Code.HOURLY_CAP,
        expected_epoch: str | None = None,
        quarantine_s: float = DEFAULT_QUARANTINE_S,
        retention_s: float = DEFAULT_RETENTION_S,
        ledger_ttl_s: float = DEFAULT_LEDGER_TTL_S,
        _test_expires_in_ms: int | None = None,
    ) -> PublishResult:
        return self.publish_now(
            campaign_id,
            channel,
            allowance_micros,
            breaker_state,
            ttl_s,
            reservation_ttl_s=reservation_ttl_s,
            generation=generation,
            reported_micros=reported_micros,
            limit_code=limit_code,
            expected_epoch=expected_epoch,
            quarantine_s=quarantine_s,
            retention_s=retention_s,
            ledger_ttl_s=ledger_ttl_s,
            _test_expires_in_ms=_test_expires_in_ms,
        )

    async def publish_breaker(
        self,
        campaign_id: str,
        channel: ChannelType | str,
        state: CircuitBreakerState | str,
        ttl_s: float,
    ) -> int:
        return self.publish_breaker_now(campaign_id, channel, state, ttl_s)

    async def breaker_state(
        self, campaign_id: str, channel: ChannelType | str
    ) -> CircuitBreakerState | None:
        return self.breaker_state_now(campaign_id, channel)

    async def usage(self, campaign_id: str, channel: ChannelType | str) -> Usage:
        return self.usage_now(campaign_id, channel)

    async def aclose(self) -> None:
        return None
