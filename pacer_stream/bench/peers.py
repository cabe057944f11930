"""Peers of the stream benchmark, measured in the same run on the same backlog.

Each runs as its own process (``python -m pacer_stream.bench.peers KIND ...``), reads the
benchmark's spend topic from the beginning with its own consumer group, and prints one
JSON line when it has handled ``count`` records: ``{"events", "seconds",
"events_per_s"}``, timed from the first to the last record it handled (start-up and
group join are not counted, as for the worker).

* ``faust`` -- a faust agent that only decodes each record (``orjson.loads``) and adds
  its amount to a per campaign/channel dict: faust's own per-record cost, the ceiling
  of any faust worker on this machine.
* ``quix`` -- a quixstreams application doing the spend path's job in miniature:
  per-event dedupe by ``event_id`` in RocksDB state plus a per campaign/channel sum,
  changelog topics on (the ``bench`` extra pins its version).

And the floor of a can-spend round trip: servers that answer every request on their
requests topic at once with an ``ok`` reply (no state, no reservation, no grant record),
which the benchmark's client times exactly as it times the worker. They run until they
are stopped (``KIND bootstrap requests_topic replies_topic group``).

* ``faust-echo`` -- a faust agent that replies to each request as it comes, through
  faust's producer: the framework's own round trip on this machine.
* ``plain-echo`` -- a plain aiokafka loop (``getmany``, one send per reply): the Kafka
  clients' and the broker's round trip without faust.

Why peers: a throughput figure alone says little; beside a framework ceiling and a peer
library doing comparable work on the same broker in the same minute, it says where the
cost is.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson


@dataclass
class Progress:
    """Counts handled records and times the first and the last."""

    count: int
    seen: int = 0
    first: float = 0.0
    last: float = 0.0
    sums: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, campaign: str, channel: str, amount: int) -> bool:
        """Record one event; True once ``count`` events were handled."""
        now = time.perf_counter()
        if self.seen == 0:
            self.first = now
        self.seen += 1
        self.last = now
        key = (campaign, channel)
        self.sums[key] = self.sums.get(key, 0) + amount
        return self.seen >= self.count

    def report(self) -> dict[str, Any]:
        seconds = self.last - self.first
        rate = (self.seen - 1) / seconds if seconds > 0 else float("nan")
        return {"events": self.seen, "seconds": round(seconds, 3), "events_per_s": round(rate, 1)}


def _faust_app(bootstrap: str, group: str, **settings: Any) -> Any:
    """A bare faust app of a peer: memory store, no web server, nothing discovered,
    and stdout left as it is (a peer reports on it)."""
    import faust

    return faust.App(
        group,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        web_enabled=False,
        autodiscover=False,
        datadir=tempfile.mkdtemp(prefix="pacer-peer-"),
        worker_redirect_stdouts=False,
        **settings,
    )


def run_faust(bootstrap: str, topic: str, group: str, count: int) -> None:
    """The trivial faust agent (take_events batches, as the worker's spend agent)."""
    import faust

    progress = Progress(count)
    app = _faust_app(bootstrap, group, consumer_auto_offset_reset="earliest")
    source = app.topic(topic, key_type=bytes, value_type=bytes, value_serializer="raw")

    @app.agent(source)  # type: ignore[untyped-decorator]
    async def spend(stream: Any) -> None:
        async for events in stream.take_events(1000, 0.005):
            for event in events:
                v = orjson.loads(event.message.value)
                if progress.add(v["campaign_id"], v["channel"], v["amount_micros"]):
                    print(json.dumps(progress.report()), flush=True)

    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


def run_quix(bootstrap: str, topic: str, group: str, count: int) -> None:
    """The quixstreams peer: dedupe by event_id + per campaign/channel sum in state."""
    from quixstreams import Application

    progress = Progress(count)
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        state_dir=tempfile.mkdtemp(prefix="pacer-peer-quix-"),
        loglevel="WARNING",
        use_changelog_topics=True,
    )
    sdf = app.dataframe(app.topic(topic, value_deserializer="json"))

    def apply(value: dict[str, Any], state: Any) -> None:
        seen = f"e:{value['event_id']}"
        if state.get(seen) is not None:
            return
        state.set(seen, 1)
        total = f"s:{value['channel']}"
        state.set(total, (state.get(total) or 0) + value["amount_micros"])
        progress.add(value["campaign_id"], value["channel"], value["amount_micros"])

    sdf.update(apply, stateful=True)
    app.run(sdf, count=count, collect=False)
    print(json.dumps(progress.report()), flush=True)


def echo_reply(request: bytes) -> tuple[bytes, bytes]:
    """The key and value of an ``ok`` reply to a can-spend request: a valid reply the
    client accepts, built without deciding anything."""
    from pacer_stream.core.types import ChannelType, Code
    from pacer_stream.wire.records import CanSpendReply, encode

    asked = orjson.loads(request)
    reply = CanSpendReply(
        request_id=asked["request_id"],
        campaign_id=asked["campaign_id"],
        channel=ChannelType(asked["channel"]),
        allowed=True,
        code=Code.OK,
        reason="echo",
        remaining_micros=0,
        decided_at=datetime.now(UTC),
    )
    return asked["campaign_id"].encode(), encode(reply, validate=False)


def run_faust_echo(bootstrap: str, requests: str, replies: str, group: str) -> None:
    """The faust echo: one agent, each request answered as it comes."""
    import faust

    app = _faust_app(bootstrap, group, producer_linger_ms=0)  # as the worker's producer
    source = app.topic(requests, key_type=bytes, value_type=bytes, value_serializer="raw")

    @app.agent(source)  # type: ignore[untyped-decorator]
    async def echo(stream: Any) -> None:
        async for event in stream.events():
            key, value = echo_reply(event.message.value)
            await app.producer.send(replies, key, value, None, None, None)

    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


def run_plain_echo(bootstrap: str, requests: str, replies: str, group: str) -> None:
    """The plain aiokafka echo: fetch what has arrived, send a reply for each."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async def serve() -> None:
        consumer = AIOKafkaConsumer(
            requests, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest"
        )
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
        await consumer.start()
        await producer.start()
        while True:
            fetched = await consumer.getmany(timeout_ms=100)
            for messages in fetched.values():
                for message in messages:
                    key, value = echo_reply(message.value)
                    await producer.send(replies, value, key=key)

    asyncio.run(serve())


#: The answer-only servers, by kind (``KIND bootstrap requests replies group``).
ECHOES = {"faust-echo": run_faust_echo, "plain-echo": run_plain_echo}


def main(argv: list[str]) -> None:
    kind, *args = argv
    if kind in ECHOES:
        bootstrap, requests, replies, group = args
        ECHOES[kind](bootstrap, requests, replies, group)
        return
    bootstrap, topic, group, count = args
    runner = {"faust": run_faust, "quix": run_quix}[kind]
    runner(bootstrap, topic, group, int(count))


if __name__ == "__main__":  # pragma: no cover - started by the stream benchmark
    main(sys.argv[1:])
