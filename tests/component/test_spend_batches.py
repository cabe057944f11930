"""Batched spend records through the worker's spend agent: each event is judged on its
own, a refused event goes to the DLQ alone with its index, duplicates count once, and
the batch is one input offset (a replay of it is a no-op)."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import orjson
from faust.types.tuples import Message as FaustMessage

from pacer_stream.core import serde
from pacer_stream.core.types import SpendEvent
from pacer_stream.streams import event_ids
from pacer_stream.wire import records, topics

from .test_agents import GOOGLE, NOON, Harness, _configure, cid, worker

__all__ = ["cid", "worker"]  # fixtures shared with the agents' tests


def _event(cid: str, event_id: str, amount: int, **kw: Any) -> SpendEvent:
    return SpendEvent(event_id, cid, kw.pop("channel", GOOGLE), amount, kw.pop("at", NOON), **kw)


def _event_json(cid: str, event_id: str, amount: Any, **kw: Any) -> dict[str, Any]:
    data = {
        "event_id": event_id,
        "channel": GOOGLE.value,
        "amount_micros": amount,
        "event_time": records.format_time(NOON),
        "clicks": 1,
        "conversions": 0,
    }
    data.update(kw)
    return data


def _batch(cid: str, events: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"schema_version": 1, "campaign_id": cid, "events": events})


async def test_a_batch_applies_its_good_events_and_parks_each_bad_one_alone(
    worker: Harness, cid: str
) -> None:
    await _configure(worker, cid)
    worker.drain()
    future = records.format_time(NOON + timedelta(hours=2))
    payload = _batch(
        cid,
        [
            _event_json(cid, "a", 1_000_000),
            _event_json(cid, "bad-amount", -5),  # index 1: malformed
            _event_json(cid, "b", 2_000_000),
            _event_json(cid, "too-early", 3_000_000, event_time=future),  # index 3: engine
            _event_json(cid, "a", 1_000_000),  # index 4: duplicate inside the batch
            _event_json(cid, "other", 4_000_000, campaign_id="someone-else"),  # index 5
        ],
    )
    async with worker.m.spend_events.test_context() as agent:
        await worker.put(agent, payload, key=cid.encode(), partition=0)
    outs = worker.drain()
    assert worker.state(cid).channels[GOOGLE].spent_total == 3_000_000
    assert worker.state(cid).offsets[topics.SPEND] == 0
    assert len(worker.changelog(outs)) == 1  # one write for the whole batch
    dlq = [o.json() for o in worker.on(outs, topics.DLQ)]
    assert [d["batch_index"] for d in dlq] == [1, 3, 5]
    assert dlq[1]["error_code"] == "time_in_future"
    for d in dlq:
        assert (d["partition"], d["offset"]) == (0, 0)
        assert base64.b64decode(d["key_b64"]) == cid.encode()
        parked = orjson.loads(base64.b64decode(d["payload_b64"]))
        assert parked["event_id"] in {"bad-amount", "too-early", "other"}


async def test_a_replayed_batch_and_a_producer_retry_count_once(worker: Harness, cid: str) -> None:
    await _configure(worker, cid)
    first = records.encode_spend_batch(cid, [_event(cid, f"e{i}", 1_000_000) for i in range(10)])
    retry = records.encode_spend_batch(  # overlaps the first batch by five events
        cid, [_event(cid, f"e{i}", 1_000_000) for i in range(5, 15)]
    )
    async with worker.m.spend_events.test_context() as agent:
        await worker.put(agent, first, key=cid.encode())  # offset 0
        await worker.put(agent, retry, key=cid.encode())  # offset 1
        before = serde.dumps(worker.state(cid))
        agent.sent_offset = 0  # a crash replays both records
        await worker.put(agent, first, key=cid.encode())
        await worker.put(agent, retry, key=cid.encode())
    assert serde.dumps(worker.state(cid)) == before
    assert worker.state(cid).channels[GOOGLE].spent_total == 15_000_000


async def test_a_malformed_envelope_parks_the_whole_batch(worker: Harness, cid: str) -> None:
    await _configure(worker, cid)
    worker.drain()
    bad = orjson.dumps({"schema_version": 1, "campaign_id": cid, "events": "nope"})
    async with worker.m.spend_events.test_context() as agent:
        await worker.put(agent, bad, key=cid.encode())
    outs = worker.drain()
    (dlq,) = [o.json() for o in worker.on(outs, topics.DLQ)]
    assert base64.b64decode(dlq["payload_b64"]) == bad
    assert dlq.get("batch_index") is None
    assert worker.changelog(outs) == []
    assert worker.state(cid).channels[GOOGLE].spent_total == 0


async def test_single_events_and_batches_mix_on_one_campaign(worker: Harness, cid: str) -> None:
    await _configure(worker, cid)
    single = records.encode_spend(_event(cid, "s1", 500_000))
    batch = records.encode_spend_batch(cid, [_event(cid, "s1", 500_000), _event(cid, "b1", 7)])
    async with worker.m.spend_events.test_context() as agent:
        await worker.put(agent, single, key=cid.encode())
        await worker.put(agent, batch, key=cid.encode())
    assert worker.state(cid).channels[GOOGLE].spent_total == 500_007


async def test_single_event_records_taken_in_one_batch_share_one_id_record(
    worker: Harness, cid: str
) -> None:
    """The ids of a campaign's records applied in one batch are one changelog record,
    keyed by the campaign's last input offset of the batch (so the value written with
    or after the batch covers it); a replay of the batch adds nothing."""
    await _configure(worker, cid)
    worker.drain()
    other = f"{cid}-other"
    await _configure(worker, other)
    worker.drain()
    spend_topic = worker.names.actual(topics.SPEND)

    def taken(offset: int, campaign: str, event_id: str) -> Any:
        payload = records.encode_spend(_event(campaign, event_id, 1_000_000))
        message = FaustMessage(
            spend_topic, 0, offset, 0.0, 0, None, campaign.encode(), payload, None
        )
        return message

    batch = [
        taken(10, cid, "a"),
        taken(11, other, "x"),
        taken(12, cid, "b"),
        taken(13, cid, "c"),
    ]
    written = worker.m.process(batch)
    ids = [m for m in written if event_ids.is_id_key(m.key or b"")]
    by_campaign = {event_ids.split_key(m.key)[0]: m for m in ids}
    assert len(ids) == 2 and set(by_campaign) == {cid, other}
    assert event_ids.split_key(by_campaign[cid].key) == (cid, topics.SPEND, 13)
    assert [e for e, _ in event_ids.decode_ids(by_campaign[cid].value)] == ["a", "b", "c"]
    assert event_ids.split_key(by_campaign[other].key) == (other, topics.SPEND, 11)
    values = [m for m in written if m.key == cid.encode()]
    assert len(values) == 1 and worker.state(cid).offsets[topics.SPEND] == 13
    assert worker.state(cid).channels[GOOGLE].spent_total == 3_000_000

    again = worker.m.process(batch)  # a replay: every record at or below the mark
    assert [m for m in again if event_ids.is_id_key(m.key or b"")] == []
    assert worker.state(cid).channels[GOOGLE].spent_total == 3_000_000
