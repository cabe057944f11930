"""Bulk intake: input topics whose records reach their agent a fetch at a time.

Why: faust hands every consumed record to its streams on its own. Per record the
consumer races the delivery against a flow-control event (two tasks and an
``asyncio.wait``), the conductor looks up the record's channels, decodes it into an
event and queues it, and the stream takes it from the queue, tracks it and runs its
processors -- about as much work again as applying a spend event, on the one thread
that also applies it. For the two hot input topics (spend events and can-spend
requests) the worker's consumer (:mod:`.consumer`) instead collects each fetch's records
of the topic into one list and queues that list here; the agent takes whole lists.

What stays faust's: the subscription and partition assignment (the agents still
iterate a stream of the topic, so the topic is subscribed and co-partitioned with the
table), offsets, commits and the acknowledgement of each record (a record is tracked
when the agent takes it and acknowledged through :meth:`faust.types.Message.ack` like
any stream's), and flow control: the queue is one of faust's flow-control queues,
cleared when faust resumes the flow after a rebalance or a table recovery, and
records of an older consumer generation or taken while the flow is suspended are
dropped unacknowledged, exactly as faust's own streams drop them (the consumer then
reads them again from the committed offset, see :mod:`.consumer`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from faust.types import AppT, Message

#: Lists (each one fetch's records of the topic) queued before the consumer waits.
DEFAULT_QUEUED_FETCHES = 8


class BulkTopic:
    """One input topic's records on their way from the consumer to its agent."""

    def __init__(self, app: AppT, topic: str, queued_fetches: int = DEFAULT_QUEUED_FETCHES):
        self.app = app
        self.topic = topic
        # faust clears this queue with its streams' buffers when it resumes the flow.
        self._queue: asyncio.Queue[list[Message]] = app.FlowControlQueue(
            maxsize=queued_fetches, clear_on_resume=True
        )

    # ------------------------------------------------------------ the consumer's side
    def full(self) -> bool:
        return self._queue.full()

    def put_nowait(self, records: list[Message]) -> None:
        self._queue.put_nowait(records)

    async def put(self, records: list[Message]) -> None:
        """Wait for room (the consumer races this against the flow being suspended)."""
        await self._queue.put(records)

    # ---------------------------------------------------------------- the agent's side
    async def batches(self, max_: int, within: float | None) -> AsyncIterator[list[Message]]:
        """Lists of at most ``max_`` records (a single fetch larger than that is one
        list), each handed over no later than ``within`` after its first record was
        taken; the records are acknowledged when the caller asks for the next list,
        never when it raised with a list in hand."""
        queue = self._queue
        consumer = self.app.consumer
        loop = asyncio.get_running_loop()
        carried: list[Message] = []  # a fetch that did not fit the last batch
        while True:
            batch = self._current(carried or await queue.get())
            carried = []
            if not batch:
                continue
            deadline = loop.time() + within if within else None
            while len(batch) < max_:
                if queue.empty():
                    if deadline is None or (left := deadline - loop.time()) <= 0:
                        break
                    try:
                        async with asyncio.timeout(left):
                            records = await queue.get()
                    except TimeoutError:
                        break
                else:
                    records = queue.get_nowait()
                if len(batch) + len(records) > max_:
                    carried = records
                    break
                batch.extend(self._current(records))
            self._track(batch)
            yield batch
            # Only once the caller asks for more: a batch whose caller raised stays
            # unacknowledged, so no commit passes it and the restart replays it.
            for message in batch:
                message.ack(consumer)

    def _current(self, records: Sequence[Message]) -> list[Message]:
        """The records faust's own stream would take: none while the flow is suspended,
        none of an older consumer generation."""
        app = self.app
        if not app.flow_control.is_active():
            return []
        generation = app.consumer_generation_id
        return [m for m in records if m.generation_id == generation]

    def _track(self, batch: list[Message]) -> None:
        consumer = self.app.consumer
        track = consumer.track_message
        for message in batch:
            message.incref()
            if not message.tracked:
                message.tracked = True
                track(message)

    def __len__(self) -> int:
        """Fetches waiting for the agent."""
        return self._queue.qsize()


def bulk_topics(app: Any) -> dict[str, BulkTopic]:
    """The app's bulk topics by name (none for an app that registered none)."""
    topics: dict[str, BulkTopic] = getattr(app, "bulk_topics", {})
    return topics
