"""Each event id as its own changelog record, so a campaign's table value stays the same
size however many events the campaign had today.

Why: the engine remembers event ids for 25 h to count producer retries once
(:class:`~pacer_stream.core.windows.DedupeWindow`). Saved inside the campaign's value,
the window made every changelog write carry all of the day's ids (29 bytes each: a
campaign with 10,000 events a day wrote ~300 KB per applied batch, and one with about
150,000 outgrew the record size limit). Here each id added is one small record and each
id leaving the window one tombstone: changelog bytes proportional to the change.

Layout: the id records share the ``campaigns`` table's changelog topic and partition with
their campaign, under keys that sort after every campaign key (so listing campaigns stops
at the first id key, and one campaign's ids are one prefix range)::

    ID_PREFIX + campaign_id + "\\x1f" + id  ->  [input offset, expires at(, topic)]

``topic`` (the logical input topic whose offset it is) is written only when it is not
the spend topic (commands record their ids too). Offset -1 marks an id whose record is
already covered by the campaign's saved state (carried over from an older value format).

Crash safety: a batch's id records are produced before its campaign value, on the same
topic-partition, and the Kafka client keeps one partition's records in the order sent;
so when a campaign's value is in the changelog, the id records it relies on are too.
The reverse can happen (ids delivered, the value lost to a crash): an id whose offset is
above the campaign's recovered high-water mark for its topic belongs to a record that
will be replayed, so rebuilding the window skips it and writes its tombstone (the replay
writes it again if the event still applies).

At run time a campaign's window lives in memory (:class:`EventIdIndex`, ~120 bytes per
id held) and is handed to the engine inside the campaign state; records are read back
only to rebuild a window: records met during a table recovery (both stores) and, with
the RocksDB store, the ids already on disk (one prefix scan the first time a campaign
is used after a start).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final, Protocol

import orjson

from pacer_stream.core.state import CampaignState
from pacer_stream.core.windows import DedupeWindow
from pacer_stream.observability.logging import get_logger
from pacer_stream.streams.processor import Message
from pacer_stream.streams.stored import Stored
from pacer_stream.wire import topics

log = get_logger("pacer_stream.event_ids")

#: Sorts after the first character of every valid campaign id (ids are printable text,
#: and no printable character is above U+E01EF), and is never part of one.
ID_PREFIX: Final = "\U0010ffff"
ID_PREFIX_BYTES: Final = ID_PREFIX.encode()
#: Between campaign id and event id (a control character: never in an id).
SEP: Final = "\x1f"
#: Offset of an id whose record the campaign's saved state already covers.
COVERED: Final = -1


@dataclass(frozen=True, slots=True)
class IdEntry:
    """One saved id: the input record that added it and when it leaves the window."""

    offset: int
    expires_at: float
    topic: str = topics.SPEND


def id_key(campaign_id: str, event_id: str) -> str:
    return f"{ID_PREFIX}{campaign_id}{SEP}{event_id}"


def campaign_prefix(campaign_id: str) -> bytes:
    """Raw key prefix of one campaign's id records."""
    return f"{ID_PREFIX}{campaign_id}{SEP}".encode()


def is_id_key(raw: bytes | str) -> bool:
    if isinstance(raw, str):
        return raw.startswith(ID_PREFIX)
    return raw.startswith(ID_PREFIX_BYTES)


def split_id_key(raw: bytes) -> tuple[str, str]:
    """``(campaign_id, event_id)`` of a raw id-record key."""
    campaign_id, _, event_id = raw[len(ID_PREFIX_BYTES) :].decode().partition(SEP)
    return campaign_id, event_id


def is_entry(value: bytes) -> bool:
    """Whether a changelog value is an id record's (a JSON array; campaign values are
    JSON objects)."""
    return value[:1] == b"["


def encode_entry(entry: IdEntry) -> bytes:
    if entry.topic == topics.SPEND:
        return orjson.dumps([entry.offset, entry.expires_at])
    return orjson.dumps([entry.offset, entry.expires_at, entry.topic])


def decode_entry(data: bytes) -> IdEntry:
    obj = orjson.loads(data)
    if len(obj) > 2:
        return IdEntry(int(obj[0]), float(obj[1]), str(obj[2]))
    return IdEntry(int(obj[0]), float(obj[1]))


class SavedIds(Protocol):
    """Where a store keeps the id records it already holds (RocksDB: its disk)."""

    def saved_ids(self, campaign_id: str, partition: int) -> Iterator[tuple[str, bytes]]:
        """``(event id, record value)`` of every id record of the campaign held."""
        ...


class EventIdIndex:
    """The worker's in-memory event-id windows, one per campaign, and the records that
    keep them durable (see the module docstring).

    The worker calls :meth:`attach` whenever it reads a campaign's value (the engine
    then finds the campaign's window in ``state.dedupe``), :meth:`writes` after each
    input record to get that record's id records, :meth:`recovered` for every id record
    a table recovery reads, and :meth:`expire` from a timer.
    """

    def __init__(self, changelog: str, saved: SavedIds | None = None) -> None:
        self.changelog = changelog
        self.saved = saved
        #: campaign id -> its window (tracked: changes are listed for :meth:`writes`).
        self.windows: dict[str, DedupeWindow] = {}
        #: campaign id -> the partition its records go to.
        self.partitions: dict[str, int] = {}
        #: campaign id -> id records read by a recovery, not yet merged into a window
        #: (value None: a tombstone).
        self.pending: dict[str, dict[str, bytes | None]] = {}

    def __len__(self) -> int:
        return sum(len(w) for w in self.windows.values())

    def attach(self, stored: Stored) -> None:
        """Give the campaign its window: the one in memory, else one rebuilt from the
        saved records (ids from before the campaign's recovered high-water marks only);
        records a recovery read since are merged in."""
        state = stored.state
        campaign_id = state.campaign_id
        self.partitions[campaign_id] = stored.partition
        window = self.windows.get(campaign_id)
        if window is None:
            # The state's own window: empty, or ids carried by a value of the older
            # format (tracking lists those as changes, so they get records of their own).
            window = state.dedupe
            window.track()
            if self.saved is not None:
                restored, skipped = _merge(
                    window, state, self.saved.saved_ids(campaign_id, stored.partition)
                )
                if restored or skipped:
                    log.info(
                        "event_ids_restored",
                        campaign_id=campaign_id,
                        restored=restored,
                        skipped_past_mark=skipped,
                    )
            self.windows[campaign_id] = window
        elif state.dedupe is not window:
            state.dedupe = window
        pending = self.pending.pop(campaign_id, None)
        if pending:
            _merge(window, state, pending.items())

    def recovered(self, raw_key: bytes, value: bytes | None) -> None:
        """An id record read from the changelog by a table recovery (or a standby)."""
        campaign_id, event_id = split_id_key(raw_key)
        self.pending.setdefault(campaign_id, {})[event_id] = value

    def writes(self, stored: Stored, offset: int, topic: str) -> list[Message]:
        """The id records (and tombstones) for what the input record at ``offset`` of
        ``topic`` (logical name) changed in the campaign's window."""
        return self._writes(stored.state, stored.partition, offset, topic)

    def expire(self, now: float, partitions: set[int]) -> list[Message]:
        """Tombstones of the ids that left their window by ``now``, for the campaigns of
        ``partitions`` (those this worker actively owns)."""
        out: list[Message] = []
        for campaign_id, window in list(self.windows.items()):
            partition = self.partitions.get(campaign_id, -1)
            if partition not in partitions:
                continue
            window.prune(now)
            if window.changed:
                out.extend(self._changes(campaign_id, window, partition, COVERED, topics.SPEND))
        return out

    def forget(self, campaign_id: str) -> list[Message]:
        """Drop a campaign's window (the campaign is removed): tombstones for its ids."""
        window = self.windows.pop(campaign_id, None)
        partition = self.partitions.pop(campaign_id, 0)
        self.pending.pop(campaign_id, None)
        if window is None:
            return []
        for event_id in list(window.expiry):
            window.forget(event_id)
        return self._changes(campaign_id, window, partition, COVERED, topics.SPEND)

    def drop(self, campaign_id: str) -> None:
        """Forget a campaign's window in memory only (quarantine, a partition that moved
        away): its records stay; it is rebuilt from them when needed."""
        self.windows.pop(campaign_id, None)
        self.partitions.pop(campaign_id, None)

    def drop_partitions(self, partitions: set[int]) -> None:
        for campaign_id in [c for c, p in self.partitions.items() if p in partitions]:
            self.drop(campaign_id)

    def _writes(
        self, state: CampaignState, partition: int, offset: int, topic: str
    ) -> list[Message]:
        window = state.dedupe
        if not window.changed:
            return []
        return self._changes(state.campaign_id, window, partition, offset, topic)

    def _changes(
        self, campaign_id: str, window: DedupeWindow, partition: int, offset: int, topic: str
    ) -> list[Message]:
        expiry = window.expiry
        out = []
        for event_id in window.take_changes():
            expires_at = expiry.get(event_id)
            value = None if expires_at is None else encode_entry(IdEntry(offset, expires_at, topic))
            key = id_key(campaign_id, event_id).encode()
            out.append(Message(self.changelog, key, value, partition=partition))
        return out


def _merge(
    window: DedupeWindow, state: CampaignState, records: Iterable[tuple[str, bytes | None]]
) -> tuple[int, int]:
    """Merge saved id records into ``window``: a tombstone removes its id; an id added
    by a record past the campaign's high-water mark for its topic is not applied state
    (a crash lost the value that would have covered it) and is deleted."""
    restored: list[tuple[str, float]] = []
    offsets = state.offsets
    changed = window.changed
    skipped = 0
    for event_id, data in records:
        if data is None:
            window.expiry.pop(event_id, None)
            continue
        entry = decode_entry(data)
        if entry.offset <= offsets.get(entry.topic, -1):
            restored.append((event_id, entry.expires_at))
        elif event_id not in window.expiry:
            skipped += 1
            if changed is not None:
                changed[event_id] = None  # its tombstone goes out with the next writes
    window.restore(restored)
    return len(restored), skipped
