"""ValueWrites: which campaign values the spend path writes later, and what waits."""

from __future__ import annotations

import pytest

from pacer_stream.streams.value_writes import AckOrder, ValueWrites


class Record:
    """A consumed record's reference count and acknowledgement, as faust keeps them:
    acknowledged once the count drops to zero."""

    def __init__(self, tp: str = "spend-0", offset: int = 0) -> None:
        self.tp, self.offset = tp, offset
        self.refcount = 1
        self.acked = False

    def incref(self, n: int = 1) -> None:
        self.refcount += n

    def ack(self, consumer: list[tuple[str, int]], n: int = 1) -> bool:
        self.refcount -= n
        if self.refcount == 0 and not self.acked:
            self.acked = True
            consumer.append((self.tp, self.offset))
            return True
        return False


def test_zero_interval_never_holds() -> None:
    writes = ValueWrites(0.0)
    writes.written("c", 100.0)
    assert not writes.defer("c", 100.0, [Record()])
    assert writes.held_records() == 0


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


def _consume(acks: AckOrder, records: list[Record], held: set[tuple[str, int]]) -> None:
    """What the spend agent does with a batch: hold the deferred records and those
    behind a held one, then the stream acknowledges every record once."""
    parked = []
    for r in records:
        if (r.tp, r.offset) in held:
            acks.hold(r)
        elif acks.behind(r):
            acks.hold(r)
            parked.append(r)
    for r in records:
        r.ack(COMMITTABLE)
    acks.release(parked, COMMITTABLE)


COMMITTABLE: list[tuple[str, int]] = []


def test_acknowledgements_follow_offset_order_per_partition() -> None:
    """A record after a held one on its partition is not acknowledged before it (the
    consumer would commit past the held one); other partitions go on."""
    COMMITTABLE.clear()
    acks = AckOrder()
    p0 = [Record("p0", o) for o in range(5)]
    p1 = [Record("p1", o) for o in range(3)]
    _consume(acks, p0[:3] + p1, held={("p0", 1)})
    # p0: 0 free, 1 held, 2 behind it; p1 untouched
    assert COMMITTABLE == [("p0", 0), ("p1", 0), ("p1", 1), ("p1", 2)]
    assert len(acks) == 2 and acks.behind(p0[3])
    _consume(acks, p0[3:], held=set())
    assert [o for tp, o in COMMITTABLE if tp == "p0"] == [0]
    assert acks.release([p0[1]], COMMITTABLE) == 4  # 1, then 2, 3, 4 waiting behind it
    assert [o for tp, o in COMMITTABLE if tp == "p0"] == [0, 1, 2, 3, 4]
    assert len(acks) == 0 and not acks.behind(p0[4])


def test_held_records_released_out_of_order_wait_for_the_oldest() -> None:
    COMMITTABLE.clear()
    acks = AckOrder()
    rs = [Record("p", o) for o in range(4)]
    _consume(acks, rs, held={("p", 0), ("p", 2)})
    assert COMMITTABLE == []
    acks.release([rs[2]], COMMITTABLE)  # a later campaign's write delivered first
    assert COMMITTABLE == []
    acks.release([rs[0]], COMMITTABLE)
    assert COMMITTABLE == [("p", 0), ("p", 1), ("p", 2), ("p", 3)]
    assert all(r.refcount == 0 for r in rs)


def test_holding_twice_and_releasing_unknown_records_change_nothing() -> None:
    COMMITTABLE.clear()
    acks = AckOrder()
    r = Record("p", 0)
    acks.hold(r)
    acks.hold(r)
    assert r.refcount == 2 and len(acks) == 1
    assert acks.release([Record("p", 9)], COMMITTABLE) == 0
    r.ack(COMMITTABLE)  # the stream's own acknowledgement
    assert acks.release([r], COMMITTABLE) == 1 and COMMITTABLE == [("p", 0)]


def test_a_campaign_that_leaves_gives_back_its_held_records_without_a_write() -> None:
    writes = ValueWrites(1.0)
    writes.written("c", 100.0)
    r = Record()
    writes.defer("c", 100.5, [r])
    assert writes.drop("c") == [r]
    assert "c" not in writes and writes.drop("c") == []
    # no write was recorded: the next record is written at once
    assert not writes.defer("c", 100.6, [Record()])
