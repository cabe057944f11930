"""The campaign table's RocksDB store: its disk only ever holds delivered changelog
records, with the partition's changelog offset recorded in the same write once nothing
before it is in flight; decoded values are a bounded cache that never drops a value
whose newest change is not on disk.

No broker: the tests play the producer's part (``writing`` when a write is handed over,
``written``/``failed`` when its delivery is reported) against a real RocksDB database in a
temporary directory, and reopen it the way a restarted worker does.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from faust.types import TP

from pacer_stream.core.types import CampaignConfig, ChannelConfig, ChannelType, PacingStrategy
from pacer_stream.settings import Settings
from pacer_stream.streams import stored as stored_codec
from pacer_stream.streams.app import Worker, build_worker
from pacer_stream.streams.stored import Stored
from pacer_stream.streams.table_store import CampaignStore

from .conftest import DAY0


def _worker(data_dir: Path, *, cache_values: int = 100) -> Worker:
    settings = Settings(
        worker_data_dir=str(data_dir),
        app_id=f"store-{uuid.uuid4().hex[:8]}",
        table_cache_values=cache_values,
        redis_publish_enabled=False,
    )
    worker = build_worker(settings)
    worker.app.conf.datadir = data_dir
    return worker


def _store(worker: Worker) -> CampaignStore:
    store = worker.campaigns.data
    assert isinstance(store, CampaignStore)
    for partition in (0, 1):  # what assignment does: open the partition databases
        store._db_for_partition(partition)
    return store


def _value(worker: Worker, cid: str, partition: int = 0) -> Stored:
    cfg = CampaignConfig(
        cid,
        {ChannelType.GOOGLE_ADS: ChannelConfig(1_000_000_000)},
        PacingStrategy.EVEN_DISTRIBUTION,
    )
    state, _ = worker.processor.engine.configure(None, cfg, DAY0.replace(hour=12))
    return Stored(state, partition=partition)


def _on_disk(store: CampaignStore, key: str, partition: int = 0) -> bytes | None:
    raw: bytes | None = store._db_for_partition(partition).get(key.encode())
    return raw


def _offset(store: CampaignStore, partition: int = 0) -> int | None:
    tp = TP(store.table.changelog_topic.get_topic_name(), partition)
    offset: int | None = store.persisted_offset(tp)
    return offset


def test_rocksdb_is_the_default_and_memory_an_option(tmp_path: Path) -> None:
    assert isinstance(_worker(tmp_path / "a").campaigns.data, CampaignStore)
    memory = build_worker(
        Settings(worker_data_dir=str(tmp_path / "b"), app_id="m", table_store="memory")
    )
    assert not isinstance(memory.campaigns.data, CampaignStore)


def test_a_value_reaches_disk_only_as_the_delivered_bytes_with_its_offset(
    tmp_path: Path,
) -> None:
    worker = _worker(tmp_path)
    store = _store(worker)
    value = _value(worker, "c1")
    store["c1"] = value
    assert store["c1"] is value  # the live value, not a copy
    assert _on_disk(store, "c1") is None and _offset(store) is None

    write = store.writing("c1", 0)
    data = stored_codec.dumps(value)
    assert _on_disk(store, "c1") is None  # sent is not delivered
    store.written(write, data, 41)
    assert _on_disk(store, "c1") == data
    assert _offset(store) == 41

    # a restarted worker on the same data directory finds the value and the offset
    for db in store._dbs.values():
        db.close()
    again = _store(_worker(tmp_path))
    assert _offset(again) == 41
    assert stored_codec.dumps(again["c1"]) == data


def test_the_offset_waits_for_every_write_in_flight_on_the_partition(tmp_path: Path) -> None:
    worker = _worker(tmp_path)
    store = _store(worker)
    a, b = _value(worker, "a"), _value(worker, "b")
    store["a"], store["b"] = a, b
    wa, wb = store.writing("a", 0), store.writing("b", 0)
    # b's delivery is reported first: b is on disk, but recording offset 11 would let
    # a restart skip a's record at offset 10, which is not on disk yet
    store.written(wb, stored_codec.dumps(b), 11)
    assert _on_disk(store, "b") is not None and _offset(store) is None
    store.written(wa, stored_codec.dumps(a), 10)
    assert _offset(store) == 11
    assert _on_disk(store, "a") == stored_codec.dumps(a)


def test_an_older_delivery_of_a_key_never_overwrites_a_newer_one(tmp_path: Path) -> None:
    worker = _worker(tmp_path)
    store = _store(worker)
    value = _value(worker, "k")
    store["k"] = value
    first = store.writing("k", 0)
    old = stored_codec.dumps(value)
    value.nonces["n"] = 1.0
    second = store.writing("k", 0, value)
    new = stored_codec.dumps(value)
    store.written(second, new, 21)
    store.written(first, old, 20)
    assert _on_disk(store, "k") == new
    assert _offset(store) == 21


def test_a_failed_write_puts_nothing_on_disk_and_frees_the_offset(tmp_path: Path) -> None:
    worker = _worker(tmp_path)
    store = _store(worker)
    ok, bad = _value(worker, "ok"), _value(worker, "bad")
    store["ok"], store["bad"] = ok, bad
    w_ok, w_bad = store.writing("ok", 0), store.writing("bad", 0)
    store.written(w_ok, stored_codec.dumps(ok), 5)
    assert _offset(store) is None
    store.failed(w_bad)
    assert _on_disk(store, "bad") is None
    assert _offset(store) == 5
    assert store["bad"] is bad  # still unsaved: kept in memory


def test_the_cache_is_bounded_but_keeps_values_not_on_disk(tmp_path: Path) -> None:
    worker = _worker(tmp_path, cache_values=2)
    store = _store(worker)
    values = {cid: _value(worker, cid) for cid in ("x", "y", "z")}
    for cid, value in values.items():
        store[cid] = value
    assert set(store.live) == {"x", "y", "z"}  # none on disk: none may go
    for offset, (cid, value) in enumerate(values.items()):
        store.written(store.writing(cid, 0), stored_codec.dumps(value), offset)
    assert len(store.live) == 2
    assert all(cid in store for cid in values)  # listing needs an assignment
    for cid, value in values.items():  # evicted ones come back from disk, equal
        assert stored_codec.dumps(store[cid]) == stored_codec.dumps(value)


def test_a_removed_value_stays_hidden_until_its_tombstone_is_delivered(
    tmp_path: Path,
) -> None:
    worker = _worker(tmp_path)
    store = _store(worker)
    value = _value(worker, "gone")
    store["gone"] = value
    store.written(store.writing("gone", 0), stored_codec.dumps(value), 1)
    assert store.pop("gone") is value
    # quarantine or expiry: the disk still has it, the table does not show it
    assert _on_disk(store, "gone") is not None
    assert "gone" not in store and store.get("gone") is None and list(store) == []
    store.written(store.writing("gone", 0), None, 2)  # the expiry tombstone
    assert _on_disk(store, "gone") is None and _offset(store) == 2


def test_recovered_records_replace_stale_decoded_values(tmp_path: Path) -> None:
    worker = _worker(tmp_path)
    store = _store(worker)
    value = _value(worker, "r", partition=1)
    store["r"] = value
    store.written(store.writing("r", 1), stored_codec.dumps(value), 3)
    newer = _value(worker, "r", partition=1)
    newer.nonces["from-another-worker"] = 9.0

    class _Msg:
        def __init__(self) -> None:
            self.key, self.value = b"r", stored_codec.dumps(newer)
            self.partition, self.offset = 1, 7
            self.tp = TP(store.table.changelog_topic.get_topic_name(), 1)

    class _Event:
        message = _Msg()

    store.apply_changelog_batch([_Event()], lambda k: k, lambda v: v)  # type: ignore[list-item]
    assert store["r"].nonces == {"from-another-worker": 9.0}
    assert _offset(store, 1) == 7


@pytest.mark.parametrize("name", ["disk", "ram"])
def test_an_unknown_table_store_is_refused(name: str) -> None:
    with pytest.raises(ValueError):
        Settings(table_store=name)  # type: ignore[arg-type]


def test_listing_an_owned_partition_reads_its_disk_values_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = _worker(tmp_path)
    store = _store(worker)
    for i, cid in enumerate(("p0-a", "p0-b")):
        value = _value(worker, cid)
        store[cid] = value
        store.written(store.writing(cid, 0), stored_codec.dumps(value), i)
    for db in store._dbs.values():
        db.close()
    restarted = _worker(tmp_path)
    again = _store(restarted)
    topic = again.table.changelog_topic.get_topic_name()
    monkeypatch.setattr(restarted.app.assignor, "assigned_actives", lambda: {TP(topic, 0)})
    assert again.live == {}
    assert sorted(again) == ["p0-a", "p0-b"]  # partition 1 is not owned: nothing listed
    assert set(again.live) == {"p0-a", "p0-b"}  # decoded during the scan
    assert again["p0-a"].campaign_id == "p0-a"
