"""The worker's consumer hands input partitions to the agents in offset order: input
partitions faust resumes are held until faust resumes its flow, then start at the
position their seek found (the committed offset, or the earliest offset when the group
never committed one)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP

from pacer_stream.streams.consumer import Consumer, uncommitted

SPEND = TP("app-pacer.spend.v1", 0)
SPEND_NEW = TP("app-pacer.spend.v1", 1)
BUDGETS = TP("app-pacer.budgets.v1", 0)
CHANGELOG = TP("app-campaigns-changelog", 0)


class Client:
    """What faust's own consumer and the Kafka client were asked to do."""

    def __init__(self, committed: Mapping[TP, int | None], earliest: Mapping[TP, int]) -> None:
        self.committed = committed
        self.earliest = earliest
        self.resumed: list[set[TP]] = []
        self.paused: list[set[TP]] = []
        self.seeks: list[tuple[TP, int]] = []
        self.flowing = False

    def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Client:
    """faust's consumer methods this one builds on, recording instead of fetching."""
    fake = Client(
        committed={SPEND: 40, SPEND_NEW: None, BUDGETS: 0, CHANGELOG: None},
        earliest={SPEND_NEW: 3, BUDGETS: 0},
    )

    async def seek_to_committed(self: Any) -> Mapping[TP, int | None]:
        return fake.committed

    def resume_partitions(self: Any, tps: Iterable[TP]) -> None:
        fake.resumed.append(set(tps))

    def pause_partitions(self: Any, tps: Iterable[TP]) -> None:
        fake.paused.append(set(tps))

    def resume_flow(self: Any) -> None:
        fake.flowing = True

    def assignment(self: Any) -> set[TP]:
        return set(fake.committed)

    parent = aiokafka_driver.Consumer
    monkeypatch.setattr(parent, "seek_to_committed", seek_to_committed)
    monkeypatch.setattr(parent, "resume_partitions", resume_partitions)
    monkeypatch.setattr(parent, "pause_partitions", pause_partitions)
    monkeypatch.setattr(parent, "resume_flow", resume_flow)
    monkeypatch.setattr(parent, "assignment", assignment)
    return fake


def _consumer(client: Client, reset: str = "earliest") -> Any:
    consumer: Any = object.__new__(Consumer)  # no Kafka client behind it
    consumer.app = SimpleNamespace(
        conf=SimpleNamespace(consumer_auto_offset_reset=reset),
        tables=SimpleNamespace(changelog_topics={CHANGELOG.topic}),
    )
    consumer._held, consumer._start_at, consumer._read_offset = set(), {}, {}
    consumer._thread = client

    async def earliest_offsets(*tps: TP) -> Mapping[TP, int]:
        return {tp: client.earliest[tp] for tp in tps}

    consumer.earliest_offsets = earliest_offsets
    return consumer


def test_partitions_without_a_committed_offset() -> None:
    assert uncommitted({SPEND: 40, SPEND_NEW: None, BUDGETS: 0}) == [BUDGETS, SPEND_NEW]


async def test_inputs_resume_with_the_flow_at_their_committed_or_earliest_offset(
    client: Client,
) -> None:
    consumer = _consumer(client)
    # faust's order: resume the partitions, seek, clear the buffers, resume the flow
    consumer.resume_partitions({SPEND, SPEND_NEW, BUDGETS, CHANGELOG})
    assert client.resumed == [{CHANGELOG}]  # the inputs are held: nothing reaches an agent
    await consumer.seek_to_committed()
    assert client.resumed == [{CHANGELOG}] and client.seeks == []
    consumer.resume_flow()
    assert client.flowing
    assert sorted(client.seeks) == sorted([(SPEND, 40), (SPEND_NEW, 3), (BUDGETS, 0)])
    assert client.resumed[-1] == {SPEND, SPEND_NEW, BUDGETS}
    assert consumer._read_offset == {SPEND: 40, SPEND_NEW: 3, BUDGETS: None}


async def test_a_partition_paused_again_before_the_flow_resumes_stays_paused(
    client: Client,
) -> None:
    consumer = _consumer(client)
    consumer.resume_partitions({SPEND, SPEND_NEW})
    await consumer.seek_to_committed()
    consumer.pause_partitions({SPEND, SPEND_NEW})  # a new rebalance began
    consumer.resume_flow()
    assert client.resumed == [] and client.seeks == []


async def test_without_the_earliest_reset_policy_uncommitted_inputs_keep_their_position(
    client: Client,
) -> None:
    consumer = _consumer(client, reset="latest")
    consumer.resume_partitions({SPEND, SPEND_NEW})
    await consumer.seek_to_committed()
    consumer.resume_flow()
    assert client.seeks == [(SPEND, 40)]
    assert client.resumed == [{SPEND, SPEND_NEW}]


def test_the_flow_resuming_with_nothing_held_resumes_nothing(client: Client) -> None:
    consumer = _consumer(client)
    consumer.resume_flow()
    assert client.flowing and client.resumed == []


async def test_a_position_from_an_earlier_seek_is_not_used_again(client: Client) -> None:
    consumer = _consumer(client, reset="latest")
    await consumer.seek_to_committed()
    client.committed = {SPEND: None}  # e.g. the group's offsets expired meanwhile
    consumer.resume_partitions({SPEND})
    await consumer.seek_to_committed()
    consumer.resume_flow()
    assert client.seeks == [] and client.resumed == [{SPEND}]


def _paced_worker(tmp_path: Any, **settings: Any) -> Any:
    """A worker (no broker needed to build one) whose busy fetches ask for 600 bytes
    within 4 ms."""
    from pacer_stream.settings import Settings
    from pacer_stream.streams.app import Worker

    return Worker(
        Settings(
            table_store="memory",
            worker_data_dir=str(tmp_path),
            redis_publish_enabled=False,
            consumer_busy_fetch_min_bytes=600,
            consumer_busy_fetch_wait_ms=4,
            **settings,
        )
    )


async def test_the_kafka_client_holds_a_fetch_no_longer_than_the_settings_say(
    tmp_path: Any,
) -> None:
    """faust builds its Kafka client with a fixed 1,500 ms fetch wait; the worker's client
    thread gives the client the configured wait instead (the client keeps one fetch in
    flight per broker, so a fetch held for idle topics delays every other partition)."""
    from pacer_stream.fetch_pace import FetchPace
    from pacer_stream.settings import Settings
    from pacer_stream.streams.consumer import ConsumerThread

    built = _paced_worker(tmp_path, consumer_fetch_max_wait_ms=35)
    thread = built.app.consumer._thread
    assert isinstance(thread, ConsumerThread)
    client = thread._create_worker_consumer(built.app.transport)
    try:
        assert client._fetch_max_wait_ms == 35
        assert client._fetch_min_bytes == 1  # idle pace until records flow
    finally:
        await client.stop()
    assert Settings().consumer_fetch_max_wait_ms < 1_500
    assert Settings().consumer_busy_fetch_min_bytes > 1  # fuller fetches while records flow
    # the started client thread paces fetches with the settings (tests/unit/test_fetch_pace.py)
    assert built.app.fetch_pace == FetchPace(idle_wait_ms=35, busy_min_bytes=600, busy_wait_ms=4)


async def test_the_started_client_thread_paces_its_fetcher(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once faust's client thread has started its Kafka client, the worker's thread
    attaches the app's fetch pace to the client's fetcher: a fetch that brought records
    makes the next one fuller."""
    from .test_fetch_pace import FakeFetcher

    built = _paced_worker(tmp_path)
    fetcher = FakeFetcher([True])

    async def started(thread: Any) -> None:  # faust's start: build and start the client
        thread._consumer = SimpleNamespace(_fetcher=fetcher)

    monkeypatch.setattr(aiokafka_driver.AIOKafkaConsumerThread, "on_start", started)
    await built.app.consumer._thread.on_start()
    await fetcher._proc_fetch_request("assignment", 0, "request")
    assert (fetcher._fetch_min_bytes, fetcher._fetch_max_wait_ms) == (600, 4)
