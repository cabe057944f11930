"""Money safety through the topics on the local Kafka: a sender cannot aim replies at
the worker's own topics, a request id cannot be reused for another request, and the
campaign views need the bearer token. (The same rules through ``BudgetPacer`` are in
``tests/unit/test_money_safety.py``; through Redis in
``tests/component/test_fastpath_contract.py``.)"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from pacer_stream.client.kafka import PacerClient
from pacer_stream.streams import stored
from pacer_stream.wire import topics

from .conftest import BOOTSTRAP, Collector, StreamRun, WorkerProcess, poll

pytestmark = pytest.mark.asyncio

UNIT = 1_000_000


def _listen_addresses(port: int) -> set[str]:
    """IPv4 addresses listening on ``port`` (from /proc/net/tcp: state 0A = LISTEN)."""
    found: set[str] = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        addr, _, hex_port = local.partition(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(addr)[::-1]))
    return found


async def _changelog_values(run: StreamRun) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        f"{run.app_id}-campaigns-changelog",
        bootstrap_servers=BOOTSTRAP,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        out: list[bytes] = []
        while True:
            batches = await consumer.getmany(timeout_ms=1500)
            if not batches:
                return out
            for batch in batches.values():
                out.extend(m.value for m in batch if m.value is not None)
    finally:
        await consumer.stop()


async def test_reply_to_and_request_ids_cannot_be_abused(
    stream_run: StreamRun,
    workers: Callable[..., WorkerProcess],
    client: PacerClient,
    collect: Callable[[str], Awaitable[Collector]],
) -> None:
    run = stream_run
    run.web_token = "s3cret"
    worker = workers()
    worker.start()
    dlq = await collect(topics.DLQ)
    try:
        await worker.wait_ready()
        cid = f"c-{uuid.uuid4().hex[:8]}"
        await client.set_budget(cid, {"display": 50 * UNIT}, strategy="even_distribution")
        await poll(lambda: worker.status(cid), what="campaign configured")

        # 1. the views need the token
        assert worker.get(f"/campaigns/{cid}", token="")[0] == 401
        assert worker.get(f"/campaigns/{cid}", token="wrong")[0] == 401
        assert worker.get(f"/campaigns/{cid}")[0] == 200
        assert worker.get("/readyz", token="")[0] == 200  # probes stay open
        assert _listen_addresses(worker.port) == {"127.0.0.1"}  # not every interface

        # 2. reply_to naming the worker's changelog is dead-lettered, not written there
        victim = PacerClient(
            BOOTSTRAP,
            topic_prefix=run.prefix,
            reply_to=f"{run.app_id}-campaigns-changelog",
            clock=run.now,
        )
        await victim.start()
        try:
            with pytest.raises(TimeoutError):
                await victim.can_spend(cid, "display", UNIT // 10, timeout_s=2)
        finally:
            await victim.close()
        bad = await dlq.wait(
            lambda r: r.error_code == "reply_to_not_allowed", what="refused reply_to"
        )
        assert bad.source_topic == run.topic(topics.CAN_SPEND_REQUESTS)
        for value in await _changelog_values(run):
            assert stored.loads(value).campaign_id == cid  # every value still decodes

        # 3. a request id reused for another amount is a conflict, a settled one is spent
        first = await client.can_spend(cid, "display", UNIT, request_id="A", timeout_s=10)
        assert first.allowed
        other = await client.can_spend(cid, "display", 2 * UNIT, request_id="A", timeout_s=10)
        assert (other.allowed, other.code) == (False, "idempotency_conflict")
        await client.publish_spend(
            cid, "display", UNIT, event_id="e1", reservation_id=first.reservation_id
        )
        await poll(
            lambda: (worker.channel(cid, "display") or {}).get("spent_micros") == UNIT,
            what="settlement applied",
        )
        again = await client.can_spend(cid, "display", UNIT, request_id="A", timeout_s=10)
        assert (again.allowed, again.code) == (False, "reservation_settled")
        assert again.reservation_id == first.reservation_id

        # 4. totals that would overflow: dead-lettered, the worker keeps going
        half = (2**53 - 1) // 2
        for i in range(3):
            await client.publish_spend(cid, "search", half, event_id=f"big-{i}")
        await dlq.wait(lambda r: r.error_code == "total_overflow", what="overflow refused")
        await poll(
            lambda: (worker.channel(cid, "search") or {}).get("spent_micros") == 2 * half,
            what="two maximal events applied",
        )
        reply = await client.can_spend(cid, "display", UNIT // 100, timeout_s=10)
        assert reply.campaign_id == cid  # still answering
        assert worker.get("/readyz")[0] == 200
    finally:
        worker.stop()


async def test_a_producer_inventing_campaign_ids_cannot_grow_the_worker(
    stream_run: StreamRun,
    workers: Callable[..., WorkerProcess],
    client: PacerClient,
    collect: Callable[[str], Awaitable[Collector]],
) -> None:
    """Spend for 120 campaigns nobody budgeted, with a quota of 40: 40 are held, the
    rest are dead-lettered with their code, and the worker keeps answering."""
    stream_run.extra_env["PACER_MAX_UNBUDGETED_CAMPAIGNS"] = "40"
    worker = workers()
    worker.start()
    dlq = await collect(topics.DLQ)
    try:
        await worker.wait_ready()
        ghost = f"ghost-{uuid.uuid4().hex[:6]}"
        for i in range(120):
            await client.publish_spend(f"{ghost}-{i}", "display", 1_000, event_id=f"e{i}")

        def refused() -> int:
            return sum(1 for r in dlq.values() if r.error_code == "unbudgeted_campaign_limit")

        await poll(lambda: refused() == 80, what="80 refused campaigns")
        held = [i for i in range(120) if worker.status(f"{ghost}-{i}") is not None]
        assert len(held) == 40
        assert worker.get("/readyz")[0] == 200
    finally:
        worker.stop()
