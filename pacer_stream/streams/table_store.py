"""The ``campaigns`` table's RocksDB store: local state that survives a restart and may
exceed memory, without ever holding anything the changelog does not have.

Why not faust's RocksDB store as it is: faust writes a table value to RocksDB when the
value is *set* and records the changelog offset when the changelog write is delivered.
The worker sets a campaign's value before its changelog write is delivered (and timers
change values in place), so after a kill -9 the local database could hold a state --
with its input-offset high-water marks -- that never reached the changelog. A restarted
worker would then skip the replayed input records as "already applied" and publish
nothing for them, and another worker recovering the partition from the changelog would
never see them at all.

This store keeps faust's RocksDB layout (one database per changelog partition, the
changelog offset under faust's own offset key, faust's recovery reading from that offset)
and changes when the disk is written:

* values the worker sets or changes live in memory, decoded (:attr:`CampaignStore.live`);
* a value reaches RocksDB only as the exact bytes of a changelog record the broker
  acknowledged, written in a ``WriteBatch`` together with the partition's changelog
  offset once no other write to that partition is in flight. The local database is
  therefore always a prefix of the changelog: a restart reads the changelog from the
  recorded offset and ends exactly where the changelog ends;
* the decoded values are a bounded LRU cache: a value whose newest change is not yet on
  disk is never evicted, every other one is re-read from RocksDB when needed.

The input-offset high-water marks stay inside the campaign value (:mod:`.stored`), so the
state and the marks that guard it are one RocksDB write and one changelog record.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from faust.stores import memory as faust_memory
from faust.stores import rocksdb as faust_rocksdb
from faust.types import TP, EventT
from rocksdict import WriteBatch

from pacer_stream.observability.logging import get_logger
from pacer_stream.streams.side_records import SIDE_RECORDS_START, is_side_key

log = get_logger("pacer_stream.table_store")

#: Decoded campaign values kept in memory by default (unsaved ones come on top).
DEFAULT_CACHE_VALUES = 100_000


@dataclass(frozen=True, slots=True)
class ChangelogWrite:
    """One changelog write in flight: what :meth:`CampaignStore.written` needs to put
    the delivered bytes on disk and to know whether the value changed since."""

    key: str
    partition: int
    generation: int


class CampaignStore(faust_rocksdb.Store):  # type: ignore[misc]
    """faust's RocksDB store whose disk only ever holds delivered changelog records."""

    def __init__(self, *args: Any, cache_values: int = DEFAULT_CACHE_VALUES, **kwargs: Any):
        super().__init__(*args, **kwargs)
        #: Most decoded values kept in memory (values not yet on disk are never evicted).
        self.cache_values = max(1, cache_values)
        #: key -> decoded value, least recently used first.
        self.live: OrderedDict[str, Any] = OrderedDict()
        #: key -> generation of its newest change not yet on disk.
        self._unsaved: dict[str, int] = {}
        self._generation = 0
        #: Keys removed in memory whose value is still on disk: the expiry tombstone is
        #: in flight, or the campaign is quarantined (its last good value stays on disk
        #: for the next start, as it stays in the changelog).
        self._hidden: set[str] = set()
        #: partition -> changelog writes sent and not yet delivered (or failed).
        self._inflight: dict[int, int] = {}
        #: partition -> highest delivered changelog offset not yet recorded on disk.
        self._delivered: dict[int, int] = {}
        #: partition -> key -> changelog offset of the value on disk, while writes to the
        #: partition are in flight (deliveries may be reported out of order).
        self._on_disk: dict[int, dict[bytes, int]] = {}

    # ------------------------------------------------------------------ mapping
    def __getitem__(self, key: Any) -> Any:
        if key in self._hidden:
            raise KeyError(key)
        value = self.live.get(key)
        if value is not None:
            self.live.move_to_end(key)
            return value
        raw = self._get(self._encode_key(key))
        if raw is None:
            raise KeyError(key)
        value = self._decode_value(raw)
        self.live[key] = value
        self._evict()
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        self._hidden.discard(key)
        self.live[key] = value
        self.live.move_to_end(key)
        self._mark_unsaved(key)
        self._evict()

    def __delitem__(self, key: Any) -> None:
        if key not in self:
            raise KeyError(key)
        self.live.pop(key, None)
        self._unsaved.pop(key, None)
        self._hidden.add(key)

    def __contains__(self, key: object) -> bool:
        # faust's table asks ``key in data`` before every ``data[key]``: a hit on disk
        # is decoded into the cache here, so the read that follows needs no second lookup.
        if key in self._hidden:
            return False
        if key in self.live:
            return True
        try:
            self[key]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[Any]:
        yield from self._keys_decoded()

    def __len__(self) -> int:
        # ``list(table.keys())`` asks the length first: count without decoding values.
        return sum(1 for _ in self._listed(fill=False))

    def _keys_decoded(self) -> Iterator[Any]:
        return self._listed(fill=True)

    def _listed(self, *, fill: bool) -> Iterator[Any]:
        """Keys of the active partitions: the values in memory, then those on disk only.

        Listing is how the timers and the recovery pass reach every owned campaign, and
        each key listed is read right after: while the cache has room, the disk values
        are decoded into it during the one scan (instead of a lookup per key across the
        partition databases later), and every key's partition is remembered."""
        in_memory = list(self.live)
        seen = set(in_memory)
        yield from in_memory
        topic = self.table.changelog_topic_name
        actives = self.app.assignor.assigned_actives()
        for partition, db in list(self._dbs.items()):
            if TP(topic=topic, partition=partition) not in actives:
                continue
            for raw, data in db.items():
                if raw >= SIDE_RECORDS_START:
                    break  # records beside the values sort after every campaign

                if raw == self.offset_key:
                    continue
                key = self._decode_key(raw)
                if key in seen or key in self._hidden:
                    continue
                self._key_index[raw] = partition
                if fill and len(self.live) < self.cache_values:
                    self.live[key] = self._decode_value(data)
                yield key

    def saved(self, prefix: bytes, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """The records on disk whose keys start with ``prefix`` (one campaign's event-id
        or grant records: one key range of its partition's database)."""
        for raw, data in self._db_for_partition(partition).items(from_key=prefix):
            if not raw.startswith(prefix):
                break
            yield raw, data

    def _values_decoded(self) -> Iterator[Any]:
        for _, value in self._items_decoded():
            yield value

    def _items_decoded(self) -> Iterator[tuple[Any, Any]]:
        for key in list(self._keys_decoded()):
            try:
                yield key, self[key]
            except KeyError:
                continue

    def _clear(self) -> None:
        raise NotImplementedError("the campaign table is never cleared")

    # ------------------------------------------------------------------ cache
    def _mark_unsaved(self, key: str) -> int:
        self._generation += 1
        self._unsaved[key] = self._generation
        return self._generation

    def _evict(self) -> None:
        """Drop the least recently used values that are on disk, down to the bound."""
        excess = len(self.live) - self.cache_values
        if excess <= 0:
            return
        victims: list[str] = []
        for key in self.live:
            if key not in self._unsaved:
                victims.append(key)
                if len(victims) >= excess:
                    break
        for key in victims:
            del self.live[key]

    # ------------------------------------------------------------------ changelog writes
    def writing(self, key: str, partition: int, value: Any = None) -> ChangelogWrite:
        """A changelog write of ``key``'s ``value`` (None: a tombstone, or the value
        already set) is being sent: until it is delivered the value stays in memory and
        the partition's recorded offset does not move past anything not yet on disk."""
        self._inflight[partition] = self._inflight.get(partition, 0) + 1
        if value is not None and key not in self._hidden:
            self.live[key] = value
            self.live.move_to_end(key)
        return ChangelogWrite(key, partition, self._mark_unsaved(key))

    def written(self, write: ChangelogWrite, data: bytes | None, offset: int) -> None:
        """The broker acknowledged ``data`` (None: a tombstone) at ``offset``: put those
        exact bytes on disk, with the partition's offset in the same write batch when no
        other write to the partition is still in flight."""
        partition = write.partition
        raw_key = self._encode_key(write.key)
        batch = WriteBatch(raw_mode=True)
        on_disk = self._on_disk.setdefault(partition, {})
        if on_disk.get(raw_key, -1) < offset:
            if data is None:
                batch.delete(raw_key)
            else:
                batch.put(raw_key, data)
            on_disk[raw_key] = offset
        self._delivered[partition] = max(offset, self._delivered.get(partition, -1))
        self._finish(partition, batch)
        if data is None and write.key not in self.live:
            self._hidden.discard(write.key)
        if self._unsaved.get(write.key) == write.generation:
            del self._unsaved[write.key]
            self._evict()

    def failed(self, write: ChangelogWrite) -> None:
        """The write was not delivered: nothing goes to disk (the worker stops and
        commits nothing after it, :mod:`.deliveries`), but the partition's other
        deliveries may now be recorded."""
        self._finish(write.partition, WriteBatch(raw_mode=True))

    def _finish(self, partition: int, batch: WriteBatch) -> None:
        left = self._inflight.get(partition, 0) - 1
        if left <= 0:
            self._inflight.pop(partition, None)
            self._on_disk.pop(partition, None)
            delivered = self._delivered.pop(partition, None)
            if delivered is not None:
                batch.put(self.offset_key, str(delivered).encode())
        else:
            self._inflight[partition] = left
        if len(batch):
            self._db_for_partition(partition).write(batch)

    # ------------------------------------------------------------------ recovery, rebalance
    def _open_for_partition(self, partition: int) -> Any:
        """Open a partition's database and say from which changelog offset recovery
        will read it (None: the database is new, the whole changelog is read)."""
        db = super()._open_for_partition(partition)
        raw = db.get(self.offset_key)
        log.info(
            "table_store_opened",
            partition=partition,
            persisted_offset=None if raw is None else int(raw),
            path=str(self.partition_path(partition)),
        )
        return db

    def apply_changelog_batch(
        self,
        batch: Iterable[EventT],
        to_key: Callable[[Any], Any],
        to_value: Callable[[Any], Any],
    ) -> None:
        """Recovery and standby records go to disk as faust writes them; any decoded
        copy of those keys is stale from now on."""
        events = list(batch)
        super().apply_changelog_batch(events, to_key, to_value)
        side = self.table.side_records
        for event in events:
            raw = event.message.key
            if raw is None:
                continue
            if is_side_key(raw):
                if side is not None:
                    side.recovered(raw, event.message.value)
                continue
            key = self._decode_key(raw)
            self._hidden.discard(key)
            if key not in self._unsaved:
                self.live.pop(key, None)

    async def on_rebalance(
        self,
        assigned: set[TP],
        revoked: set[TP],
        newly_assigned: set[TP],
        generation_id: int = 0,
    ) -> None:
        """Partitions that leave or arrive keep no decoded value: another worker may
        change them meanwhile, and recovery brings the disk up to date."""
        moved = {tp.partition for tp in revoked | newly_assigned}
        if moved and self.table.side_records is not None:
            self.table.side_records.drop_partitions(moved)  # rebuilt from disk when used
        if moved:
            for key in [k for k, v in self.live.items() if _partition(v) in moved]:
                del self.live[key]
                self._unsaved.pop(key, None)
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)

    def reset_state(self) -> None:
        self.live.clear()
        self._unsaved.clear()
        self._hidden.clear()
        super().reset_state()


def _partition(value: Any) -> int | None:
    partition = getattr(value, "partition", None)
    return partition if isinstance(partition, int) else None


class MemoryCampaignStore(faust_memory.Store):  # type: ignore[misc]
    """faust's memory store, except that the records beside the campaign values (event
    ids, grants: :mod:`.side_records`) read by a recovery go to the worker's indexes
    instead of the table's dict."""

    def apply_changelog_batch(
        self,
        batch: Iterable[EventT],
        to_key: Callable[[Any], Any],
        to_value: Callable[[Any], Any],
    ) -> None:
        campaigns = []
        side = self.table.side_records
        for event in batch:
            raw = event.message.key
            if raw is not None and is_side_key(raw):
                if side is not None:
                    side.recovered(raw, event.message.value)
            else:
                campaigns.append(event)
        super().apply_changelog_batch(campaigns, to_key, to_value)
