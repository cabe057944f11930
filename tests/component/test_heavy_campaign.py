"""A campaign with a million spend events in a day: its table value stays the size of
its first hours and the ids a record adds make one small changelog record.

Through the worker's processor (decode -> engine -> the records the worker writes), with
a clock that walks through one local day; the event ids go to records of their own
(``streams.event_ids``: one per input record), so nothing in the value is per event.
Before, the value carried the whole event-id window and outgrew the record size limit
at about 150,000 events.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pacer_stream.core.types import (
    CampaignConfig,
    ChannelConfig,
    ChannelType,
    PacingStrategy,
    SpendEvent,
)
from pacer_stream.streams import stored as stored_codec
from pacer_stream.streams.clock import ManualClock
from pacer_stream.streams.event_ids import EventIdIndex
from pacer_stream.streams.names import TopicNames
from pacer_stream.streams.processor import Processor
from pacer_stream.streams.stored import Stored
from pacer_stream.wire import records, topics

EVENTS_PER_DAY = 1_000_000
PER_RECORD = 1_000
#: The changelog topic's record limit the value must stay far below.
MAX_VALUE = 64 * 1024
CHANNELS = (ChannelType.GOOGLE_ADS, ChannelType.DISPLAY)


def test_a_million_events_a_day_keep_the_value_small() -> None:
    names = TopicNames()
    clock = ManualClock(datetime(2026, 3, 2, 0, 0, 1, tzinfo=UTC))
    processor = Processor(names=names, clock=clock)
    index = EventIdIndex("campaigns-changelog")
    table: dict[str, Stored] = {}
    cid = "heavy-campaign"

    def lookup(campaign_id: str) -> Stored | None:
        value = table.get(campaign_id)
        if value is not None:
            index.attach(value)
        return value

    config = CampaignConfig(
        cid,
        {ch: ChannelConfig(10**15) for ch in CHANNELS},
        PacingStrategy.EVEN_DISTRIBUTION,
    )
    budget = records.encode_budget(config, updated_at=clock.now())
    result = processor.handle(names.budgets, 0, 0, cid.encode(), budget, lookup)
    assert result.store is not None
    table[cid] = result.store

    records_per_day = EVENTS_PER_DAY // PER_RECORD
    step_s = 86_000 / records_per_day
    sizes: list[int] = []
    largest_id_record = 0
    n = 0
    for offset in range(records_per_day):
        at = clock.advance(step_s)
        events = [
            SpendEvent(f"ev-{n + i:08d}", cid, CHANNELS[i % 2], 1_000, at, clicks=1)
            for i in range(PER_RECORD)
        ]
        n += PER_RECORD
        payload = records.encode_spend_batch(cid, events)
        result = processor.handle(names.spend, 0, offset, cid.encode(), payload, lookup)
        assert result.status == "applied" and result.store is not None
        index.attach(result.store)
        writes = index.writes(result.store, offset, topics.SPEND)
        assert len(writes) == 1  # one record holds the ids the batch added
        id_bytes = len(writes[0].key or b"") + len(writes[0].value or b"")
        largest_id_record = max(largest_id_record, id_bytes)
        sizes.append(len(stored_codec.dumps(result.store)))

    state = table[cid].state
    assert sum(ch.spent_total for ch in state.channels.values()) == EVENTS_PER_DAY * 1_000
    assert len(state.dedupe) == EVENTS_PER_DAY  # every id is still remembered
    assert max(sizes) < MAX_VALUE
    # After the first hour the value only changes in its numbers, not in its length.
    assert max(sizes) - sizes[records_per_day // 24] < 2_048
    assert largest_id_record < 40 * PER_RECORD  # ~30 bytes per id
