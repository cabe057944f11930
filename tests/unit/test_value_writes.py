"""ValueWrites: which campaign values the spend path writes later, and what waits."""

from __future__ import annotations

import pytest

from pacer_stream.streams.value_writes import ValueWrites


class Record:
    """A consumed record's reference count, as faust keeps it."""

    def __init__(self) -> None:
        self.refcount = 1

    def incref(self, n: int = 1) -> None:
        self.refcount += n


def test_zero_interval_never_holds() -> None:
    writes = ValueWrites(0.0)
    writes.written("c", 100.0)
    r = Record()
    assert not writes.defer("c", 100.0, [r])
    assert r.refcount == 1 and writes.held_records() == 0


def test_a_campaign_not_written_lately_is_written_at_once() -> None:
    writes = ValueWrites(1.0)
    assert not writes.defer("c", 100.0, [Record()])  # never written
    writes.written("c", 100.0)
    assert not writes.defer("c", 101.0, [Record()])  # an interval ago


def test_records_inside_the_interval_are_held_until_the_next_write() -> None:
    writes = ValueWrites(1.0)
    writes.written("c", 100.0)
    a, b = Record(), Record()
    assert writes.defer("c", 100.2, [a])
    assert writes.defer("c", 100.4, [b])
    assert (a.refcount, b.refcount) == (2, 2)  # held: the stream's ack does not free them
    assert writes.held("c") == (a, b) and "c" in writes
    assert writes.due(100.9) == []
    assert writes.due(101.0) == ["c"]
    assert writes.written("c", 101.0) == [a, b]
    assert writes.held("c") == () and "c" not in writes
    # the new write starts a new interval
    assert writes.defer("c", 101.5, [Record()])


def test_once_held_a_campaign_keeps_holding_until_written() -> None:
    """Past the interval but not flushed yet: later records join the held ones, so the
    write that comes covers them all (never a write per record while one is due)."""
    writes = ValueWrites(1.0)
    writes.written("c", 100.0)
    writes.defer("c", 100.5, [Record()])
    assert writes.defer("c", 102.0, [Record()])
    assert len(writes.written("c", 102.0)) == 2


def test_due_is_per_campaign_and_forgets_old_write_times() -> None:
    writes = ValueWrites(1.0)
    writes.written("a", 100.0)
    writes.written("b", 100.5)
    writes.written("quiet", 100.0)
    writes.defer("a", 100.1, [Record()])
    writes.defer("b", 100.6, [Record()])
    assert writes.due(101.2) == ["a"]
    assert sorted(writes.holding()) == ["a", "b"]
    assert writes.held_records() == 2
    # "quiet" was written long ago and holds nothing: forgotten, so written at once
    assert not writes.defer("quiet", 101.2, [Record()])


def test_negative_interval_is_refused() -> None:
    with pytest.raises(ValueError):
        ValueWrites(-1.0)
