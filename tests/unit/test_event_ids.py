"""Event ids as records of their own (``streams.event_ids``): what an input record writes,
how a window is rebuilt from saved records after a crash, and when ids leave.

The saved records come from a plain dict here (the ``SavedIds`` port); the RocksDB
store's prefix scan is tested against a real database at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
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
    COVERED,
    EventIdIndex,
    IdEntry,
    campaign_prefix,
    decode_entry,
    encode_entry,
    id_key,
    is_entry,
    is_id_key,
    split_id_key,
)
from pacer_stream.streams.processor import Message
from pacer_stream.streams.stored import Stored
from pacer_stream.streams.table_store import CampaignStore
from pacer_stream.wire import topics

from .conftest import DAY0

CHANGELOG = "app-campaigns-changelog"
NOON = DAY0.replace(hour=12)
G = ChannelType.GOOGLE_ADS
ENGINE = PacingEngine()


class Saved:
    """A store's saved id records, as a dict (campaign id -> event id -> value)."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, bytes]] = {}

    def saved_ids(self, campaign_id: str, partition: int) -> Iterator[tuple[str, bytes]]:
        yield from self.records.get(campaign_id, {}).items()


def _stored(cid: str = "c1", partition: int = 0) -> Stored:
    cfg = CampaignConfig(cid, {G: ChannelConfig(1_000_000_000)}, PacingStrategy.EVEN_DISTRIBUTION)
    state, _ = ENGINE.configure(None, cfg, NOON)
    return Stored(state, partition)


def _spend(stored: Stored, event_id: str, minutes: int = 0) -> bool:
    at = NOON + timedelta(minutes=minutes)
    event = SpendEvent(event_id, stored.campaign_id, G, 1_000, at)
    return not ENGINE.record_spend(stored.state, event, at).duplicate


def _apply(index: EventIdIndex, stored: Stored, offset: int, *ids: str) -> list[Message]:
    """What the worker does with one spend record: attach, apply, take its writes."""
    index.attach(stored)
    for event_id in ids:
        _spend(stored, event_id)
    stored.state.offsets[topics.SPEND] = offset
    return index.writes(stored, offset, topics.SPEND)


def test_keys_sort_after_campaign_keys_and_split_back() -> None:
    key = id_key("camp-1", "ev:1").encode()
    assert is_id_key(key) and not is_id_key(b"camp-1")
    # every printable first character of a campaign id sorts before the id records
    assert max(b"camp-1", "\U000e01ef-campaign".encode()) < key
    assert split_id_key(key) == ("camp-1", "ev:1")
    assert key.startswith(campaign_prefix("camp-1"))
    assert not id_key("camp-10", "x").encode().startswith(campaign_prefix("camp-1"))


def test_entries_round_trip_and_name_only_a_non_spend_topic() -> None:
    spend = IdEntry(41, 1_800_000_000.5)
    command = IdEntry(7, 1_800_000_000.0, topics.COMMANDS)
    assert orjson.loads(encode_entry(spend)) == [41, 1_800_000_000.5]
    assert decode_entry(encode_entry(spend)) == spend
    assert decode_entry(encode_entry(command)) == command
    assert is_entry(encode_entry(spend))
    assert not is_entry(stored_codec.dumps(_stored()))


def test_a_record_writes_one_entry_per_new_id_and_nothing_for_a_duplicate() -> None:
    index = EventIdIndex(CHANGELOG)
    stored = _stored()
    writes = _apply(index, stored, 5, "a", "b", "a")
    assert [split_id_key(m.key or b"")[1] for m in writes] == ["a", "b"]
    assert all(m.topic == CHANGELOG and m.partition == 0 for m in writes)
    entry = decode_entry(writes[0].value or b"")
    assert entry.offset == 5 and entry.expires_at == stored.state.dedupe.expiry["a"]
    assert _apply(index, stored, 6, "a", "b") == []  # retries: nothing new
    # the campaign's value holds no ids at all
    assert "d" not in orjson.loads(stored_codec.dumps(stored))["s"]


def test_a_new_campaign_gets_its_window_after_the_record_that_created_it() -> None:
    index = EventIdIndex(CHANGELOG)
    stored = _stored("fresh")
    _spend(stored, "x")  # applied before the worker attached a window (a new campaign)
    index.attach(stored)
    writes = index.writes(stored, 3, topics.SPEND)
    assert [split_id_key(m.key or b"")[1] for m in writes] == ["x"]


def test_a_rebuilt_window_keeps_only_ids_the_saved_state_covers() -> None:
    saved = Saved()
    expires = NOON.timestamp() + 90_000
    saved.records["c1"] = {
        "old": encode_entry(IdEntry(3, expires)),
        "kept": encode_entry(IdEntry(COVERED, expires)),
        # written by a record whose campaign value a crash lost (mark is 4)
        "lost": encode_entry(IdEntry(9, expires)),
        "cmd": encode_entry(IdEntry(2, expires, topics.COMMANDS)),
    }
    stored = _stored()
    stored.state.offsets = {topics.SPEND: 4, topics.COMMANDS: 1}
    index = EventIdIndex(CHANGELOG, saved)
    index.attach(stored)
    window = stored.state.dedupe
    assert set(window.expiry) == {"old", "kept"}  # "cmd" is past the commands mark too
    assert not _spend(stored, "old")  # a duplicate after the restart
    # the record that lost its value is replayed: its id applies again, and is saved
    # again; the ids nobody replays get tombstones
    assert _spend(stored, "lost")
    writes = {split_id_key(m.key or b"")[1]: m.value for m in index.writes(stored, 9, topics.SPEND)}
    assert writes["lost"] is not None and decode_entry(writes["lost"]).offset == 9
    assert writes["cmd"] is None


def test_records_read_by_a_recovery_merge_into_a_window_at_its_next_use() -> None:
    index = EventIdIndex(CHANGELOG)
    stored = _stored()
    _apply(index, stored, 1, "a", "b")
    expires = NOON.timestamp() + 90_000
    index.recovered(id_key("c1", "c").encode(), encode_entry(IdEntry(1, expires)))
    index.recovered(id_key("c1", "a").encode(), None)  # another worker's tombstone
    index.attach(stored)
    assert set(stored.state.dedupe.expiry) == {"b", "c"}
    assert list(stored.state.dedupe.order) == sorted(
        stored.state.dedupe.expiry, key=stored.state.dedupe.expiry.__getitem__
    )
    assert index.writes(stored, 2, topics.SPEND) == []  # merged records are saved already


def test_a_fresh_value_object_gets_the_campaigns_window() -> None:
    index = EventIdIndex(CHANGELOG)
    stored = _stored()
    _apply(index, stored, 1, "a")
    again = stored_codec.loads(stored_codec.dumps(stored))  # re-read from the store
    assert len(again.state.dedupe) == 0
    index.attach(again)
    assert again.state.dedupe is stored.state.dedupe and "a" in again.state.dedupe.expiry


def test_ids_leave_after_the_window_only_on_owned_partitions() -> None:
    index = EventIdIndex(CHANGELOG)
    mine, theirs = _stored("mine", 0), _stored("theirs", 1)
    _apply(index, mine, 1, "a")
    _apply(index, theirs, 1, "b")
    later = NOON.timestamp() + mine.state.dedupe.window_s + 1
    assert index.expire(NOON.timestamp(), {0, 1}) == []
    gone = index.expire(later, {0})
    assert [(m.key, m.value, m.partition) for m in gone] == [
        (id_key("mine", "a").encode(), None, 0)
    ]
    assert "b" in theirs.state.dedupe.expiry


def test_a_removed_campaign_takes_its_ids_with_it() -> None:
    index = EventIdIndex(CHANGELOG)
    stored = _stored()
    _apply(index, stored, 1, "a", "b")
    gone = index.forget("c1")
    assert sorted(m.key for m in gone) == sorted(id_key("c1", e).encode() for e in "ab")
    assert all(m.value is None for m in gone)
    assert index.forget("c1") == []


def test_a_value_of_the_older_format_hands_its_ids_over_as_records() -> None:
    stored = _stored()
    _spend(stored, "legacy")
    old = orjson.loads(stored_codec.dumps(stored))
    old["v"] = 1
    old["s"] = serde.to_dict(stored.state)  # format 1 kept the window inside
    loaded = stored_codec.loads(orjson.dumps(old))
    assert "legacy" in loaded.state.dedupe.expiry
    index = EventIdIndex(CHANGELOG)
    index.attach(loaded)
    writes = index.writes(loaded, 7, topics.SPEND)
    assert [split_id_key(m.key or b"")[1] for m in writes] == ["legacy"]


def test_a_command_that_fails_is_not_remembered() -> None:
    stored = _stored()
    assert ENGINE.first_time(stored.state, "command", "cmd-1", NOON)
    ENGINE.forget_input(stored.state, "command", "cmd-1")
    assert ENGINE.first_time(stored.state, "command", "cmd-1", NOON)


def test_window_changes_are_listed_once_and_restore_keeps_expiry_order() -> None:
    window = DedupeWindow(window_s=100.0)
    window.add("before", 0.0)
    window.track()
    window.add("a", 10.0)
    assert window.take_changes() == ["before", "a"]
    assert window.take_changes() == []
    window.prune(105.0)  # "before" (expires 100) leaves
    window.forget("a")
    assert window.take_changes() == ["before", "a"] and len(window) == 0
    window.restore([("late", 300.0), ("early", 200.0)])
    assert list(window.order) == ["early", "late"] and window.take_changes() == []


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
        for event_id in ("x", "y"):
            db[id_key(cid, event_id).encode()] = encode_entry(IdEntry(1, 9e9))
    assert [e for e, _ in store.saved_ids("c1", 0)] == ["x", "y"]
    topic = store.table.changelog_topic.get_topic_name()
    monkeypatch.setattr(worker.app.assignor, "assigned_actives", lambda: {TP(topic, 0)})
    assert sorted(store) == ["c1", "c10"] and len(store) == 2
