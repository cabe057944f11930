"""The Redis fast path on a real local Redis Cluster (3 primaries, ``redis-cli --cluster
create``): a campaign's keys share one slot, scripts run on whichever node owns it, the
no-overspend guarantee holds under concurrency on every node, and a primary that goes
down fails closed and recovers when it comes back."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.crc import key_slot

from pacer_stream.adapters import keys
from pacer_stream.adapters.redis_publisher import RedisPublisher
from pacer_stream.client import FastPathClient
from pacer_stream.core.types import ChannelType, CircuitBreakerState, Code
from pacer_stream.settings import Settings

from .conftest import poll
from .redis_servers import LocalRedisCluster, PrivateRedis

pytestmark = pytest.mark.integration

CH = ChannelType.GOOGLE_ADS
FAIL_CLOSED = {Code.STORE_UNAVAILABLE, Code.STATE_STALE}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    c = LocalRedisCluster(Path(tmp_path_factory.mktemp("cluster")))
    try:
        c.start()
        yield c
    finally:
        c.stop()


def _slot(cid: str) -> int:
    return key_slot(keys.channel_keys(cid, CH).allowance.encode())


def campaigns_by_node(cluster: LocalRedisCluster, n: int = 60) -> dict[int, list[str]]:
    """Campaign ids grouped by the index of the node that owns their slot."""
    out: dict[int, list[str]] = {}
    for _ in range(n):
        cid = f"cl-{uuid.uuid4().hex[:10]}"
        node = cluster.node_of_slot(_slot(cid))
        out.setdefault(cluster.nodes.index(node), []).append(cid)
    return out


def _clients(cluster: LocalRedisCluster) -> tuple[RedisPublisher, FastPathClient]:
    s = Settings(redis_url=cluster.url, redis_cluster=True, redis_timeout_s=0.5)
    return RedisPublisher.from_settings(s), FastPathClient.from_settings(s)


def test_a_campaigns_keys_share_one_slot_and_campaigns_spread(cluster: LocalRedisCluster) -> None:
    by_node = campaigns_by_node(cluster)
    assert sorted(by_node) == [0, 1, 2]  # every primary owns some campaigns
    for cids in by_node.values():
        for cid in cids:
            for ch in ChannelType:
                k = keys.channel_keys(cid, ch)
                assert {key_slot(x.encode()) for x in k.all()} == {_slot(cid)}


async def test_scripts_work_on_every_node(cluster: LocalRedisCluster) -> None:
    by_node = campaigns_by_node(cluster)
    pub, fp = _clients(cluster)
    try:
        for node_index in (0, 1, 2):
            cid = by_node[node_index][0]
            published = await pub.publish(cid, CH, 50_000, "closed", 60)
            assert published.accepted
            r = await fp.reserve(cid, CH, 20_000, "a")
            assert r.allowed and r.remaining_micros == 30_000, (node_index, r)
            assert (await fp.reserve(cid, CH, 20_000, "a")).replayed  # idempotent
            assert r.reservation_id is not None
            s = await fp.settle(r.reservation_id, 15_000)
            assert s.refunded_micros == 5_000 and s.remaining_micros == 35_000
            r2 = await fp.reserve(cid, CH, 35_000, "b")
            assert r2.allowed and r2.reservation_id is not None
            denied = await fp.reserve(cid, CH, 1, "c")
            assert not denied.allowed and denied.code not in FAIL_CLOSED
            assert (await fp.release(r2.reservation_id)).refunded_micros == 35_000
            assert await fp.breaker_state(cid, CH) is CircuitBreakerState.CLOSED
            usage = await pub.usage(cid, CH)
            assert usage.settled_micros == 15_000 and usage.outstanding_micros == 0
    finally:
        await fp.aclose()
        await pub.aclose()


async def test_no_overspend_under_concurrency_on_every_node(cluster: LocalRedisCluster) -> None:
    by_node = campaigns_by_node(cluster)
    cids = [by_node[i][1] for i in (0, 1, 2)]
    allowance, amount, attempts = 100_000, 7_000, 40
    pub, _ = _clients(cluster)
    bidders = [_clients(cluster)[1] for _ in range(4)]
    try:
        for cid in cids:
            assert (await pub.publish(cid, CH, allowance, "closed", 60)).accepted
        for cid in cids:
            results = await asyncio.gather(
                *(bidders[i % 4].reserve(cid, CH, amount, f"r-{i}") for i in range(attempts))
            )
            granted = sum(1 for r in results if r.allowed)
            assert granted <= allowance // amount, cid  # never more than fits
            assert granted >= 1, [r.code for r in results]
            # what was granted is exactly what the ledger holds
            usage = await pub.usage(cid, CH)
            assert usage.outstanding_micros == granted * amount <= allowance
            # the denials are the allowance running out (or fail-closed), never a grant
            # beyond it: asking again for what is left is answered consistently
            left = allowance - granted * amount
            assert (await bidders[0].reserve(cid, CH, left + 1, "over")).allowed is False
    finally:
        for b in bidders:
            await b.aclose()
        await pub.aclose()


async def test_node_down_fails_closed_then_recovers(cluster: LocalRedisCluster) -> None:
    by_node = campaigns_by_node(cluster)
    victim_index = 1
    cid = by_node[victim_index][2]
    victim: PrivateRedis = cluster.nodes[victim_index]
    pub, fp = _clients(cluster)
    hook: list[Code] = []
    watcher = FastPathClient.from_settings(
        Settings(redis_url=cluster.nodes[0].url, redis_cluster=True, redis_timeout_s=0.5),
        on_fail_closed=hook.append,
    )
    try:
        assert (await pub.publish(cid, CH, 1_000_000, "closed", 120)).accepted
        assert (await fp.reserve(cid, CH, 1_000, "before")).allowed

        victim.kill()
        down = [await watcher.reserve(cid, CH, 1_000, f"down-{i}") for i in range(5)]
        assert all(not r.allowed and r.code in FAIL_CLOSED for r in down), down
        assert hook and set(hook) <= FAIL_CLOSED

        victim.start()  # same port, its AOF and nodes.conf: it takes its slots back
        cluster.wait_ok()

        async def granted() -> bool:
            r = await watcher.reserve(cid, CH, 1_000, f"after-{uuid.uuid4().hex[:6]}")
            return r.allowed

        await poll(granted, timeout=30, what="reservations after the node returned")
        usage = await pub.usage(cid, CH)
        assert usage.outstanding_micros >= 2_000  # the reservation from before survived
    finally:
        await watcher.aclose()
        await fp.aclose()
        await pub.aclose()
