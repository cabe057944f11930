"""Decode cost of one spend record: the hand-written strict path, ``records.decode`` (the
msgspec model first), the bare msgspec model and an equivalent pydantic v2 strict model
(measured to choose the wire-model library).

Run: ``.venv/bin/python scripts/decode_cost.py`` (prints microseconds per record, best of
five runs of ``timeit``).
"""

from __future__ import annotations

import timeit
from datetime import UTC, datetime
from typing import Annotated, Literal

import msgspec
from pydantic import BaseModel, ConfigDict, Field

from pacer_stream import records, topics
from pacer_stream.core.money import MAX_MICROS
from pacer_stream.core.types import ChannelType
from pacer_stream.wire.models import ID_PATTERN, SpendWire

PAYLOAD = records.encode(
    records.SpendRecord(
        event_id="evt-000001",
        campaign_id="cmp-42",
        channel=ChannelType.GOOGLE_ADS,
        amount_micros=1_500_000,
        event_time=datetime(2026, 3, 2, 11, 59, 30, 123456, tzinfo=UTC),
        clicks=3,
        conversions=1,
        impressions=120,
        reservation_id="rsv-1",
    )
)

PId = Annotated[str, Field(min_length=1, max_length=256, pattern=ID_PATTERN)]
PCount = Annotated[int, Field(ge=0, le=MAX_MICROS)]


class SpendPydantic(BaseModel):
    """The spend record as a pydantic v2 strict model (same rules as ``SpendWire``)."""

    # the id pattern uses a look-ahead, which pydantic's default Rust regex refuses
    model_config = ConfigDict(
        strict=True, extra="forbid", frozen=True, regex_engine="python-re"
    )

    schema_version: Literal[1]
    event_id: PId
    campaign_id: PId
    channel: ChannelType
    amount_micros: PCount
    event_time: datetime
    clicks: PCount
    conversions: PCount
    impressions: PCount | None = None
    revenue_micros: PCount | None = None
    reservation_id: PId | None = None
    source: PId | None = None


_MSGSPEC = msgspec.json.Decoder(SpendWire)
_NO_WINDOW = records._NO_CONTEXT
CASES = {
    # the hand-written strict path alone: what records.decode cost before the models
    "strict hand-written path (before)": lambda: records._decode_obj(
        topics.SPEND, records._load(PAYLOAD, 1 << 16), _NO_WINDOW
    ),
    "records.decode (model fast path, after)": lambda: records.decode(topics.SPEND, PAYLOAD),
    "msgspec Struct (SpendWire)": lambda: _MSGSPEC.decode(PAYLOAD),
    "pydantic strict model_validate_json": lambda: SpendPydantic.model_validate_json(PAYLOAD),
}


def main() -> None:
    print(f"spend payload: {len(PAYLOAD)} bytes")
    for name, call in CASES.items():
        call()
        number = 20_000
        best = min(timeit.repeat(call, number=number, repeat=5)) / number
        print(f"{name:45s} {best * 1e6:7.2f} us/record")


if __name__ == "__main__":
    main()
