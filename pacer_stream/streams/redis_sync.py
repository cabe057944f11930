"""Keeps the Redis fast path in step with the worker's state (``docs/redis.md``).

Why a background task with a dirty set instead of a publish inside each agent: a Redis
round trip per spend event would put Redis latency (and Redis outages) on the Kafka
processing path. Agents only *mark* campaign/channels whose allowance changed; this task
coalesces the marks and publishes ``engine.allowance`` (through the processor, which
ticks first so no breaker transition is swallowed) plus the breaker state, a bounded
number at a time. A failed publish is logged and counted and never stops processing:
the fast path then fails closed on its own (stale allowances are denied).

Contract with ``RedisPublisher`` followed here: the gross core allowance is passed (the
script subtracts outstanding fast-path reservations itself), ``reported_micros`` is the
fast-path spend of the ledger's epoch already seen by the core (kept in the table value,
see :mod:`.stored`), breaker changes are also pushed alone at once
(``publish_breaker``), every owned campaign/channel is re-published at least every
``allowance_slice_s`` by the maintenance timer, and only the active owner of a partition
publishes. ``generation`` is left to the script (no explicit fencing): a worker stops
publishing for a partition as soon as it no longer actively owns it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any, Final, Protocol

from prometheus_client import CollectorRegistry, Counter

from pacer_stream.core.types import ChannelType, CircuitBreakerState, Code
from pacer_stream.observability.health import WorkerStatus
from pacer_stream.observability.logging import get_logger
from pacer_stream.streams.processor import Allowance, Processor, Result
from pacer_stream.streams.stored import Stored

log = get_logger("pacer_stream.streams.redis")

#: Metrics of the stream layer not (yet) in ``observability.metrics``; the worker's
#: ``/metrics`` view exports this registry next to the main one.
REGISTRY: Final = CollectorRegistry(auto_describe=True)
REDIS_PUBLISHES: Final = Counter(
    "pacer_redis_publishes",
    "Allowance/breaker publishes to Redis by result (ok, error, rejected, quarantined).",
    ["result"],
    registry=REGISTRY,
)
for _r in ("ok", "error", "rejected", "quarantined"):
    REDIS_PUBLISHES.labels(result=_r)

Key = tuple[str, ChannelType]


class Publisher(Protocol):
    """The part of ``RedisPublisher`` the sync task uses."""

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
    ) -> Any: ...

    async def publish_breaker(
        self,
        campaign_id: str,
        channel: ChannelType | str,
        state: CircuitBreakerState | str,
        ttl_s: float | None = None,
    ) -> int: ...

    def known_epoch(self, campaign_id: str, channel: ChannelType | str) -> str | None: ...

    def retain(self, campaign_ids: Collection[str]) -> int: ...


class RedisSync:
    """Coalescing publisher of allowances and breaker states (see module docstring)."""

    def __init__(
        self,
        publisher: Publisher,
        processor: Processor,
        *,
        lookup: Callable[[str], Stored | None],
        owned: Callable[[int], bool],
        apply: Callable[[Result], None],
        slice_s: float,
        status: WorkerStatus | None = None,
        concurrency: int = 32,
        ping: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        self.publisher = publisher
        self.processor = processor
        self.lookup = lookup
        self.owned = owned
        self.apply = apply
        self.slice_s = slice_s
        self.status = status
        self.concurrency = concurrency
        self.ping = ping
        self._dirty: dict[Key, None] = {}
        self._breakers: dict[Key, CircuitBreakerState] = {}
        self._wake = asyncio.Event()

    def retain(self, campaign_ids: Collection[str]) -> None:
        """Keep per-campaign publishing state only for ``campaign_ids`` (what this
        worker owns now); the rest would only grow as partitions move."""
        self.publisher.retain(campaign_ids)
        for k in [k for k in self._dirty if k[0] not in campaign_ids]:
            del self._dirty[k]

    def mark(self, keys: Iterable[Key]) -> None:
        """Allowances of these campaign/channels changed: publish them soon."""
        for k in keys:
            self._dirty[k] = None
        if self._dirty:
            self._wake.set()

    def mark_breaker(
        self, campaign_id: str, channel: ChannelType, state: CircuitBreakerState
    ) -> None:
        """A breaker changed: push its state alone first (one small write)."""
        self._breakers[(campaign_id, channel)] = state
        self._dirty[(campaign_id, channel)] = None
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._dirty) + len(self._breakers)

    async def run(self) -> None:
        """Publish marked keys forever (cancel to stop). When idle for a slice, ping
        Redis so readiness reflects the connection even with nothing to publish."""
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.slice_s)
            except TimeoutError:
                await self.ping_once()
                continue
            self._wake.clear()
            await self.flush()

    async def ping_once(self) -> None:
        if self.ping is None:
            return
        try:
            await self.ping()
        except Exception as exc:
            REDIS_PUBLISHES.labels(result="error").inc()
            if self.status is not None:
                self.status.on_redis_error(f"{type(exc).__name__}: {exc}")
        else:
            self._ok()

    async def flush(self) -> int:
        """Publish everything marked so far; returns the number of publishes tried."""
        breakers, self._breakers = self._breakers, {}
        dirty, self._dirty = self._dirty, {}
        n = 0
        items = list(breakers.items())
        for i in range(0, len(items), self.concurrency):
            pairs = items[i : i + self.concurrency]
            await asyncio.gather(*(self._breaker(k, s) for k, s in pairs))
            n += len(pairs)
        keys = list(dirty)
        for i in range(0, len(keys), self.concurrency):
            chunk = keys[i : i + self.concurrency]
            jobs = [a for k in chunk for a in self._allowances(k)]
            await asyncio.gather(*(self._publish(a) for a in jobs))
            n += len(jobs)
        return n

    def _allowances(self, key: Key) -> list[Allowance]:
        cid, channel = key
        stored = self.lookup(cid)
        if stored is None or not self.owned(stored.partition):
            return []
        result, allowances = self.processor.allowances(stored, [channel], self.slice_s)
        if result.messages or result.store is not None:
            self.apply(result)
        return allowances

    async def _breaker(self, key: Key, state: CircuitBreakerState) -> None:
        stored = self.lookup(key[0])
        if stored is None or not self.owned(stored.partition):
            return
        try:
            await self.publisher.publish_breaker(key[0], key[1], state)
        except Exception as exc:  # never let Redis trouble reach the stream
            self._failed(exc, key)
        else:
            self._ok()

    async def _publish(self, a: Allowance) -> None:
        stored = self.lookup(a.campaign_id)
        epoch = self.publisher.known_epoch(a.campaign_id, a.channel)
        reported = stored.fastpath_reported(a.channel.value, epoch) if stored and epoch else 0
        try:
            res = await self.publisher.publish(
                a.campaign_id,
                a.channel,
                a.allowance_micros,
                a.breaker_state,
                reported_micros=reported,
                limit_code=a.limit_code,
            )
        except Exception as exc:
            self._failed(exc, (a.campaign_id, a.channel))
            return
        self._ok()
        if not getattr(res, "accepted", True):
            REDIS_PUBLISHES.labels(result="rejected").inc()
        elif getattr(res, "quarantined", False) or getattr(res, "lost", False):
            REDIS_PUBLISHES.labels(result="quarantined").inc()
            log.warning(
                "redis_ledger_lost",
                campaign_id=a.campaign_id,
                channel=a.channel.value,
                quarantined=getattr(res, "quarantined", None),
            )
        else:
            REDIS_PUBLISHES.labels(result="ok").inc()
        excess = getattr(res, "excess_micros", 0) or 0
        if excess:
            log.warning(
                "fastpath_excess_spend",
                campaign_id=a.campaign_id,
                channel=a.channel.value,
                excess_micros=excess,
            )

    def _ok(self) -> None:
        if self.status is not None:
            self.status.on_redis_ok(time.monotonic())

    def _failed(self, exc: BaseException, key: Key) -> None:
        REDIS_PUBLISHES.labels(result="error").inc()
        if self.status is not None:
            self.status.on_redis_error(f"{type(exc).__name__}: {exc}")
        log.warning(
            "redis_publish_failed",
            campaign_id=key[0],
            channel=key[1].value,
            error=f"{type(exc).__name__}: {exc}",
        )
