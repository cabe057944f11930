"""The local services started by ``scripts/services.sh`` answer like the real thing.

These talk to the running Kafka and Redis (``make test`` starts them first); addresses
come from the same settings the application uses, so ``PACER_KAFKA_BOOTSTRAP_SERVERS``
and ``PACER_REDIS_URL`` point the tests elsewhere too.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from pacer_stream.settings import Settings

pytestmark = pytest.mark.integration

SETTINGS = Settings()
BOOTSTRAP = SETTINGS.kafka_bootstrap_servers
# Bounds every wait so a broken broker fails the test instead of hanging it.
WAIT_S = 30.0


@pytest.fixture
async def admin() -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=10_000)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def test_kafka_metadata_single_loopback_broker(admin: AIOKafkaAdminClient) -> None:
    cluster = await admin.describe_cluster()
    brokers = cluster["brokers"]
    assert len(brokers) == 1
    # advertised.listeners must be loopback, or clients would be redirected elsewhere.
    assert (brokers[0]["host"], brokers[0]["port"]) == ("127.0.0.1", 9092)
    assert cluster["controller_id"] == brokers[0]["node_id"]


async def test_kafka_roundtrip_on_auto_created_topic(admin: AIOKafkaAdminClient) -> None:
    topic = f"test-services-{uuid.uuid4().hex}"
    payload = uuid.uuid4().bytes
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await producer.start()
    try:
        # The first send auto-creates the topic (auto.create.topics.enable) with the
        # broker's num.partitions, which the project sizes its workers for.
        async with asyncio.timeout(WAIT_S):
            meta = await producer.send_and_wait(topic, payload, key=b"k")
        assert await producer.partitions_for(topic) == set(range(SETTINGS.topic_partitions))
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, meta.partition)
        consumer.assign([tp])
        consumer.seek(tp, meta.offset)
        async with asyncio.timeout(WAIT_S):
            record = await consumer.getone()
        assert (record.key, record.value) == (b"k", payload)
    finally:
        await consumer.stop()
        await admin.delete_topics([topic])


async def test_redis_ping_and_ttl() -> None:
    client = aioredis.Redis.from_url(SETTINGS.redis_url, socket_timeout=5)
    key = f"test-services:{uuid.uuid4().hex}"
    try:
        assert await client.ping() is True
        # Allowance keys rely on expiry; a short TTL proves SET EX works end to end.
        assert await client.set(key, "1", ex=30) is True
        assert await client.get(key) == b"1"
        assert 0 < await client.ttl(key) <= 30
    finally:
        await client.delete(key)
        await client.aclose()
