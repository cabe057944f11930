"""Where the bytes of a campaign's table value go, and what one applied event costs in
changelog bytes.

Why this exists: the worker writes a campaign's value to the changelog after every
applied batch, and each event id as a record of its own (:mod:`pacer_stream.streams.
event_ids`), so an applied event costs its id record, the id's tombstone when it
leaves the window, and its share of the value written after its batch. This measures
those on the real codecs (:mod:`pacer_stream.streams.stored` over
:mod:`pacer_stream.core.serde`):

* one campaign with one channel, configured for a day (a day's plan), then ``events``
  spend events with distinct ids spread over the day, each applied by the pure engine;
* the encoded value after the events (the same size whatever ``events`` is: the ids are
  not in it), broken down by section (each section's JSON size on its own, so the parts
  add up to roughly the whole);
* changelog bytes per applied event: with one event per batch (the worst case) and
  with a batch of ``batch`` events of that campaign.

Pure and deterministic (fixed day, no wall clock). ``python -m
pacer_stream.bench.state_bytes [EVENTS...]`` prints the figures as JSON.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from pacer_stream.core import serde
from pacer_stream.core.engine import PacingEngine
from pacer_stream.core.state import CampaignState
from pacer_stream.core.types import (
    CampaignConfig,
    ChannelConfig,
    ChannelType,
    PacingStrategy,
    SpendEvent,
)
from pacer_stream.streams import event_ids
from pacer_stream.streams import stored as stored_codec
from pacer_stream.streams.stored import Stored
from pacer_stream.wire import topics

#: A Monday with no DST change; the day starts at midnight UTC.
DAY: datetime = datetime(2026, 3, 2, tzinfo=UTC)
CHANNEL = ChannelType.GOOGLE_ADS


def campaign(events: int, *, budget_micros: int = 10**12) -> CampaignState:
    """One campaign/channel configured at 00:00 with ``events`` events over the day."""
    engine = PacingEngine()
    config = CampaignConfig(
        "bytes-campaign-0001",
        {CHANNEL: ChannelConfig(budget_micros)},
        PacingStrategy.EVEN_DISTRIBUTION,
    )
    state, _ = engine.configure(None, config, DAY)
    step = timedelta(seconds=86_000 / max(1, events))
    for i in range(events):
        at = DAY + step * i + timedelta(seconds=1)
        event = SpendEvent(f"evt-{i:09d}", state.campaign_id, CHANNEL, 1_000, at, clicks=1)
        engine.record_spend(state, event, at)
        state.offsets[topics.SPEND] = i
    return state


def breakdown(state: CampaignState) -> dict[str, int]:
    """JSON bytes of each section of the campaign's table value (campaign keys; channel
    keys prefixed ``ch.``)."""
    doc = serde.to_dict(state, dedupe=False)
    sizes: dict[str, int] = {}
    for key, value in doc.items():
        if key == "ch":
            continue
        sizes[key] = len(orjson.dumps(value))
    for ch in doc["ch"]:
        for key, value in ch.items():
            name = f"ch.{key}"
            sizes[name] = sizes.get(name, 0) + len(orjson.dumps(value))
    return dict(sorted(sizes.items(), key=lambda kv: -kv[1]))


def id_record_bytes(state: CampaignState, batch: int) -> tuple[float, float]:
    """Changelog bytes per event of the campaign's event-id records, when each record
    holds the ids of ``batch`` events (one input record), and of the deletions that
    remove them once they have left the window (key only, one per record)."""
    window = state.dedupe
    ids = list(window.expiry)
    if not ids:
        return 0.0, 0.0
    records = deletions = 0
    offset = state.offsets.get(topics.SPEND, 0)
    chunks = [ids[i : i + batch] for i in range(0, len(ids), batch)]
    for chunk in chunks:
        key = event_ids.record_key(state.campaign_id, topics.SPEND, offset).encode()
        records += len(key) + len(event_ids.encode_ids(window, chunk))
        deletions += len(key)
    return records / len(ids), deletions / len(ids)


def measure(events: int, *, batch: int = 1000) -> dict[str, Any]:
    """The figures for one campaign/channel after ``events`` events: the table value
    (the ids are not in it) and what an applied event costs the changelog -- its id
    record, its tombstone a window later, and its share of the value written after
    its batch."""
    state = campaign(events)
    value = stored_codec.dumps(Stored(state, partition=0))
    parts = breakdown(state)
    top = {k: v for k, v in list(parts.items())[:8]}
    single, single_deletion = id_record_bytes(state, 1)
    batched, batched_deletion = id_record_bytes(state, batch)
    return {
        "events": events,
        "value_bytes": len(value),
        "dedupe_ids": len(state.dedupe.expiry),
        "id_record_bytes_batch_1": round(single, 1),
        "id_deletion_bytes_batch_1": round(single_deletion, 1),
        f"id_record_bytes_batch_{batch}": round(batched, 1),
        "changelog_bytes_per_event_batch_1": round(len(value) + single + single_deletion, 1),
        f"changelog_bytes_per_event_batch_{batch}": round(
            len(value) / batch + batched + batched_deletion, 1
        ),
        "largest_sections": top,
    }


def main() -> None:  # pragma: no cover - manual use
    counts = [int(a) for a in sys.argv[1:]] or [0, 100, 1_000, 10_000]
    print(json.dumps([measure(n) for n in counts], indent=2))


if __name__ == "__main__":  # pragma: no cover
    main()
