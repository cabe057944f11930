"""Batched spend publishing: many events per campaign in one ``pacer.spend.v1`` record.

Why: the worker's cost is per *record* far more than per event (decode, table lookup,
changelog write, offset bookkeeping), so an ad platform that reports each event as its own
record caps the pacer at the stream framework's per-record rate. :class:`SpendPublisher`
packs the events of one campaign that arrive within ``linger_s`` (a few milliseconds)
into one batched record (the record key stays the campaign id, so the batch lands on the
partition of the worker that owns the campaign), bounded by the wire limits
(:data:`~pacer_stream.wire.records.MAX_BATCH_EVENTS` events and
:data:`~pacer_stream.wire.records.MAX_BATCH_BYTES` bytes).

Delivery is at least once: each :meth:`SpendPublisher.publish` returns a future that
completes when the broker acknowledged the record holding the event (or fails with the
send's error); re-publishing an event with the same ``event_id`` after a failure is safe
because the worker counts an ``event_id`` once per campaign.

The publisher owns no Kafka client: it is given ``send(topic, key, value)`` (for
example :meth:`PacerClient.send <pacer_stream.client.kafka.PacerClient.send>`), so
the batching rules are tested without a broker and used unchanged with one.

Usage::

    async with PacerClient("127.0.0.1:9092") as client:
        publisher = client.spend_publisher            # linger 5 ms by default
        done = [publisher.publish(event) for event in events]   # no waiting here
        await publisher.flush()                      # or: await asyncio.gather(*done)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pacer_stream.core.ids import check_id
from pacer_stream.core.types import SpendEvent
from pacer_stream.wire import records

__all__ = ["Send", "SpendPublisher"]

#: Produces one record and completes when the broker acknowledged it.
Send = Callable[[str, bytes, bytes], Awaitable[Any]]

#: Bytes one event adds to a batch beyond its own JSON object (a comma).
_SEPARATOR = 1
#: The batch's envelope (schema_version, campaign_id, source, brackets), bounded.
_ENVELOPE = 512


@dataclass(slots=True)
class _Pending:
    """Events of one campaign waiting for their batch to be sent."""

    #: Completes when the record holding these events is acknowledged.
    done: asyncio.Future[None]
    #: Each event as the batch will carry it (encoded and checked once, on publish).
    events: list[bytes] = field(default_factory=list)
    size: int = _ENVELOPE
    timer: asyncio.TimerHandle | None = None


class SpendPublisher:
    """Packs spend events per campaign into batched records (see the module docstring).

    ``linger_s`` is how long the first event of a campaign's batch waits for company;
    a batch also leaves as soon as it holds ``max_events`` events or its next event
    would take it past ``max_bytes``.
    """

    def __init__(
        self,
        send: Send,
        topic: str,
        *,
        linger_s: float = 0.005,
        max_events: int = records.MAX_BATCH_EVENTS,
        max_bytes: int = records.MAX_BATCH_BYTES,
        source: str | None = None,
    ) -> None:
        if linger_s < 0:
            raise ValueError("linger_s must be >= 0")
        if not 1 <= max_events <= records.MAX_BATCH_EVENTS:
            raise ValueError(f"max_events must be in 1..{records.MAX_BATCH_EVENTS}")
        if not _ENVELOPE * 2 <= max_bytes <= records.MAX_BATCH_BYTES:
            raise ValueError(f"max_bytes must be in {_ENVELOPE * 2}..{records.MAX_BATCH_BYTES}")
        if source is not None:
            check_id(source, "source")
        self._send = send
        self.topic = topic
        self.linger_s = linger_s
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.source = source
        self._pending: dict[str, _Pending] = {}
        self._inflight: set[asyncio.Task[None]] = set()
        self._failures: list[Exception] = []
        #: Records sent and events they carried (for logs and the benchmark).
        self.records_sent = 0
        self.events_sent = 0

    def publish(self, event: SpendEvent) -> asyncio.Future[None]:
        """Queue ``event`` in its campaign's batch; the returned future completes when
        the record holding it is acknowledged. Must be called from the event loop.
        Raises :class:`~pacer_stream.errors.InvalidRecord` (the worker's code) at once
        for an event the worker would refuse."""
        cid = event.campaign_id
        part = records.encode_batch_event(event, cid)
        size = len(part) + _SEPARATOR
        if size + _ENVELOPE > self.max_bytes:
            raise ValueError(f"a spend event of {size} bytes does not fit in a batch")
        pending = self._pending.get(cid)
        if pending is not None and (
            len(pending.events) >= self.max_events or pending.size + size > self.max_bytes
        ):
            self._dispatch(cid)
            pending = None
        if pending is None:
            loop = asyncio.get_running_loop()
            pending = self._pending[cid] = _Pending(done=loop.create_future())
            pending.timer = loop.call_later(self.linger_s, self._dispatch, cid)
        pending.events.append(part)
        pending.size += size
        done = pending.done
        if len(pending.events) >= self.max_events:
            self._dispatch(cid)
        return done

    async def flush(self) -> None:
        """Send every waiting batch now and wait until all sent records are
        acknowledged. Raises the first send error since the last flush (the events of
        a failed record also carry it on the futures :meth:`publish` returned): a
        caller that only flushes never loses a failure silently."""
        for cid in list(self._pending):
            self._dispatch(cid)
        while self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)
        if self._failures:
            first, self._failures = self._failures[0], []
            raise first

    async def close(self) -> None:
        """Flush; events published afterwards are still accepted (same as before)."""
        await self.flush()

    def _dispatch(self, campaign_id: str) -> None:
        pending = self._pending.pop(campaign_id, None)
        if pending is None or not pending.events:
            return
        if pending.timer is not None:
            pending.timer.cancel()
        task = asyncio.get_running_loop().create_task(self._deliver(campaign_id, pending))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _deliver(self, campaign_id: str, pending: _Pending) -> None:
        try:
            await self._send_events(campaign_id, pending.events)
        except Exception as exc:  # the caller sees it on the futures and from flush()
            self._failures.append(exc)
            if not pending.done.done():
                pending.done.set_exception(exc)
                # Retrieved here so an ignored future does not log a warning; flush()
                # still raises it.
                pending.done.exception()
            return
        if not pending.done.done():
            pending.done.set_result(None)

    async def _send_events(self, campaign_id: str, events: Sequence[bytes]) -> None:
        value = records.encode_batch(campaign_id, events, source=self.source)
        if len(value) > self.max_bytes and len(events) > 1:
            # The size estimate is per event; an encoder that writes a little more than
            # the sum (never expected) still never produces an oversized record.
            half = len(events) // 2
            await self._send_events(campaign_id, events[:half])
            await self._send_events(campaign_id, events[half:])
            return
        await self._send(self.topic, campaign_id.encode(), value)
        self.records_sent += 1
        self.events_sent += len(events)
