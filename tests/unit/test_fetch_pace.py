"""The worker's fetch pace: fuller fetches while records flow, answered at the first
record while idle; and the Kafka client still reads what the pace sets."""

from __future__ import annotations

import inspect
from typing import Any

from aiokafka.consumer.fetcher import Fetcher

from pacer_stream.fetch_pace import FetchPace

PACE = FetchPace(idle_wait_ms=20, busy_min_bytes=600, busy_wait_ms=3)


class FakeFetcher:
    """The three things of aiokafka's ``Fetcher`` the pace touches."""

    def __init__(self, results: list[bool]) -> None:
        self._fetch_min_bytes = 1
        self._fetch_max_wait_ms = 20
        self.results = results
        self.calls: list[tuple[Any, ...]] = []

    async def _proc_fetch_request(self, *args: Any) -> bool:
        self.calls.append(args)
        return self.results.pop(0)


async def test_a_fetch_that_brought_records_makes_the_next_one_fuller() -> None:
    fetcher = FakeFetcher([True])
    PACE.attach(fetcher)
    assert await fetcher._proc_fetch_request("assignment", 0, "request") is True
    assert fetcher.calls == [("assignment", 0, "request")]
    assert (fetcher._fetch_min_bytes, fetcher._fetch_max_wait_ms) == (600, 3)


async def test_the_first_empty_fetch_returns_to_the_idle_pace() -> None:
    fetcher = FakeFetcher([True, True, False, True])
    PACE.attach(fetcher)
    paces = []
    for _ in range(4):
        await fetcher._proc_fetch_request("a", 0, "r")
        paces.append((fetcher._fetch_min_bytes, fetcher._fetch_max_wait_ms))
    assert paces == [(600, 3), (600, 3), (1, 20), (600, 3)]


async def test_a_pace_without_a_busy_minimum_leaves_the_client_as_it_is() -> None:
    fetcher = FakeFetcher([True])
    original = fetcher._proc_fetch_request
    FetchPace(idle_wait_ms=20).attach(fetcher)
    assert fetcher._proc_fetch_request == original
    await fetcher._proc_fetch_request("a", 0, "r")
    assert (fetcher._fetch_min_bytes, fetcher._fetch_max_wait_ms) == (1, 20)


def test_the_kafka_client_reads_the_paced_values_for_every_fetch_it_builds() -> None:
    """The pace relies on three private parts of aiokafka's ``Fetcher``: each request
    is built from the instance's current minimum and wait, and each response is
    processed through the instance's ``_proc_fetch_request`` (looked up per fetch,
    so a replacement on the instance is used). A client upgrade that changes them
    fails here instead of silently dropping the pace."""
    builds = inspect.getsource(Fetcher._get_actions_per_node)
    assert "self._fetch_min_bytes" in builds and "self._fetch_max_wait_ms" in builds
    assert "self._proc_fetch_request(" in inspect.getsource(Fetcher._fetch_requests_routine)
    params = list(inspect.signature(Fetcher._proc_fetch_request).parameters)
    assert params == ["self", "assignment", "node_id", "request"]
