"""Event ids as changelog records of their own, so a campaign's table value stays the
same size however many events the campaign had today.

Why: the engine remembers event ids for 25 h to count producer retries once
(:class:`~pacer_stream.core.windows.DedupeWindow`). Saved inside the campaign's value,
the window made every changelog write carry all of the day's ids (29 bytes each: a
campaign with 10,000 events a day wrote ~300 KB per applied batch, and one with about
150,000 outgrew the record size limit). Here the ids one applied batch of input records
added to a campaign are one small record, deleted (a tombstone) once they have all left
the window: changelog bytes proportional to the change, and one record per campaign and
batch, so a batched record of 1,000 events adds one record, not 1,000, and so do many
single-event records of one campaign taken in one batch.

Layout: the records share the ``campaigns`` table's changelog topic and partition with
their campaign, under keys that sort after every campaign key (so listing campaigns stops
at the first of them, and one campaign's records are one prefix range)::

    ID_PREFIX + campaign_id + "\\x1f" + topic code + "\\x1f" + input offset
        ->  [[event id, expires at], ...]

The offset is that of the campaign's *last* input record in the batch: the batch is
applied in one step, so the campaign value written after it (now or, deferred, later)
has a high-water mark at or above that offset, and a value written before it one below
the batch's first record -- never one in between.

The topic code says whose offset it is: ``s`` the spend topic, ``c`` the commands topic
(command ids are remembered the same way).

Crash safety: a batch's id records are produced before its campaign value, on the same
topic-partition, and the Kafka client keeps one partition's records in the order sent
(one request in flight per broker; a failed batch is retried ahead of later ones); so
when a campaign's value is in the changelog, the id records it relies on are too. The
reverse can happen (ids delivered, the value lost to a crash): a record whose offset is
above the campaign's recovered high-water mark for its topic belongs to an input record
that will be replayed, so rebuilding the window skips it and deletes it (the replay
writes it again if the events still apply).

At run time a campaign's window lives in memory (:class:`EventIdIndex`, ~120 bytes per
id held, plus one small entry per id record) and is handed to the engine inside the
campaign state; records are read back only to rebuild a window: those met during a table
recovery (both stores) and, with the RocksDB store, those already on disk (one prefix
scan the first time a campaign is used after a start).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
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
#: Between the key's parts (a control character: never in an id).
SEP: Final = "\x1f"
#: Logical input topic -> its code in record keys (and back).
TOPIC_CODES: Final = {topics.SPEND: "s", topics.COMMANDS: "c"}
_CODE_TOPICS: Final = {code: topic for topic, code in TOPIC_CODES.items()}


def record_key(campaign_id: str, topic: str, offset: int) -> str:
    """Key of the id record of the input record at ``offset`` of ``topic`` (logical)."""
    return f"{ID_PREFIX}{campaign_id}{SEP}{TOPIC_CODES.get(topic, topic)}{SEP}{offset}"


def campaign_prefix(campaign_id: str) -> bytes:
    """Raw key prefix of one campaign's id records."""
    return f"{ID_PREFIX}{campaign_id}{SEP}".encode()


def is_id_key(raw: bytes | str) -> bool:
    if isinstance(raw, str):
        return raw.startswith(ID_PREFIX)
    return raw.startswith(ID_PREFIX_BYTES)


def split_key(raw: bytes) -> tuple[str, str, int]:
    """``(campaign id, logical topic, input offset)`` of a raw id-record key."""
    campaign_id, _, rest = raw[len(ID_PREFIX_BYTES) :].decode().partition(SEP)
    code, _, offset = rest.rpartition(SEP)
    return campaign_id, _CODE_TOPICS.get(code, code), int(offset)


def encode_ids(window: DedupeWindow, event_ids: Iterable[str]) -> bytes:
    expiry = window.expiry
    return orjson.dumps([[e, expiry[e]] for e in event_ids])


def decode_ids(data: bytes) -> list[tuple[str, float]]:
    return [(str(e), float(x)) for e, x in orjson.loads(data)]


class SavedRecords(Protocol):
    """Where a store keeps the records beside campaign values it already holds (RocksDB:
    its disk; the memory store holds none)."""

    def saved(self, prefix: bytes, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """``(raw key, value)`` of every record whose key starts with ``prefix``."""
        ...


@dataclass(slots=True)
class CampaignIds:
    """One campaign's window and the records that hold its ids."""

    window: DedupeWindow
    partition: int
    #: (when its last id leaves the window, record key) per record, oldest first.
    records: deque[tuple[float, bytes]] = field(default_factory=deque)
    #: Keys of records to delete with the next writes (skipped when rebuilding).
    stale: list[bytes] = field(default_factory=list)


class EventIdIndex:
    """The worker's in-memory event-id windows, one per campaign, and the records that
    keep them durable (see the module docstring).

    The worker calls :meth:`attach` whenever it reads a campaign's value to apply a
    record (the engine then finds the campaign's window in ``state.dedupe``),
    :meth:`writes` after each applied batch to get its id record,
    :meth:`recovered` for every id record a table recovery reads, and :meth:`expire`
    from a timer.
    """

    def __init__(self, changelog: str, saved: SavedRecords | None = None) -> None:
        self.changelog = changelog
        self.saved = saved
        #: campaign id -> its window and records.
        self.campaigns: dict[str, CampaignIds] = {}
        #: campaign id -> id records read by a recovery, not yet merged into a window
        #: (value None: a tombstone).
        self.pending: dict[str, dict[bytes, bytes | None]] = {}

    def __len__(self) -> int:
        return sum(len(c.window) for c in self.campaigns.values())

    def attach(self, stored: Stored) -> None:
        """Give the campaign its window: the one in memory, else one rebuilt from the
        saved records (those from before the campaign's recovered high-water marks
        only); records a recovery read since are merged in."""
        state = stored.state
        campaign_id = state.campaign_id
        ids = self.campaigns.get(campaign_id)
        if ids is None:
            # The state's own window: empty, or ids carried by a value of the older
            # format (tracking lists those as added, so they get a record of their own).
            ids = CampaignIds(state.dedupe, stored.partition)
            ids.window.track()
            if self.saved is not None:
                saved = self.saved.saved(campaign_prefix(campaign_id), stored.partition)
                restored, skipped = _merge(ids, state, saved)
                if restored or skipped:
                    log.info(
                        "event_ids_restored",
                        campaign_id=campaign_id,
                        ids=restored,
                        records_past_mark=skipped,
                    )
            self.campaigns[campaign_id] = ids
        else:
            ids.partition = stored.partition
            if state.dedupe is not ids.window:
                state.dedupe = ids.window
        pending = self.pending.pop(campaign_id, None)
        if pending:
            _merge(ids, state, pending.items())

    def recovered(self, raw_key: bytes, value: bytes | None) -> None:
        """An id record read from the changelog by a table recovery (or a standby)."""
        campaign_id = split_key(raw_key)[0]
        self.pending.setdefault(campaign_id, {})[raw_key] = value

    def writes(self, stored: Stored, offset: int, topic: str) -> list[Message]:
        """The id record of the records of ``topic`` (logical name) applied to the
        campaign since the last call, the last of them at ``offset``: the ids they added
        to the campaign's window (plus any deletions due)."""
        campaign_id = stored.campaign_id
        ids = self.campaigns.get(campaign_id)
        if ids is None:
            return []
        out = self._stale(ids)
        added = ids.window.take_added()
        if added:
            key = record_key(campaign_id, topic, offset).encode()
            expiry = ids.window.expiry
            ids.records.append((max(expiry[e] for e in added), key))
            value = encode_ids(ids.window, added)
            out.append(Message(self.changelog, key, value, partition=ids.partition))
        return out

    def expire(self, now: float, partitions: set[int]) -> list[Message]:
        """Deletions of the records whose ids have all left their window by ``now``, for
        the campaigns of ``partitions`` (those this worker actively owns)."""
        out: list[Message] = []
        for ids in self.campaigns.values():
            if ids.partition not in partitions:
                continue
            ids.window.prune(now)
            out.extend(self._stale(ids))
            records = ids.records
            while records and records[0][0] <= now:
                key = records.popleft()[1]
                out.append(Message(self.changelog, key, None, partition=ids.partition))
        return out

    def forget(self, campaign_id: str) -> list[Message]:
        """Drop a campaign's window (the campaign is removed): deletions of its records."""
        self.pending.pop(campaign_id, None)
        ids = self.campaigns.pop(campaign_id, None)
        if ids is None:
            return []
        keys = ids.stale + [key for _, key in ids.records]
        return [Message(self.changelog, k, None, partition=ids.partition) for k in keys]

    def drop(self, campaign_id: str) -> None:
        """Forget a campaign's window in memory only (quarantine, a partition that moved
        away): its records stay; it is rebuilt from them when needed."""
        self.campaigns.pop(campaign_id, None)

    def drop_partitions(self, partitions: set[int]) -> None:
        for campaign_id in [c for c, i in self.campaigns.items() if i.partition in partitions]:
            self.drop(campaign_id)

    def _stale(self, ids: CampaignIds) -> list[Message]:
        if not ids.stale:
            return []
        keys, ids.stale = ids.stale, []
        return [Message(self.changelog, k, None, partition=ids.partition) for k in keys]


def _merge(
    ids: CampaignIds, state: CampaignState, records: Iterable[tuple[bytes, bytes | None]]
) -> tuple[int, int]:
    """Merge saved id records into a campaign's window: a deletion drops its record; a
    record of an input past the campaign's high-water mark for its topic is not applied
    state (a crash lost the value that would have covered it) and is deleted. Returns
    (ids restored, records skipped)."""
    restored: list[tuple[str, float]] = []
    kept: dict[bytes, float] = {until_key[1]: until_key[0] for until_key in ids.records}
    offsets = state.offsets
    skipped = 0
    for key, data in records:
        if data is None:
            kept.pop(key, None)
            continue
        _, topic, offset = split_key(key)
        if offset > offsets.get(topic, -1):
            skipped += 1
            ids.stale.append(key)
            continue
        entries = decode_ids(data)
        restored.extend(entries)
        if entries:
            kept[key] = max(x for _, x in entries)
    ids.window.restore(restored)
    ids.records = deque(sorted((until, key) for key, until in kept.items()))
    return len(restored), skipped
