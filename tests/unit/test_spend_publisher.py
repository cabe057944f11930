"""SpendPublisher packs events per campaign into batched records within the wire limits.

The publisher's port is ``send(topic, key, value)``; here it is a recorder (no broker),
so what is checked is exactly what would be produced.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from pacer_stream.client.publisher import SpendPublisher
from pacer_stream.core.types import ChannelType, SpendEvent
from pacer_stream.errors import InvalidArgument, InvalidRecord
from pacer_stream.wire import records, topics
from pacer_stream.wire.records import SpendBatchRecord, SpendRecord

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def event(i: int, campaign: str = "camp-1", *, id_pad: str = "") -> SpendEvent:
    return SpendEvent(
        event_id=f"ev-{i}{id_pad}",
        campaign_id=campaign,
        channel=ChannelType.GOOGLE_ADS,
        amount_micros=1_000 + i,
        event_time=T0,
    )


class Recorder:
    """The publisher's send port: keeps every record; can be told to fail."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.fail: Exception | None = None

    async def __call__(self, topic: str, key: bytes, value: bytes) -> None:
        await asyncio.sleep(0)  # a real send yields to the loop
        if self.fail is not None:
            raise self.fail
        self.sent.append((topic, key, value))

    def batches(self) -> list[SpendBatchRecord]:
        out = []
        for _topic, key, value in self.sent:
            rec = records.decode(topics.SPEND, value)
            assert isinstance(rec, SpendBatchRecord)
            assert key == rec.campaign_id.encode()
            out.append(rec)
        return out


async def test_events_of_one_campaign_share_a_record_and_campaigns_do_not() -> None:
    send = Recorder()
    pub = SpendPublisher(send, "pacer.spend.v1", linger_s=60)
    for i in range(5):
        pub.publish(event(i, "camp-a"))
    for i in range(3):
        pub.publish(event(i, "camp-b"))
    assert send.sent == []  # lingering: nothing left before the flush
    await pub.flush()
    by_campaign = {b.campaign_id: [e.event_id for e in b.events] for b in send.batches()}
    assert by_campaign == {
        "camp-a": [f"ev-{i}" for i in range(5)],
        "camp-b": [f"ev-{i}" for i in range(3)],
    }
    assert (pub.records_sent, pub.events_sent) == (2, 8)
    assert {t for t, _, _ in send.sent} == {"pacer.spend.v1"}


async def test_the_linger_sends_a_batch_without_a_flush() -> None:
    send = Recorder()
    pub = SpendPublisher(send, "spend", linger_s=0.001)
    await asyncio.wait_for(pub.publish(event(1)), timeout=5)
    assert [e.event_id for b in send.batches() for e in b.events] == ["ev-1"]


async def test_a_full_batch_leaves_at_once_and_the_rest_waits() -> None:
    send = Recorder()
    pub = SpendPublisher(send, "spend", linger_s=60, max_events=4)
    futures = [pub.publish(event(i)) for i in range(10)]
    await asyncio.gather(*futures[:8])  # two full batches went without a flush
    assert [len(b.events) for b in send.batches()] == [4, 4]
    assert not futures[9].done()
    await pub.flush()
    assert [len(b.events) for b in send.batches()] == [4, 4, 2]
    amounts = [e.amount_micros for b in send.batches() for e in b.events]
    assert amounts == [1_000 + i for i in range(10)]


async def test_batches_stay_within_the_byte_cap() -> None:
    send = Recorder()
    cap = 8 * 1024
    pub = SpendPublisher(send, "spend", linger_s=60, max_bytes=cap)
    for i in range(200):
        pub.publish(event(i, id_pad="x" * 100))
    await pub.flush()
    sizes = [len(v) for _, _, v in send.sent]
    assert len(sizes) > 1 and max(sizes) <= cap
    assert sum(len(b.events) for b in send.batches()) == 200


async def test_wire_limits_are_the_defaults_and_cannot_be_exceeded() -> None:
    pub = SpendPublisher(Recorder(), "spend")
    assert (pub.max_events, pub.max_bytes) == (records.MAX_BATCH_EVENTS, records.MAX_BATCH_BYTES)
    with pytest.raises(ValueError):
        SpendPublisher(Recorder(), "spend", max_events=records.MAX_BATCH_EVENTS + 1)
    with pytest.raises(ValueError):
        SpendPublisher(Recorder(), "spend", max_bytes=records.MAX_BATCH_BYTES + 1)
    with pytest.raises(ValueError):
        SpendPublisher(Recorder(), "spend", linger_s=-1)


async def test_a_failed_send_reaches_the_futures_and_the_flush() -> None:
    send = Recorder()
    send.fail = ConnectionError("broker gone")
    pub = SpendPublisher(send, "spend", linger_s=60)
    futures = [pub.publish(event(i)) for i in range(3)]
    with pytest.raises(ConnectionError):
        await pub.flush()
    for fut in futures:
        with pytest.raises(ConnectionError):
            await fut
    send.fail = None  # the failure was reported once; a retry of the same ids goes out
    for i in range(3):
        pub.publish(event(i))
    await pub.flush()
    assert [e.event_id for b in send.batches() for e in b.events] == ["ev-0", "ev-1", "ev-2"]


async def test_a_bad_event_or_source_is_refused_at_once_with_the_workers_code() -> None:
    send = Recorder()
    pub = SpendPublisher(send, "spend", linger_s=60)
    with pytest.raises(InvalidRecord) as info:
        pub.publish(event(1, id_pad="\x00"))
    assert info.value.code == "invalid_id"
    with pytest.raises(InvalidArgument):
        SpendPublisher(send, "spend", source=" ")
    pub.publish(event(2))  # the refused event left nothing behind
    await pub.flush()
    assert [e.event_id for b in send.batches() for e in b.events] == ["ev-2"]


async def test_records_are_what_the_batch_encoder_writes() -> None:
    """Events are encoded once, on publish; the record joins them and is byte for byte
    what the generic encoder writes for the same batch."""
    send = Recorder()
    pub = SpendPublisher(send, "spend", linger_s=60, source="connector-1")
    events = [event(i) for i in range(3)]
    for e in events:
        pub.publish(e)
    await pub.flush()
    batch = SpendBatchRecord(
        "camp-1", tuple(SpendRecord.from_core(e) for e in events), (0, 1, 2), source="connector-1"
    )
    assert [v for _, _, v in send.sent] == [records.encode(batch)]
