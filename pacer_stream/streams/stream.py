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
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import faust
from faust.types import EventT
from mode.utils.times import Seconds, want_seconds


class PacerStream(faust.Stream):  # type: ignore[type-arg]
    """faust's stream with a take loop that waits for a batch's first record."""

    async def take_events(  # type: ignore[override]
        self, max_: int, within: Seconds
    ) -> AsyncIterator[Sequence[EventT[Any]]]:
        events: list[EventT[Any]] = []
        started = asyncio.Event()  # the batch has its first event
        full = asyncio.Event()  # the batch has max_ events
        taken = asyncio.Event()  # the batch was handed over and acknowledged
        taken.set()
        window = want_seconds(within) if within else None

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
                try:
                    yield batch
                finally:
                    events.clear()
                    started.clear()
                    full.clear()
                    for event in batch:
                        await self.ack(event)
                    taken.set()
        finally:
            self.enable_acks = acks_enabled
            self._processors.remove(add)
