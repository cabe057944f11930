"""Event ids as records of their own (``streams.event_ids``): what an input record writes,
how a window is rebuilt from saved records after a crash, and when ids leave.

The saved records come from a plain dict here (the ``SavedIds`` port); the RocksDB
store's prefix scan is tested against a real database at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from faust.types import TP

from pacer_stream.core import serde
from pacer_stream.core.engine import PacingEngine
from pacer_stream.core.types import (
    CampaignConfig,
    ChannelConfig,
    ChannelType,
    PacingStrategy,
    SpendEvent,
)
from pacer_stream.core.windows import DedupeWindow
from pacer_stream.settings import Settings
from pacer_stream.streams import stored as stored_codec
from pacer_stream.streams.app import build_worker
from pacer_stream.streams.event_ids import (
    EventIdIndex,
    campaign_prefix,
    decode_ids,
    encode_ids,
    is_id_key,
    record_key,
    split_key,
)
from pacer_stream.streams.processor import Message
from pacer_stream.streams.side_records import is_side_value
from pacer_stream.streams.stored import Stored
from pacer_stream.streams.table_store import CampaignStore
from pacer_stream.wire import topics

from .conftest import DAY0

CHANGELOG = "app-campaigns-changelog"
NOON = DAY0.replace(hour=12)
G = ChannelType.GOOGLE_ADS
ENGINE = PacingEngine()


class Saved:
    """A store's saved records, as a dict (raw key -> value)."""

    def __init__(self) -> None:
        self.records: dict[bytes, bytes] = {}

    def saved(self, prefix: bytes, partition: int) -> Iterator[tuple[bytes, bytes]]:
        yield from ((k, v) for k, v in sorted(self.records.items()) if k.startswith(prefix))


def _stored(cid: str = "c1", partition: int = 0) -> Stored:
    cfg = CampaignConfig(cid, {G: ChannelConfig(1_000_000_000)}, PacingStrategy.EVEN_DISTRIBUTION)
    state, _ = ENGINE.configure(None, cfg, NOON)
    return Stored(state, partition)


def _spend(stored: Stored, event_id: str) -> bool:
    event = SpendEvent(event_id, stored.campaign_id, G, 1_000, NOON)
    return not ENGINE.record_spend(stored.state, event, NOON).duplicate


def _apply(index: EventIdIndex, stored: Stored, offset: int, *ids: str) -> list[Message]:
    """What the worker does with one spend record: attach, apply, take its writes."""
    index.attach(stored)
    for event_id in ids:
        _spend(stored, event_id)
    stored.state.offsets[topics.SPEND] = offset
    return index.writes(stored, offset, topics.SPEND)


def _ids(message: Message) -> list[str]:
    return [e for e, _ in decode_ids(message.value or b"")]


def _record(cid: str, offset: int, *ids: str, topic: str = topics.SPEND) -> tuple[bytes, bytes]:
    window = DedupeWindow()
    for event_id in ids:
        window.add(event_id, NOON.timestamp())
    return record_key(cid, topic, offset).encode(), encode_ids(window, ids)


def test_keys_sort_after_campaign_keys_and_split_back() -> None:
    key = record_key("camp-1", topics.COMMANDS, 42).encode()
    assert is_id_key(key) and not is_id_key(b"camp-1")
    # every printable first character of a campaign id sorts before the id records
    assert max(b"camp-1", "\U000e01ef-campaign".encode()) < key
    assert split_key(key) == ("camp-1", topics.COMMANDS, 42)
    assert split_key(record_key("c", topics.SPEND, 7).encode()) == ("c", topics.SPEND, 7)
    assert key.startswith(campaign_prefix("camp-1"))
    assert not record_key("camp-10", topics.SPEND, 1).encode().startswith(campaign_prefix("camp-1"))


def test_values_round_trip_and_are_told_from_campaign_values() -> None:
    window = DedupeWindow()
    window.add("a", 100.0)
    data = encode_ids(window, ["a"])
    assert decode_ids(data) == [("a", 100.0 + window.window_s)]
    assert is_side_value(data) and not is_side_value(stored_codec.dumps(_stored()))


def test_a_record_writes_one_entry_with_its_new_ids_and_nothing_for_duplicates() -> None:
    index = EventIdIndex(CHANGELOG)
    stored = _stored()
    writes = _apply(index, stored, 5, "a", "b", "a")
    assert len(writes) == 1 and _ids(writes[0]) == ["a", "b"]
    assert writes[0].key == record_key("c1", topics.SPEND, 5).encode()
    assert writes[0].topic == CHANGELOG and writes[0].partition == 0
    assert dict(decode_ids(writes[0].value or b""))["a"] == stored.state.dedupe.expiry["a"]
    assert _apply(index, stored, 6, "a", "b") == []  # retries: nothing new
    # the campaign's value holds no ids at all
    assert "d" not in orjson.loads(stored_codec.json_of(stored_codec.dumps(stored)))["s"]


def test_a_new_campaign_gets_its_window_after_the_record_that_created_it() -> None:
    index = EventIdIndex(CHANGELOG)
    stored = _stored("fresh")
    _spend(stored, "x")  # applied before the worker attached a window (a new campaign)
    index.attach(stored)
    assert [_ids(m) for m in index.writes(stored, 3, topics.SPEND)] == [["x"]]


def test_a_rebuilt_window_keeps_only_records_the_saved_state_covers() -> None:
    saved = Saved()
    saved.records = dict(
        [
            _record("c1", 3, "old", "older"),
            # written for an input record whose campaign value a crash lost (mark is 4)
            _record("c1", 9, "lost"),
            _record("c1", 2, "cmd:2", topic=topics.COMMANDS),
        ]
    )
    stored = _stored()
    stored.state.offsets = {topics.SPEND: 4, topics.COMMANDS: 1}
    index = EventIdIndex(CHANGELOG, saved)
    index.attach(stored)
    assert set(stored.state.dedupe.expiry) == {"old", "older"}  # "cmd:2" is past its mark
    assert not _spend(stored, "old")  # a duplicate after the restart
    # the record that lost its value is replayed: its id applies again and is saved
    # again; the record nobody replays is deleted
    assert _spend(stored, "lost")
    writes = {m.key: m.value for m in index.writes(stored, 9, topics.SPEND)}
    assert _ids(Message(CHANGELOG, None, writes[record_key("c1", topics.SPEND, 9).encode()])) == [
        "lost"
    ]
    assert writes[record_key("c1", topics.COMMANDS, 2).encode()] is None


def test_records_read_by_a_recovery_merge_into_a_window_at_its_next_use() -> None:
    index = EventIdIndex(CHANGELOG)
    stored = _stored()
    _apply(index, stored, 1, "a", "b")
    key, value = _record("c1", 0, "c")  # covered by the campaign's mark (1)
    index.recovered(key, value)
    index.attach(stored)
    window = stored.state.dedupe
    assert set(window.expiry) == {"a", "b", "c"}
    assert list(window.order) == sorted(window.expiry, key=window.expiry.__getitem__)
    assert index.writes(stored, 2, topics.SPEND) == []  # merged records are saved already
    # another worker deleted a record: it is no longer to be deleted here
    index.recovered(record_key("c1", topics.SPEND, 1).encode(), None)
    index.attach(stored)
    later = NOON.timestamp() + window.window_s + 1
    assert [m.key for m in index.expire(later, {0})] == [key]


def test_a_fresh_value_object_gets_the_campaigns_window() -> None:
    index = EventIdIndex(CHANGELOG)
    stored = _stored()
    _apply(index, stored, 1, "a")
    again = stored_codec.loads(stored_codec.dumps(stored))  # re-read from the store
    assert len(again.state.dedupe) == 0
    index.attach(again)
    assert again.state.dedupe is stored.state.dedupe and "a" in again.state.dedupe.expiry


def test_records_leave_with_their_last_id_and_only_on_owned_partitions() -> None:
    index = EventIdIndex(CHANGELOG)
    mine, theirs = _stored("mine", 0), _stored("theirs", 1)
    _apply(index, mine, 1, "a")
    _apply(index, theirs, 1, "b")
    later = NOON.timestamp() + mine.state.dedupe.window_s + 1
    assert index.expire(NOON.timestamp(), {0, 1}) == []
    gone = index.expire(later, {0})
    assert [(m.key, m.value, m.partition) for m in gone] == [
        (record_key("mine", topics.SPEND, 1).encode(), None, 0)
    ]
    assert "a" not in mine.state.dedupe.expiry and "b" in theirs.state.dedupe.expiry


def test_a_removed_campaign_takes_its_records_with_it() -> None:
    index = EventIdIndex(CHANGELOG)
    stored = _stored()
    _apply(index, stored, 1, "a")
    _apply(index, stored, 2, "b")
    gone = index.forget("c1")
    assert [m.key for m in gone] == [record_key("c1", topics.SPEND, o).encode() for o in (1, 2)]
    assert all(m.value is None for m in gone)
    assert index.forget("c1") == []


def test_a_value_of_the_older_format_hands_its_ids_over_as_a_record() -> None:
    stored = _stored()
    _spend(stored, "legacy")
    old = orjson.loads(stored_codec.json_of(stored_codec.dumps(stored)))
    old["v"] = 1
    old["s"] = serde.to_dict(stored.state)  # format 1 kept the window inside
    loaded = stored_codec.loads(orjson.dumps(old))
    assert "legacy" in loaded.state.dedupe.expiry
    index = EventIdIndex(CHANGELOG)
    index.attach(loaded)
    assert [_ids(m) for m in index.writes(loaded, 7, topics.SPEND)] == [["legacy"]]


def test_a_command_that_fails_is_not_remembered() -> None:
    stored = _stored()
    assert ENGINE.first_time(stored.state, "command", "cmd-1", NOON)
    ENGINE.forget_input(stored.state, "command", "cmd-1")
    assert ENGINE.first_time(stored.state, "command", "cmd-1", NOON)


def test_a_window_lists_its_additions_once_and_restore_keeps_expiry_order() -> None:
    window = DedupeWindow(window_s=100.0)
    window.add("before", 0.0)
    window.track()
    window.add("a", 10.0)
    window.add("b", 10.0)
    window.forget("b")
    assert window.take_added() == ["before", "a"]
    assert window.take_added() == []
    window.prune(105.0)  # "before" (expires 100) leaves
    assert set(window.expiry) == {"a"}
    window.restore([("late", 300.0), ("early", 200.0)])
    assert list(window.order) == ["a", "early", "late"] and window.take_added() == []


def test_the_rocksdb_store_lists_campaigns_without_id_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = build_worker(
        Settings(worker_data_dir=str(tmp_path), app_id="ids", redis_publish_enabled=False)
    )
    worker.app.conf.datadir = tmp_path
    store = worker.campaigns.data
    assert isinstance(store, CampaignStore)
    db = store._db_for_partition(0)
    for cid in ("c1", "c10"):
        db[cid.encode()] = stored_codec.dumps(_stored(cid))
        for offset in (1, 2):
            key, value = _record(cid, offset, f"{cid}-{offset}")
            db[key] = value
    assert [split_key(k) for k, _ in store.saved(campaign_prefix("c1"), 0)] == [
        ("c1", topics.SPEND, 1),
        ("c1", topics.SPEND, 2),
    ]
    topic = store.table.changelog_topic.get_topic_name()
    monkeypatch.setattr(worker.app.assignor, "assigned_actives", lambda: {TP(topic, 0)})
    assert sorted(store) == ["c1", "c10"] and len(store) == 2
