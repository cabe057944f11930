"""The fetch pace against the real broker and Kafka client: a consumer whose fetches
bring records asks the broker for fuller ones, and the first fetch that comes back
empty asks again at the idle pace (answered at the first record)."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from pacer_stream.client.kafka import PacerClient
from pacer_stream.fetch_pace import FetchPace
from pacer_stream.streams.names import TopicNames

from .conftest import StreamRun, poll

IDLE = (1, 100)  # (minimum bytes, wait ms)
BUSY = (4096, 5)


def recording(seen: list[tuple[bool, int, int]]) -> type[FetchPace]:
    """A pace that appends, per processed fetch, whether it brought records and the next
    fetch's minimum and wait to ``seen``."""

    class RecordingPace(FetchPace):
        def after(self, fetcher: Any, got_records: bool) -> None:
            super().after(fetcher, got_records)
            seen.append((got_records, fetcher._fetch_min_bytes, fetcher._fetch_max_wait_ms))

    return RecordingPace


async def test_fetches_follow_the_pace_while_records_flow_and_when_they_stop(
    stream_run: StreamRun,
) -> None:
    seen: list[tuple[bool, int, int]] = []
    pace = recording(seen)(idle_wait_ms=IDLE[1], busy_min_bytes=BUSY[0], busy_wait_ms=BUSY[1])
    topic = TopicNames(stream_run.prefix).spend
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=stream_run.bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=IDLE[1],
    )
    producer = AIOKafkaProducer(bootstrap_servers=stream_run.bootstrap)
    await consumer.start()
    await producer.start()
    try:
        pace.attach(consumer._fetcher)
        # Nothing to read: every fetch comes back empty and the pace stays idle.
        await poll(lambda: len(seen) >= 2 or None, timeout=10, what="two empty fetches")
        assert set(seen) == {(False, *IDLE)}

        for _ in range(20):
            await producer.send_and_wait(topic, b"x" * 100, key=b"k")
        got = 0
        while got < 20:
            batch = await consumer.getmany(timeout_ms=1_000)
            got += sum(len(records) for records in batch.values())

        # The records made the next fetch a fuller one; once they were read, the first
        # fetch that came back empty returned to the idle pace.
        assert (True, *BUSY) in seen
        first_busy = seen.index((True, *BUSY))
        await poll(
            lambda: (False, *IDLE) in seen[first_busy:] or None,
            timeout=10,
            what="an empty fetch after the records",
        )
        assert consumer._fetcher._fetch_min_bytes == IDLE[0]
    finally:
        await producer.stop()
        await consumer.stop()


async def test_the_clients_replies_consumer_is_paced(stream_run: StreamRun) -> None:
    """Replies reach a bid engine's client through its own consumer: while replies flow
    its fetches are fuller too."""
    seen: list[tuple[bool, int, int]] = []
    pace = recording(seen)(idle_wait_ms=IDLE[1], busy_min_bytes=BUSY[0], busy_wait_ms=BUSY[1])
    client = PacerClient(
        stream_run.bootstrap, topic_prefix=stream_run.prefix, reply_fetch_pace=pace
    )
    producer = AIOKafkaProducer(bootstrap_servers=stream_run.bootstrap)
    await producer.start()
    try:
        await client.start()
        await client._ensure_replies()  # the consumer starts with the first request
        await producer.send_and_wait(client.replies_topic, b"{}", key=b"k")
        await poll(lambda: (True, *BUSY) in seen or None, timeout=10, what="a paced fetch")
    finally:
        await producer.stop()
        await client.close()
