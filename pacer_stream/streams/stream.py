"""The worker's faust stream: batches that start with their first record.

faust's ``Stream.take_events(max_, within)`` wakes every ``within`` seconds whether or
not a record arrived: each wake-up is a round of faust's service waits (futures, tasks,
``asyncio.wait``). With the can-spend agent's 1 ms window that is a thousand wake-ups a
second per agent, most of an idle worker's CPU and a share of a busy one's.

:class:`PacerStream` keeps faust's contract -- at most ``max_`` events per batch, a batch
handed over no later than ``within`` after it started, events acknowledged after the
batch was handled -- but sleeps until the *first* record of a batch arrives and only then
waits up to ``within`` for more. A lone request is therefore answered ``within`` after it
arrived at the latest (faust's tick could cut a batch anywhere in that window, so the
worst case is the same), and an idle agent costs nothing.

:meth:`PacerStream.take_records` is what the worker's agents iterate: lists of the
records themselves. For a bulk topic (:mod:`.intake`) they come a fetch at a time from
the consumer, past faust's per-record delivery; for any other channel (and for an
agent's test context) they are the records of :meth:`take_events`' batches.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import faust
from faust.types import EventT, Message
from mode.utils.times import Seconds, want_seconds

from pacer_stream.streams.intake import bulk_topics


class PacerStream(faust.Stream):  # type: ignore[type-arg]
    """faust's stream with a take loop that waits for a batch's first record."""

    async def take_records(self, max_: int, within: Seconds) -> AsyncIterator[list[Message]]:
        """Batches of at most ``max_`` records, each handed over ``within`` after its
        first record at the latest (0: with whatever has arrived by then, no wait) and
        acknowledged once the caller is done with it."""
        name = _topic_name(self.channel)
        bulk = bulk_topics(self.app).get(name) if name is not None else None
        if bulk is not None:
            async for records in bulk.batches(max_, want_seconds(within) if within else None):
                yield records
            return
        async for events in self.take_events(max_, within):
            yield [event.message for event in events]

    async def take_events(  # type: ignore[override]
        self, max_: int, within: Seconds
    ) -> AsyncIterator[Sequence[EventT[Any]]]:
        events: list[EventT[Any]] = []
        started = asyncio.Event()  # the batch has its first event
        full = asyncio.Event()  # the batch has max_ events
        taken = asyncio.Event()  # the batch was handed over and acknowledged
        taken.set()
        window = want_seconds(within)  # 0: hand over what has arrived, no wait

        async def add(value: Any) -> Any:
            # A stream processor: faust calls it for every event, in order. While a
            # full batch is being handled the stream waits here (never more than max_).
            if not taken.is_set():
                await taken.wait()
            event = self.current_event
            if event is None:  # pragma: no cover - faust always sets it
                raise RuntimeError("take_events: no current event")
            events.append(event)
            started.set()
            if len(events) >= max_:
                full.set()
                taken.clear()
            return value

        acks_enabled = self.enable_acks
        self.enable_acks = False  # events are acknowledged here, after their batch
        self.add_processor(add)
        self._enable_passive(self.channel)  # type: ignore[arg-type]
        try:
            while not self.should_stop:
                if not started.is_set():
                    await self.wait_for_stopped(started)  # type: ignore[arg-type]
                if not events:
                    continue
                if not full.is_set():
                    await self.wait_for_stopped(full, timeout=window)  # type: ignore[arg-type]
                batch = list(events)
                taken.clear()  # nothing joins this batch while it is handled
                handled = False
                try:
                    yield batch
                    handled = True  # the caller asked for the next batch
                finally:
                    events.clear()
                    started.clear()
                    full.clear()
                    if handled:  # a batch whose handler raised is never acknowledged
                        for event in batch:
                            await self.ack(event)
                    taken.set()
        finally:
            self.enable_acks = acks_enabled
            self._processors.remove(add)


def _topic_name(channel: Any) -> str | None:
    """The topic a stream reads (None for an in-memory channel)."""
    try:
        name: str = channel.get_topic_name()
    except (NotImplementedError, AttributeError, TypeError, ValueError):
        return None
    return name
