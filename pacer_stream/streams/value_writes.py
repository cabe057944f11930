"""When the spend path writes a campaign's value: at most once per interval.

A campaign's changelog value is KiBs; a spend event changes a few counters in it. Writing
the value for every input batch that touches the campaign makes the changelog carry the
whole value per event when many campaigns share the traffic (a batch then holds one or two
events per campaign). So the spend agent writes a campaign's value at once only when it
was not written during the last ``interval_s``; otherwise the write waits until the
interval is over and covers every event applied meanwhile.

What keeps this exact across a kill -9 is the input offset: the records applied but not
yet written are held *unacknowledged* (their faust message's reference count is raised),
so the consumer does not commit past them until the value that covers them is delivered.
The consumer commits the first run of consecutive acknowledged offsets and does not
reliably stop at a hole before it (a partition never committed, or one unacknowledged
offset right at the committed position, is skipped), so :class:`AckOrder` acknowledges
each partition's records strictly in offset order: a record behind a held one waits too.
A crash replays them; the campaign's offset high-water mark in the recovered value makes
the replay apply exactly what the lost write held. Event-id records are written at once
(they are small) and the recovery drops those above the recovered high-water mark.

Outputs never wait here: a record whose handling produced an alert or a breaker state
writes its campaign at once (an output is published only after the state that produced
it is delivered). Other agents (budgets, commands, can-spend) always write at once, and
their write covers whatever the spend path was holding for that campaign.

Times are the worker clock's (injected), so tests drive the interval without sleeping.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any, Protocol


class Held(Protocol):
    """The part of a faust consumer message this module needs."""

    @property
    def tp(self) -> Any: ...

    def incref(self, n: int = 1) -> None: ...

    def ack(self, consumer: Any, n: int = 1) -> bool: ...


class AckOrder:
    """Acknowledges held records per partition in offset order.

    :meth:`hold` takes a reference on a record (the stream's own acknowledgement then
    leaves it uncommittable); :meth:`release` marks records done and acknowledges, per
    partition, every done record from the oldest held one on, stopping at the first
    that is not done. A record that is not held itself but comes after a held one of its
    partition must be held too (:meth:`behind`), so acknowledged offsets always form a
    prefix of what was consumed.
    """

    def __init__(self) -> None:
        #: partition -> [record, done] in the order they were held (offset order)
        self._queues: dict[Any, deque[list[Any]]] = {}
        self._entries: dict[int, list[Any]] = {}

    def behind(self, record: Held) -> bool:
        """Whether an earlier record of this record's partition is still held."""
        return bool(self._queues.get(record.tp))

    def holds(self, record: Held) -> bool:
        """Whether ``record`` is held and not released yet."""
        return id(record) in self._entries

    def hold(self, record: Held) -> None:
        if id(record) in self._entries:
            return
        record.incref()
        entry = [record, False]
        self._entries[id(record)] = entry
        self._queues.setdefault(record.tp, deque()).append(entry)

    def release(self, records: Iterable[Held], consumer: Any) -> int:
        """Mark ``records`` done; returns how many records were acknowledged."""
        partitions = set()
        for record in records:
            entry = self._entries.pop(id(record), None)
            if entry is not None:
                entry[1] = True
                partitions.add(record.tp)
        acked = 0
        for tp in partitions:
            queue = self._queues[tp]
            while queue and queue[0][1]:
                queue.popleft()[0].ack(consumer)
                acked += 1
            if not queue:
                del self._queues[tp]
        return acked

    def __len__(self) -> int:
        """Records held and not acknowledged yet (done ones waiting behind included)."""
        return sum(len(q) for q in self._queues.values())


class ValueWrites:
    """Per campaign: when its value was last written and the input records waiting for
    the next write. ``interval_s = 0`` writes every batch (no record is ever held)."""

    def __init__(self, interval_s: float) -> None:
        if interval_s < 0:
            raise ValueError("value write interval must be >= 0")
        self.interval_s = interval_s
        #: campaign -> worker time of its last value write (kept one interval)
        self._last: dict[str, float] = {}
        #: campaign -> input records applied since that write, held unacknowledged
        self._held: dict[str, list[Held]] = {}
        #: while faust waits for every record in hand to be acknowledged (rebalance,
        #: shutdown) nothing new is held: every batch writes its values
        self.suspended = False

    def defer(self, campaign_id: str, now: float, records: list[Held]) -> bool:
        """Keep ``records`` for the campaign's next write when its value was written
        less than an interval ago (or a write is already due); False: write now. The
        caller holds them (:class:`AckOrder`)."""
        if not self.enabled or self.suspended:
            return False
        held = self._held.get(campaign_id)
        if held is None:
            last = self._last.get(campaign_id)
            if last is None or now - last >= self.interval_s:
                return False
            held = self._held[campaign_id] = []
        held.extend(records)
        return True

    def written(self, campaign_id: str, now: float) -> list[Held]:
        """The campaign's value is being written now: returns the records it covers
        (to acknowledge once the write is delivered)."""
        if self.enabled:
            self._last[campaign_id] = now
        return self._held.pop(campaign_id, [])

    def drop(self, campaign_id: str) -> list[Held]:
        """The campaign left without a write (quarantined, removed): its held records,
        for the caller to park or acknowledge."""
        self._last.pop(campaign_id, None)
        return self._held.pop(campaign_id, [])

    @property
    def enabled(self) -> bool:
        """Whether values may be deferred at all (``interval_s > 0``)."""
        return self.interval_s > 0

    def due(self, now: float) -> list[str]:
        """Campaigns whose held records should be written now (their interval is over),
        oldest first; forgets write times older than an interval."""
        interval = self.interval_s
        last = self._last
        out = [c for c in self._held if now - last.get(c, -interval) >= interval]
        stale = [c for c, t in self._last.items() if now - t >= interval and c not in self._held]
        for c in stale:
            del self._last[c]
        return out

    def holding(self) -> Iterator[str]:
        """Every campaign with records held (to write them all: revocation, shutdown)."""
        return iter(list(self._held))

    def held(self, campaign_id: str) -> tuple[Held, ...]:
        """The campaign's records waiting for its next write (read-only view)."""
        return tuple(self._held.get(campaign_id, ()))

    def held_records(self) -> int:
        return sum(len(v) for v in self._held.values())

    def __contains__(self, campaign_id: object) -> bool:
        return campaign_id in self._held
