"""Redis paused, killed and restarted empty while bid engines reserve, with a real worker.

A private ``redis-server`` (AOF on, fsync always, so a kill -9 keeps its data) serves the
fast path; the worker publishes to it; four bid engines reserve, settle and report each
bought impression as a spend event (as an ad platform would). The faults, in order:

1. **paused** (SIGSTOP: connections accepted, nothing answered) then resumed;
2. **killed** (SIGKILL) and restarted from its AOF;
3. **killed and restarted empty** (the ledger is lost).

Every answer given during a fault is a denial with a fail-closed code
(``store_unavailable`` / ``state_stale``) and nothing requested while the server is down
or hung is ever granted (the clients' 0.2 s timeout ends every request sent to a paused
server); reservations resume after each
fault (after an empty restart only once the worker has republished and the lost ledger's
quarantine is over); and at the end the numbers reconcile to the micro: the worker's
spend equals every reported impression, and the current Redis ledger's settled total
equals the settles made against it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pacer_stream.adapters.redis_publisher import RedisPublisher
from pacer_stream.adapters.store import SettleStatus
from pacer_stream.client import FastPathClient, StoreUnavailable
from pacer_stream.client.kafka import PacerClient
from pacer_stream.core.types import Code

from .conftest import StreamRun, WorkerProcess, poll
from .redis_servers import PrivateRedis

pytestmark = pytest.mark.integration

UNIT = 1_000_000
CH = "search"
AMOUNT = 10_000
FAIL_CLOSED = {Code.STORE_UNAVAILABLE, Code.STATE_STALE}
QUARANTINE_S = 6.0
#: How long each fault lasts (fault shaping, not a timing assertion).
FAULT_S = 4.0


class Bidders:
    """Bid engines: reserve, settle in full, report the spend to Kafka."""

    def __init__(self, url: str, cid: str, client: PacerClient, n: int = 4) -> None:
        self.cid, self.client = cid, client
        self.fps = [FastPathClient(url, timeout_s=0.2, pool_size=2) for _ in range(n)]
        #: settles use their own connections, so a reserve never queues behind a settle
        #: retrying against a dead server (and then reaches the restarted one late)
        self.settlers = [FastPathClient(url, timeout_s=0.2, pool_size=2) for _ in range(n)]
        self.phase = "up"
        #: (phase when requested, code) of every reserve
        self.outcomes: list[tuple[str, Code]] = []
        #: (phase when the answer arrived, code): a decision is made when Redis answers
        self.answers: list[tuple[str, Code]] = []
        #: phase -> monotonic time of the first grant requested in it
        self.first_grant: dict[str, float] = {}
        self.reported = 0
        #: settled micros by the phase in which the settle was *sent*
        self.settled: dict[str, int] = {}
        self.lost_settles = 0
        self.reporting: list[asyncio.Task[None]] = []
        self.stop = asyncio.Event()

    def granted_in(self, phase: str) -> int:
        return sum(1 for p, c in self.outcomes if p == phase and c is Code.OK)

    def codes_in(self, phase: str) -> set[Code]:
        """Codes of the answers that arrived while ``phase`` lasted."""
        return {c for p, c in self.answers if p == phase}

    def late_grants(self, phase: str) -> int:
        """Requests sent during ``phase`` but granted (after the server came back)."""
        return sum(1 for p, c in self.outcomes if p == phase and c is Code.OK)

    async def _settle(self, fp: FastPathClient, rid: str) -> None:
        while True:  # retry until Redis takes it (settle is idempotent per reservation)
            phase = self.phase
            try:
                settlement = await fp.settle(rid, AMOUNT)
            except StoreUnavailable:
                await asyncio.sleep(0.1)
                continue
            if settlement.status is SettleStatus.UNKNOWN_EPOCH:
                # Its ledger was lost with the empty restart: nothing to record there;
                # the worker still counts the spend from the event.
                self.lost_settles += 1
            else:
                self.settled[phase] = self.settled.get(phase, 0) + AMOUNT
            return

    async def bid(self, i: int) -> None:
        fp, j = self.fps[i], 0
        while not self.stop.is_set():
            phase = self.phase
            r = await fp.reserve(self.cid, CH, AMOUNT, f"{i}-{j}")
            j += 1
            self.outcomes.append((phase, r.code))
            self.answers.append((self.phase, r.code))
            if r.allowed:
                assert r.reservation_id is not None
                self.first_grant.setdefault(phase, time.monotonic())
                # Settle and report in the background, as a bid engine does: a settle
                # waiting for Redis to come back must not stop the next auctions.
                buy = self._buy(self.settlers[i], r.reservation_id)
                self.reporting.append(asyncio.create_task(buy))
            await asyncio.sleep(0.02)

    async def _buy(self, fp: FastPathClient, rid: str) -> None:
        await self._settle(fp, rid)
        await self.client.publish_spend(self.cid, CH, AMOUNT, event_id=rid, reservation_id=rid)
        self.reported += AMOUNT

    async def drain(self) -> None:
        """Wait for every settle and spend report still in flight."""
        await asyncio.gather(*self.reporting)

    async def aclose(self) -> None:
        for fp in (*self.fps, *self.settlers):
            await fp.aclose()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A private redis-server (AOF on, fsync always), killed after the test whatever
    happened in it (it outlived the suite before)."""
    redis = PrivateRedis(tmp_path / "redis", ["--appendonly", "yes", "--appendfsync", "always"])
    redis.start()
    try:
        yield redis
    finally:
        redis.kill()


async def test_redis_paused_killed_and_restarted_empty(
    stream_run: StreamRun,
    workers: Callable[..., WorkerProcess],
    client: PacerClient,
    private_redis: PrivateRedis,
) -> None:
    redis = private_redis
    stream_run.redis = True
    stream_run.offset_s = 0.0  # Redis judges staleness in real time
    stream_run.extra_env.update(
        {
            "PACER_REDIS_URL": redis.url,
            "PACER_REDIS_TIMEOUT_S": "0.5",
            "PACER_REDIS_QUARANTINE_S": str(QUARANTINE_S),
        }
    )
    w = workers("w")
    w.start()
    await w.wait_ready()
    cid = f"rf-{uuid.uuid4().hex[:8]}"
    budget = 100_000 * UNIT
    await client.set_budget(cid, {CH: budget}, strategy="even_distribution")
    bidders = Bidders(redis.url, cid, client)
    tasks = [asyncio.create_task(bidders.bid(i)) for i in range(len(bidders.fps))]
    resume_s: dict[str, float] = {}
    try:
        await poll(lambda: bidders.granted_in("up") >= 20, what="fast path granting")

        async def fault(name: str, inject: Callable[[], None], heal: Callable[[], None]) -> None:
            inject()
            # Answers Redis wrote just before the fault may still sit in the clients'
            # sockets; the fault's own phase starts once they are read (fault shaping,
            # longer than the clients' 0.2 s timeout, not a timing assertion).
            bidders.phase = f"{name}-starting"
            await asyncio.sleep(0.5)
            bidders.phase = name
            await asyncio.sleep(FAULT_S)
            # Every request sent during the fault is answered (by the clients' 0.2 s
            # timeout at the latest) before the server comes back; heal() blocks until
            # the server answers PING, so a request still in flight then would reach it.
            bidders.phase = f"{name}-healing"
            await asyncio.sleep(0.5)
            heal()
            healed_at = time.monotonic()
            bidders.phase = f"after-{name}"
            await poll(
                lambda: bidders.granted_in(f"after-{name}") >= 5,
                timeout=60,
                what=f"reservations resumed after {name}",
            )
            resume_s[name] = bidders.first_grant[f"after-{name}"] - healed_at

        await fault("paused", redis.pause, redis.resume)
        await fault("killed", redis.kill, redis.start)

        def kill_and_wipe() -> None:
            redis.kill()
            redis.wipe()

        await fault("emptied", kill_and_wipe, redis.start)
        bidders.stop.set()
        await asyncio.gather(*tasks)
        await bidders.drain()
    finally:
        bidders.stop.set()
        await asyncio.gather(*tasks, *bidders.reporting, return_exceptions=True)
        await bidders.aclose()

    # Fail closed: no answer given during a fault was a grant, and each fault was felt.
    for name in ("paused", "killed", "emptied"):
        codes = bidders.codes_in(name)
        assert codes and codes <= FAIL_CLOSED, (name, codes)
    # Nothing answers late: whatever was requested while the server was hung or down is
    # denied by the client's timeout, never granted once the server is back.
    for name in ("paused", "killed", "emptied"):
        assert bidders.late_grants(name) == 0, name
    assert Code.STORE_UNAVAILABLE in bidders.codes_in("paused")
    assert Code.STORE_UNAVAILABLE in bidders.codes_in("killed")
    # The lost ledger was noticed: quarantine (state_stale) before grants resumed.
    after_empty = [c for p, c in bidders.outcomes if p == "after-emptied"]
    first_ok = after_empty.index(Code.OK)
    assert first_ok > 0 and set(after_empty[:first_ok]) <= FAIL_CLOSED
    assert Code.STATE_STALE in after_empty[:first_ok]

    # Reconcile: the worker's spend is every reported impression, to the micro...
    await poll(
        lambda: (w.channel(cid, CH) or {}).get("spent_micros") == bidders.reported,
        what="worker spend == reported spend",
    )
    assert bidders.reported <= budget
    # ...and the ledger Redis holds now (created after the empty restart) settled exactly
    # the settles sent to it, granted nothing above its allowances, and knows the same
    # fast-path spend as the worker for its epoch.
    async with RedisPublisher(redis.url, timeout_s=2) as pub:
        usage = await pub.usage(cid, CH)
    assert usage.settled_micros == bidders.settled.get("after-emptied", 0)
    assert usage.excess_micros == 0
    assert 0 <= usage.outstanding_micros <= usage.granted_micros
    print(
        "fast path resumed after Redis returned: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in resume_s.items())
        + f" (quarantine {QUARANTINE_S:.0f} s after the empty restart);"
        + f" {len(bidders.outcomes)} reserves, {bidders.reported // AMOUNT} impressions"
    )
