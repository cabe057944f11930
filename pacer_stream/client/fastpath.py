"""Bid-engine client of the Redis fast path.

A bid engine asks "may I spend X?" at auction speed. ``FastPathClient.reserve`` answers
with one EVALSHA against the allowance the worker published (sub-millisecond on a local
network) and never says yes when it cannot be sure: Redis down, slow, or holding stale
state all produce a denial with a distinct code (fail closed)::

    async with FastPathClient("redis://127.0.0.1:6379/0") as fp:
        r = await fp.reserve("camp-42", "google_ads", 250_000, request_id=auction_id)
        if r.allowed:
            price = await run_auction(...)
            await fp.settle(r.reservation_id, price)      # or fp.release(...) on loss
        else:
            skip(r.code, r.reason)

Every call is idempotent (``reserve`` by ``request_id``, ``settle``/``release`` by
reservation id), so the engine may retry after a timeout without double counting.
``settle``/``release`` raise ``StoreUnavailable`` when Redis cannot be reached: retry
them, or let the reservation expire (the spend event still reaches the worker).
"""

from __future__ import annotations

from typing import Any

from pacer_stream.adapters.redis_store import DEFAULT_POOL_SIZE, DEFAULT_TIMEOUT_S, RedisStore
from pacer_stream.adapters.store import (
    FailClosedHook,
    Release,
    Reservation,
    Settlement,
)
from pacer_stream.connection import redis_options
from pacer_stream.core.types import ChannelType, CircuitBreakerState


class FastPathClient:
    """Thin bid-engine facade over :class:`RedisStore` (pooling, timeouts, fail closed).

    ``on_fail_closed(code)`` is called for every denial caused by the store being
    unavailable (``Code.STORE_UNAVAILABLE``) or its state stale (``Code.STATE_STALE``);
    wire it to the ``pacer_fastpath_fail_closed_total{reason}`` counter.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        pool_size: int = DEFAULT_POOL_SIZE,
        username: str | None = None,
        password: str | None = None,
        ssl_ca_certs: str | None = None,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        on_fail_closed: FailClosedHook | None = None,
        **store_kwargs: Any,
    ) -> None:
        self.store = RedisStore(
            url,
            timeout_s=timeout_s,
            pool_size=pool_size,
            username=username,
            password=password,
            ssl_ca_certs=ssl_ca_certs,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            on_fail_closed=on_fail_closed,
            **store_kwargs,
        )

    @classmethod
    def from_settings(cls, settings: Any = None, **overrides: Any) -> FastPathClient:
        """Build from :class:`pacer_stream.settings.Settings` (``PACER_REDIS_*``)."""
        if settings is None:
            from pacer_stream.settings import get_settings

            settings = get_settings()
        kwargs = {**redis_options(settings), **overrides}
        return cls(settings.redis_url, **kwargs)

    async def reserve(
        self,
        campaign_id: str,
        channel: ChannelType | str,
        amount_micros: int,
        request_id: str,
    ) -> Reservation:
        """Hold ``amount_micros`` from the published allowance; never raises for store
        trouble (denies instead). Invalid arguments raise ``WrongType`` /
        ``InvalidAmount`` / ``InvalidArgument`` / ``UnknownChannel`` before any I/O."""
        return await self.store.reserve(campaign_id, channel, amount_micros, request_id)

    async def settle(self, reservation_id: str, actual_micros: int) -> Settlement:
        """Record the actual spend of a reservation (lower: the rest returns; higher: the
        extra is charged, and what does not fit is reported as ``excess_micros``)."""
        return await self.store.settle(reservation_id, actual_micros)

    async def release(self, reservation_id: str) -> Release:
        """Give an unused reservation back."""
        return await self.store.release(reservation_id)

    async def breaker_state(
        self, campaign_id: str, channel: ChannelType | str
    ) -> CircuitBreakerState | None:
        """Published breaker state; ``None`` (missing, stale, unreachable) means OPEN."""
        return await self.store.breaker_state(campaign_id, channel)

    async def aclose(self) -> None:
        await self.store.aclose()

    async def __aenter__(self) -> FastPathClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
