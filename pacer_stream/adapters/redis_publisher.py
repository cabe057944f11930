"""Worker side of the fast path: publish allowances and breaker states to Redis.

THE CONTRACT (the worker must follow it; the fast path's no-overspend guarantee rests
on it -- see ``docs/redis.md`` "Generations and the allowance contract"):

1. **The allowance for a slice must never exceed what the core would allow for the same
   slice.** Pass ``allowance_micros = engine.allowance(state, channel, now, slice_s)``
   (daily cap, hourly cap, velocity, 0 unless the breaker is CLOSED), computed from the
   core's spend and *its own* reservations.
2. **Do not subtract fast-path reservations yourself.** Each publish starts a new
   generation, and the publish script subtracts, atomically and in Redis time, every
   fast-path reservation still outstanding (of any generation). An outstanding
   reservation is therefore funded exactly once: by the generation that issued it.
   Nothing left over from the previous generation carries into the new one.
3. **Report what the core has already seen of fast-path spend**, so spend that bid
   engines settled in Redis but whose spend event has not reached the core yet is not
   granted a second time: ``reported_micros`` = the sum of ``amount_micros`` of spend
   events whose ``reservation_id`` is a fast-path id (``keys.is_fastpath_reservation_id``)
   of the current ledger epoch (``keys.parse_reservation_id(rid).epoch ==
   result.epoch``). The script subtracts ``max(0, settled - reported_micros)``. If the
   worker passes ``None`` this term is skipped and the fast path can overspend by up to
   the fast-path spend of one reporting lag; pass it.
4. Publish on every change that lowers the allowance or changes the breaker (spend
   event, breaker transition, budget change, emergency stop) and on a timer well inside
   ``ttl_s`` (e.g. every ``allowance_slice_s``); an allowance or breaker older than its
   ``ttl_s`` is denied as stale (``Code.STATE_STALE``) -- fail closed, never open.
5. Publish ``breaker_state`` with the allowance; when a breaker opens, call
   ``publish_breaker`` immediately (one small write, effective at once).

Loss of Redis state is detected, not assumed away: the publisher remembers the ledger
epoch it last saw per campaign/channel; if Redis comes back without that ledger, the
script quarantines the campaign/channel (allowance 0, denials coded ``state_stale``) for
``quarantine_s`` so reservations issued from the lost ledger can expire and be reported
before new money is handed out.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from pacer_stream.adapters.redis_store import RedisStore
from pacer_stream.adapters.store import (
    DEFAULT_LEDGER_TTL_S,
    DEFAULT_QUARANTINE_S,
    DEFAULT_RESERVATION_TTL_S,
    DEFAULT_RETENTION_S,
    PublishRequest,
    PublishResult,
    Usage,
)
from pacer_stream.core.types import ChannelType, CircuitBreakerState, Code

_Key = tuple[str, str]


class RedisPublisher:
    """Publishes allowance generations and breaker states (worker ACL user).

    ``ttl_s`` (default ``settings.allowance_ttl_s``) is how long a publish stays valid;
    ``reservation_ttl_s`` (default ``Thresholds.reservation_ttl_s``) is the life of each
    fast-path reservation.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        ttl_s: float = 30.0,
        reservation_ttl_s: float = DEFAULT_RESERVATION_TTL_S,
        retention_s: float = DEFAULT_RETENTION_S,
        quarantine_s: float = DEFAULT_QUARANTINE_S,
        ledger_ttl_s: float = DEFAULT_LEDGER_TTL_S,
        store: RedisStore | None = None,
        **store_kwargs: Any,
    ) -> None:
        self.store = store if store is not None else RedisStore(url, **store_kwargs)
        self.ttl_s = ttl_s
        self.reservation_ttl_s = reservation_ttl_s
        self.retention_s = retention_s
        self.quarantine_s = quarantine_s
        self.ledger_ttl_s = ledger_ttl_s
        self._epochs: dict[_Key, str] = {}
        self._scripts_loaded = False

    @classmethod
    def from_settings(cls, settings: Any = None, **overrides: Any) -> RedisPublisher:
        if settings is None:
            from pacer_stream.settings import get_settings

            settings = get_settings()
        store = RedisStore.from_settings(settings)
        kwargs: dict[str, Any] = {
            "ttl_s": float(settings.allowance_ttl_s),
            "quarantine_s": float(settings.redis_quarantine_s),
            "store": store,
        }
        kwargs.update(overrides)
        return cls(settings.redis_url, **kwargs)

    async def load_scripts(self) -> None:
        """Load every fast-path script, including the bid engines' (their ACL user may
        not load scripts). Called on first publish and whenever a ledger is new."""
        await self.store.load_scripts()
        self._scripts_loaded = True

    async def publish(
        self,
        campaign_id: str,
        channel: ChannelType | str,
        allowance_micros: int,
        breaker_state: CircuitBreakerState | str,
        ttl_s: float | None = None,
        *,
        reported_micros: int | None = None,
        limit_code: Code = Code.HOURLY_CAP,
        generation: int | None = None,
        reservation_ttl_s: float | None = None,
    ) -> PublishResult:
        """Publish a new generation: ``allowance_micros`` gross for the slice (contract
        in the module docstring), the breaker state, valid for ``ttl_s``.

        ``limit_code`` is the rule that bounds the allowance (``Code.DAILY_CAP``,
        ``Code.HOURLY_CAP`` or ``Code.VELOCITY``); denials for an exhausted allowance
        carry it. ``generation`` fences a stale publisher (a publish whose generation is
        not above the stored one is rejected: ``accepted`` is False, nothing written).
        """
        if not self._scripts_loaded:
            await self.load_scripts()
        key = (str(campaign_id), str(getattr(channel, "value", channel)))
        result = await self.store.publish(
            PublishRequest(
                campaign_id,
                channel,
                allowance_micros,
                breaker_state,
                self.ttl_s if ttl_s is None else ttl_s,
                reservation_ttl_s=(
                    self.reservation_ttl_s if reservation_ttl_s is None else reservation_ttl_s
                ),
                generation=generation,
                reported_micros=reported_micros,
                limit_code=limit_code,
                expected_epoch=self._epochs.get(key),
                quarantine_s=self.quarantine_s,
                retention_s=self.retention_s,
                ledger_ttl_s=self.ledger_ttl_s,
            )
        )
        self._epochs[key] = result.epoch
        if result.created:
            # A new ledger may mean a Redis that restarted empty: bid engines' scripts
            # are gone too, and they may not load them.
            await self.load_scripts()
        return result

    async def publish_breaker(
        self,
        campaign_id: str,
        channel: ChannelType | str,
        state: CircuitBreakerState | str,
        ttl_s: float | None = None,
    ) -> int:
        """Set the breaker alone (e.g. the moment it opens); returns its expiry stamp."""
        return await self.store.publish_breaker(
            campaign_id, channel, state, self.ttl_s if ttl_s is None else ttl_s
        )

    async def usage(self, campaign_id: str, channel: ChannelType | str) -> Usage:
        return await self.store.usage(campaign_id, channel)

    def retain(self, campaign_ids: Collection[str]) -> int:
        """Forget the epochs of every campaign not in ``campaign_ids`` (partitions that
        moved away, campaigns that expired), so the map stays as large as what this
        worker owns; returns how many entries were dropped."""
        doomed = [k for k in self._epochs if k[0] not in campaign_ids]
        for k in doomed:
            del self._epochs[k]
        return len(doomed)

    def known_epoch(self, campaign_id: str, channel: ChannelType | str) -> str | None:
        return self._epochs.get((str(campaign_id), str(getattr(channel, "value", channel))))

    async def aclose(self) -> None:
        await self.store.aclose()

    async def __aenter__(self) -> RedisPublisher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
