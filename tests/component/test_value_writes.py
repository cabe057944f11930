"""The spend path writes a campaign's value at most once per ``value_write_interval_s``:
records applied in between are held unacknowledged until the write that covers them is
delivered; outputs and other agents' writes never wait (see ``streams.value_writes``)."""

from __future__ import annotations

from typing import Any

from pacer_stream.core.types import ChannelType
from pacer_stream.streams.faust_app import StoredCodec
from pacer_stream.wire import topics

from .test_agents import GOOGLE, NOON, Harness, _budget, _configure, _harness, _spend


def _values(w: Harness, outs: list[Any], cid: str) -> list[Any]:
    """The campaign's values written to the changelog, decoded."""
    codec = StoredCodec()
    return [codec._loads(o.value).state for o in w.changelog(outs) if o.key == cid.encode()]


def _acked(records: tuple[Any, ...]) -> list[bool]:
    return [bool(r.acked) for r in records]


async def _spends(w: Harness, cid: str, *amounts: int, prefix: str = "e", offset: int = 0) -> None:
    async with w.m.spend_events.test_context() as agent:
        agent.sent_offset = offset  # the input offset of the first record
        for i, amount in enumerate(amounts):
            await w.put(agent, _spend(cid, f"{prefix}{i}", amount, NOON), key=cid.encode())


async def test_spend_inside_the_interval_is_held_then_written_once(tmp_path: Any) -> None:
    w = _harness(tmp_path, value_write_interval_s=1.0)
    cid = "held-once"
    await _configure(w, cid)  # writes the value: the interval starts now
    w.drain()
    await _spends(w, cid, 1_000, 2_000, 3_000)
    outs = w.drain()
    # applied at once (decisions see it), ids recorded, the value not written yet
    assert w.state(cid).channels[GOOGLE].spent_total == 6_000
    assert _values(w, outs, cid) == []
    assert len(w.id_records(outs)) == 3
    held = w.m.value_writes.held(cid)
    assert len(held) == 3 and _acked(held) == [False] * 3

    w.clock.advance(0.5)
    assert await w.m.write_held() == 0  # interval not over
    assert w.drain() == [] and _acked(held) == [False] * 3

    w.clock.advance(0.5)
    assert await w.m.write_held() == 1
    [value] = _values(w, w.drain(), cid)
    assert value.channels[GOOGLE].spent_total == 6_000
    assert value.offsets[topics.SPEND] == 2  # covers every held record
    assert _acked(held) == [True] * 3  # acknowledged once the covering write is delivered
    assert w.m.value_writes.held(cid) == ()

    # a spend more than an interval after the last write is written at once
    w.clock.advance(1.5)
    await _spends(w, cid, 4_000, prefix="late", offset=3)
    [value] = _values(w, w.drain(), cid)
    assert value.channels[GOOGLE].spent_total == 10_000
    assert w.m.value_writes.held(cid) == ()


async def test_a_record_with_outputs_writes_the_held_value_at_once(tmp_path: Any) -> None:
    """An output is published only after the state that produced it is delivered: the
    spend that trips the breaker writes the value (with the held spends) right away."""
    w = _harness(tmp_path, value_write_interval_s=1.0)
    cid = "held-runaway"
    await _configure(w, cid)
    w.drain()
    await _spends(w, cid, 1_000, 2_000)
    held = w.m.value_writes.held(cid)
    assert len(held) == 2
    await _spends(w, cid, *([240_000_000] * 4), prefix="big", offset=2)
    outs = w.drain()
    assert [o.json()["state"] for o in w.on(outs, topics.BREAKERS)] == ["open"]
    values = _values(w, outs, cid)
    assert values and values[0].channels[GOOGLE].spent_total >= 3_000 + 240_000_000
    assert values[-1].offsets[topics.SPEND] == 5
    first_value = min(i for i, o in enumerate(outs) if o in w.changelog(outs))
    first_breaker = min(i for i, o in enumerate(outs) if o in w.on(outs, topics.BREAKERS))
    assert first_value < first_breaker
    assert _acked(held) == [True, True]
    assert w.m.value_writes.held(cid) == ()


async def test_a_budget_write_carries_the_held_spend(tmp_path: Any) -> None:
    w = _harness(tmp_path, value_write_interval_s=1.0)
    cid = "held-budget"
    await _configure(w, cid)
    w.drain()
    await _spends(w, cid, 7_000)
    held = w.m.value_writes.held(cid)
    async with w.m.budgets.test_context() as agent:
        agent.sent_offset = 1  # the budget after the first one
        await w.put(agent, _budget(cid), key=cid.encode())
    [value] = _values(w, w.drain(), cid)
    assert value.channels[GOOGLE].spent_total == 7_000
    assert value.offsets[topics.SPEND] == 0
    assert _acked(held) == [True]


async def test_revocation_writes_every_held_value(tmp_path: Any) -> None:
    w = _harness(tmp_path, value_write_interval_s=30.0)
    cids = ["held-a", "held-b"]
    for cid in cids:
        await _configure(w, cid)
        await _spends(w, cid, 5_000)
    w.drain()
    assert w.m.value_writes.held_records() == 2
    assert await w.m.write_held() == 0
    assert await w.m.write_held(everything=True) == 2
    outs = w.drain()
    assert {v.campaign_id for cid in cids for v in _values(w, outs, cid)} == set(cids)
    assert w.m.value_writes.held_records() == 0


async def test_a_held_campaign_that_cannot_be_written_parks_its_records(
    tmp_path: Any,
) -> None:
    """The held records were applied to a value that is now dropped: each goes to the
    DLQ with its own bytes (replayable), and is acknowledged."""
    w = _harness(tmp_path, value_write_interval_s=1.0)
    cid = "held-broken"
    await _configure(w, cid)
    w.drain()
    await _spends(w, cid, 1_000, 2_000)
    held = w.m.value_writes.held(cid)
    w.state(cid).channels[ChannelType.DISPLAY].clicks_today = 2**70  # cannot be encoded
    try:
        w.clock.advance(1)
        await w.m.write_held()
        outs = w.drain()
        dlq = [o.json() for o in w.on(outs, topics.DLQ)]
        assert [d["error_code"] for d in dlq] == ["state_write_failed"] * 2
        assert sorted(d["offset"] for d in dlq) == [0, 1]
        assert _values(w, outs, cid) == []
        assert _acked(held) == [True, True]
        assert cid in w.m.quarantined and w.m.value_writes.held(cid) == ()
    finally:
        w.m.quarantined.discard(cid)


async def test_a_record_behind_a_held_one_is_acknowledged_after_it(tmp_path: Any) -> None:
    """The consumer commits the first run of acknowledged offsets: a record written at
    once but behind a held one on its partition waits for it, or a commit could skip
    the held record."""
    w = _harness(tmp_path, value_write_interval_s=1.0)
    await _configure(w, "quiet")
    w.clock.advance(2.0)
    await _configure(w, "busy")  # written just now: its next spend is held
    w.drain()
    held: list[Any] = []
    async with w.m.spend_events.test_context() as agent:
        await w.put(agent, _spend("busy", "b1", 1_000, NOON), key=b"busy")  # offset 0
        await w.put(agent, _spend("quiet", "q1", 1_000, NOON), key=b"quiet")  # offset 1
    outs = w.drain()
    assert [v.campaign_id for v in _values(w, outs, "quiet")] == ["quiet"]  # at once
    assert _values(w, outs, "busy") == []
    held = [*w.m.value_writes.held("busy")]
    assert len(held) == 1 and len(w.m.acks) == 2  # the quiet record waits behind it
    w.clock.advance(1.0)
    await w.m.write_held()
    assert [v.campaign_id for v in _values(w, w.drain(), "busy")] == ["busy"]
    assert len(w.m.acks) == 0 and _acked(tuple(held)) == [True]
