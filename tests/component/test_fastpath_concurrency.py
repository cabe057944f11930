"""Many bid engines, one allowance: the sum of what they get never exceeds it."""

from __future__ import annotations

import asyncio
import random

import pytest

from pacer_stream.adapters.redis_publisher import RedisPublisher
from pacer_stream.client import FastPathClient, Reservation
from pacer_stream.core.types import ChannelType, Code

pytestmark = pytest.mark.redis

CH = ChannelType.DISPLAY
CLIENTS = 64


async def reserve_retrying(
    client: FastPathClient, cid: str, amount: int, request_id: str
) -> Reservation:
    """A bid engine's retry loop: a store hiccup is retried with the SAME request id,
    which is safe because reserve is idempotent."""
    for _ in range(50):
        r = await client.reserve(cid, CH, amount, request_id)
        if r.code is not Code.STORE_UNAVAILABLE:
            return r
    raise AssertionError("store unavailable for too long")


async def test_64_clients_take_exactly_the_allowance_when_demand_exceeds_it(
    redis_url: str, unique_id: str
) -> None:
    allowance, amount, attempts = 1_000_000, 1_000, 100  # demand 6.4x the allowance
    async with RedisPublisher(redis_url, timeout_s=2.0) as pub:
        await pub.publish(unique_id, CH, allowance, "closed", 60)
        clients = [FastPathClient(redis_url, timeout_s=2.0, pool_size=2) for _ in range(CLIENTS)]

        async def bidder(i: int) -> int:
            got = 0
            for j in range(attempts):
                r = await reserve_retrying(clients[i], unique_id, amount, f"{i}-{j}")
                if r.allowed:
                    got += amount
                else:
                    assert r.code is Code.HOURLY_CAP and r.remaining_micros < amount
            return got

        try:
            granted = await asyncio.gather(*(bidder(i) for i in range(CLIENTS)))
        finally:
            await asyncio.gather(*(c.aclose() for c in clients))
        assert sum(granted) == allowance
        usage = await pub.usage(unique_id, CH)
        assert usage.consumed_micros == allowance and usage.remaining_micros == 0
        assert usage.outstanding_micros == allowance


async def test_64_clients_with_random_amounts_settles_and_releases_never_overspend(
    redis_url: str, unique_id: str
) -> None:
    allowance = 2_000_000
    async with RedisPublisher(redis_url, timeout_s=2.0) as pub:
        await pub.publish(unique_id, CH, allowance, "closed", 60)
        client = FastPathClient(redis_url, timeout_s=2.0, pool_size=CLIENTS)
        live: dict[str, int] = {}
        spent = 0

        async def bidder(i: int) -> None:
            nonlocal spent
            rng = random.Random(i)
            for j in range(60):
                amount = rng.randrange(1, 20_000)
                r = await reserve_retrying(client, unique_id, amount, f"{i}-{j}")
                if not r.allowed:
                    continue
                assert r.reservation_id is not None
                roll = rng.random()
                if roll < 0.4:
                    actual = rng.randrange(0, amount + 1)
                    await client.settle(r.reservation_id, actual)
                    spent += actual
                elif roll < 0.6:
                    await client.release(r.reservation_id)
                else:
                    live[r.reservation_id] = amount

        try:
            await asyncio.gather(*(bidder(i) for i in range(CLIENTS)))
        finally:
            await client.aclose()
        usage = await pub.usage(unique_id, CH)
        # Everything held or spent came out of the one allowance, exactly.
        assert usage.consumed_micros == spent + sum(live.values())
        assert spent + sum(live.values()) <= allowance
        assert usage.outstanding_micros == sum(live.values())
        assert usage.settled_micros == spent
        assert usage.remaining_micros == allowance - usage.consumed_micros


async def test_republishing_during_a_stampede_never_funds_a_reservation_twice(
    redis_url: str, unique_id: str
) -> None:
    """The worker publishes new generations (same gross) while 64 clients reserve. Each
    generation is published net of what is outstanding, so the total ever reserved can
    never exceed the gross, however the publishes interleave with the reserves."""
    gross, amount = 500_000, 1_000
    async with RedisPublisher(redis_url, timeout_s=2.0) as pub:
        await pub.publish(unique_id, CH, gross, "closed", 60)
        client = FastPathClient(redis_url, timeout_s=2.0, pool_size=CLIENTS)
        stop = asyncio.Event()
        granted = 0
        generations: set[int] = set()

        async def bidder(i: int) -> None:
            nonlocal granted
            j = 0
            while not stop.is_set():
                r = await reserve_retrying(client, unique_id, amount, f"{i}-{j}")
                j += 1
                if r.allowed:
                    granted += amount
                    assert r.generation is not None
                    generations.add(r.generation)
                await asyncio.sleep(0)

        async def publisher() -> None:
            for _ in range(40):
                p = await pub.publish(unique_id, CH, gross, "closed", 60)
                assert p.net_micros == max(0, gross - p.outstanding_micros)
                await asyncio.sleep(0.002)
            # Let the bidders drain the last generation before stopping them.
            for _ in range(5_000):
                if (await pub.usage(unique_id, CH)).outstanding_micros >= gross:
                    break
                await asyncio.sleep(0.001)
            stop.set()

        try:
            await asyncio.gather(publisher(), *(bidder(i) for i in range(CLIENTS)))
        finally:
            await client.aclose()
        assert len(generations) > 1  # reserves really spanned several generations
        assert granted == gross  # demand far exceeds it: all of it, never more
        assert (await pub.usage(unique_id, CH)).outstanding_micros == gross
