"""Fail closed: when Redis cannot answer, or answers with stale state, nobody may spend."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from pacer_stream.adapters import keys
from pacer_stream.adapters.redis_publisher import RedisPublisher
from pacer_stream.client import FastPathClient, StoreUnavailable
from pacer_stream.core.types import ChannelType, Code

CH = ChannelType.VIDEO


class Recorder:
    def __init__(self) -> None:
        self.calls: list[Code] = []

    def __call__(self, reason: Code) -> None:
        self.calls.append(reason)


@pytest.fixture
async def black_hole() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never answers (a hung Redis)."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield port
    for w in held:
        w.close()
    server.close()
    await server.wait_closed()


async def test_unreachable_redis_denies_and_counts(unique_id: str, unused_port: int) -> None:
    hook = Recorder()
    url = f"redis://127.0.0.1:{unused_port}/0"  # nothing listens there
    async with FastPathClient(url, timeout_s=0.2, on_fail_closed=hook) as fp:
        r = await fp.reserve(unique_id, CH, 1_000, "a")
        assert not r.allowed and r.code is Code.STORE_UNAVAILABLE and r.reservation_id is None
        assert await fp.breaker_state(unique_id, CH) is None
        rid = keys.reservation_id(unique_id, CH, "abc", "a")
        with pytest.raises(StoreUnavailable):
            await fp.settle(rid, 1)
        with pytest.raises(StoreUnavailable):
            await fp.release(rid)
    assert hook.calls == [Code.STORE_UNAVAILABLE, Code.STORE_UNAVAILABLE]


async def test_hung_redis_times_out_and_denies(black_hole: int, unique_id: str) -> None:
    hook = Recorder()
    url = f"redis://127.0.0.1:{black_hole}/0"
    async with FastPathClient(url, timeout_s=0.05, on_fail_closed=hook) as fp:
        started = time.perf_counter()
        r = await fp.reserve(unique_id, CH, 1_000, "a")
        elapsed = time.perf_counter() - started
    assert not r.allowed and r.code is Code.STORE_UNAVAILABLE
    assert elapsed < 2.0  # bounded by the timeout, not by the server
    assert hook.calls == [Code.STORE_UNAVAILABLE]


async def test_invalid_arguments_raise_before_touching_redis(
    unique_id: str, unused_port: int
) -> None:
    url = f"redis://127.0.0.1:{unused_port}/0"
    async with FastPathClient(url, timeout_s=0.2) as fp:
        from pacer_stream.errors import InvalidAmount, InvalidArgument, WrongType

        with pytest.raises(InvalidAmount):
            await fp.reserve(unique_id, CH, -1, "a")
        with pytest.raises(WrongType):
            await fp.reserve(unique_id, CH, 1.5, "a")  # type: ignore[arg-type]
        with pytest.raises(WrongType):
            await fp.reserve(unique_id, CH, True, "a")
        with pytest.raises(InvalidArgument):
            await fp.reserve(unique_id, CH, 1, "")
        with pytest.raises(InvalidArgument):
            await fp.settle("", 1)


@pytest.mark.redis
async def test_redis_killed_mid_run_denies_then_no_overspend_after_restart(
    redis_server_factory: Callable[..., Any], unique_id: str
) -> None:
    server = redis_server_factory()
    allowance, amount, n_clients = 1_000_000, 1_000, 16
    hook = Recorder()
    pub = RedisPublisher(server.url, timeout_s=1.0, quarantine_s=120)
    clients = [
        FastPathClient(server.url, timeout_s=0.2, pool_size=2, on_fail_closed=hook)
        for _ in range(n_clients)
    ]
    allowed_total = 0
    phase = "up"  # up -> down -> restarted
    seen: dict[str, list[Code]] = {"up": [], "down": [], "restarted": []}
    stop = asyncio.Event()

    async def bidder(i: int) -> None:
        nonlocal allowed_total
        j = 0
        while not stop.is_set():
            my_phase = phase
            r = await clients[i].reserve(unique_id, CH, amount, f"{i}-{j}")
            j += 1
            if r.allowed:
                allowed_total += amount
                # Replies to requests sent before the kill may still arrive; a request
                # sent after it must never be granted.
                assert my_phase == "up", f"granted a request sent while Redis was {my_phase}"
            if phase == my_phase:
                seen[my_phase].append(r.code)
            await asyncio.sleep(0.0005)

    async def wait_for(predicate: Callable[[], bool], what: str) -> None:
        for _ in range(4_000):
            if predicate():
                return
            await asyncio.sleep(0.0025)
        raise AssertionError(f"timed out waiting for {what}")

    try:
        p1 = await pub.publish(unique_id, CH, allowance, "closed", 60)
        tasks = [asyncio.create_task(bidder(i)) for i in range(n_clients)]
        await wait_for(lambda: allowed_total >= 200 * amount, "reservations before the kill")
        server.kill()
        phase = "down"
        await wait_for(
            lambda: seen["down"].count(Code.STORE_UNAVAILABLE) >= 3 * n_clients,
            "denials while down",
        )
        server.start()  # same port, empty: the allowance and ledger are gone
        p2 = await pub.publish(unique_id, CH, allowance, "closed", 60)
        phase = "restarted"
        await wait_for(lambda: len(seen["restarted"]) >= 3 * n_clients, "denials after restart")
        stop.set()
        await asyncio.gather(*tasks)
    finally:
        stop.set()
        await asyncio.gather(*(c.aclose() for c in clients))
        await pub.aclose()

    assert Code.OK in seen["up"]
    # Requests sent while down are denied; the few still in flight when the empty server
    # came back find no state there (stale), never an allowance.
    assert set(seen["down"]) <= {Code.STORE_UNAVAILABLE, Code.STATE_STALE}
    # The publisher noticed the lost ledger and quarantined the channel: clients
    # reconnected fine but get 'stale' until reservations from before can be reconciled.
    assert p2.lost and p2.quarantined and p2.net_micros == 0 and p2.epoch != p1.epoch
    assert set(seen["restarted"]) <= {Code.STATE_STALE, Code.STORE_UNAVAILABLE}
    assert Code.STATE_STALE in seen["restarted"]
    assert allowed_total <= allowance
    assert Code.STORE_UNAVAILABLE in hook.calls and Code.STATE_STALE in hook.calls
