"""Bulk intake (:mod:`pacer_stream.streams.intake`): fetches queued by the consumer reach
the agent as batches, tracked when taken and acknowledged once the agent is done; records
faust's own streams would drop (flow suspended, older consumer generation) are dropped
unacknowledged; faust's flow control clears what is queued when it resumes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from faust.types.tuples import TP, ConsumerMessage
from mode.utils.queues import FlowControlEvent, ThrowableQueue

from pacer_stream.streams.intake import BulkTopic

TOPIC = "pacer.spend.v1"


class FakeConsumer:
    """Records what faust's consumer would be told (fakes only here, in unit tests)."""

    def __init__(self) -> None:
        self.tracked: list[int] = []
        self.acked: list[int] = []

    def track_message(self, message: Any) -> None:
        self.tracked.append(message.offset)

    def ack(self, message: Any) -> bool:
        self.acked.append(message.offset)
        return True


class FakeApp:
    def __init__(self) -> None:
        self.flow_control = FlowControlEvent(initially_suspended=False)
        self.consumer = FakeConsumer()
        self.consumer_generation_id = 1

    def FlowControlQueue(self, maxsize: int, *, clear_on_resume: bool) -> ThrowableQueue:
        return ThrowableQueue(
            maxsize=maxsize, flow_control=self.flow_control, clear_on_resume=clear_on_resume
        )


def _records(*offsets: int, generation: int = 1) -> list[ConsumerMessage]:
    out = []
    for offset in offsets:
        m = ConsumerMessage(TOPIC, 0, offset, 0.0, 0, None, b"k", b"v", None, tp=TP(TOPIC, 0))
        m.generation_id = generation
        out.append(m)
    return out


def _offsets(batch: list[Any]) -> list[int]:
    return [m.offset for m in batch]


async def test_queued_fetches_join_one_batch_up_to_max_and_the_rest_waits() -> None:
    app = FakeApp()
    topic = BulkTopic(app, TOPIC)  # type: ignore[arg-type]
    topic.put_nowait(_records(0, 1))
    topic.put_nowait(_records(2, 3))
    topic.put_nowait(_records(4, 5, 6))  # would pass max_=5: the next batch
    batches: AsyncIterator[list[Any]] = topic.batches(5, None)
    assert _offsets(await anext(batches)) == [0, 1, 2, 3]
    assert _offsets(await anext(batches)) == [4, 5, 6]


async def test_a_fetch_larger_than_max_is_one_batch() -> None:
    app = FakeApp()
    topic = BulkTopic(app, TOPIC)  # type: ignore[arg-type]
    topic.put_nowait(_records(*range(7)))
    assert _offsets(await anext(topic.batches(3, None))) == list(range(7))


async def test_records_are_tracked_when_taken_and_acked_after_the_batch() -> None:
    app = FakeApp()
    topic = BulkTopic(app, TOPIC)  # type: ignore[arg-type]
    topic.put_nowait(_records(0, 1))
    topic.put_nowait(_records(2))
    batches = topic.batches(2, None)
    first = await anext(batches)
    assert _offsets(first) == [0, 1]
    assert app.consumer.tracked == [0, 1] and app.consumer.acked == []
    second = await anext(batches)  # the caller is done with the first batch
    assert app.consumer.acked == [0, 1]
    assert _offsets(second) == [2]
    # a record someone else still references is acknowledged only when they release it
    second[0].incref()
    topic.put_nowait(_records(3))
    assert _offsets(await anext(batches)) == [3]
    assert app.consumer.acked == [0, 1]
    second[0].ack(app.consumer)  # type: ignore[arg-type]
    assert app.consumer.acked == [0, 1, 2]


async def test_a_batch_whose_caller_raised_is_never_acked() -> None:
    """The agent failed with the batch in hand (a send refused, a bug): acknowledging
    it would let the commit pass spend that was never applied."""
    app = FakeApp()
    topic = BulkTopic(app, TOPIC)  # type: ignore[arg-type]
    topic.put_nowait(_records(0, 1))
    batches = topic.batches(10, None)
    with pytest.raises(RuntimeError):
        async for batch in batches:
            assert _offsets(batch) == [0, 1]
            raise RuntimeError("the producer refused a write")
    await batches.aclose()  # what the event loop's finaliser does with the iterator
    assert app.consumer.tracked == [0, 1] and app.consumer.acked == []


async def test_records_faust_would_drop_are_dropped_unacked() -> None:
    app = FakeApp()
    topic = BulkTopic(app, TOPIC)  # type: ignore[arg-type]
    topic.put_nowait(_records(0, 1, generation=0))  # fetched before a rebalance
    topic.put_nowait(_records(2, generation=1))
    assert _offsets(await anext(topic.batches(10, None))) == [2]
    assert app.consumer.tracked == [2]

    app.flow_control.suspend()
    topic.put_nowait(_records(3))
    taking = asyncio.ensure_future(anext(topic.batches(10, None)))
    await asyncio.sleep(0)
    assert not taking.done()  # nothing was taken while the flow is suspended
    app.flow_control.resume()  # faust's resume clears the queue
    assert len(topic) == 0
    topic.put_nowait(_records(4))
    assert _offsets(await taking) == [4]
    assert 3 not in app.consumer.tracked and 3 not in app.consumer.acked


async def test_a_batch_waits_within_its_window_for_the_next_fetch() -> None:
    app = FakeApp()
    topic = BulkTopic(app, TOPIC)  # type: ignore[arg-type]
    topic.put_nowait(_records(0))
    taking = asyncio.ensure_future(anext(topic.batches(10, 3600.0)))
    await asyncio.sleep(0)
    assert not taking.done()  # waiting for more within the window
    topic.put_nowait(_records(1, 2))
    await asyncio.sleep(0)
    topic.put_nowait(_records(*range(3, 13)))  # would pass max_: ends the batch
    assert _offsets(await taking) == [0, 1, 2]
