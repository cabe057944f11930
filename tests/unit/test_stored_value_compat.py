"""Values written before the day plan, the minute rings and the offsets were packed
(``data/stored_value_before_compact_plan.json``: a campaign of two channels in Berlin
time, one spending without reservations, one with, a mid-day budget change and two
input offsets) still load, and are written back byte for byte: the stored shape did not
change, only what a value costs in memory once loaded."""

from __future__ import annotations

import json
from pathlib import Path

from pacer_stream.core import serde
from pacer_stream.core.state import Offsets
from pacer_stream.core.types import ChannelType
from pacer_stream.core.windows import UNAUTHORISED, VELOCITY
from pacer_stream.streams import stored as stored_codec
from pacer_stream.streams.stored import Stored

BEFORE = Path(__file__).parent / "data" / "stored_value_before_compact_plan.json"


def test_a_value_written_before_loads_and_is_written_back_unchanged() -> None:
    data = BEFORE.read_bytes()
    state = serde.loads(data)
    assert serde.dumps(state) == data
    doc = json.loads(data)
    stored = {c["c"]: c for c in doc["ch"]}
    assert doc["o"] == {"pacer.spend.v1": 123_456_789, "pacer.budgets.v1": 17}
    assert dict(state.offsets) == doc["o"]
    assert isinstance(state.offsets, Offsets)
    for ch in state.channels.values():
        plan = ch.plan
        assert plan is not None and ch.cum_plan.obj is plan.cum.obj  # the plan's own
        assert list(plan.amounts) == stored[ch.channel.value]["pa"]
        assert list(plan.caps) == stored[ch.channel.value]["pc"]
        assert ch.cum_plan[-1] == sum(plan.amounts) == ch.budget
    google = state.channels[ChannelType.GOOGLE_ADS]
    display = state.channels[ChannelType.DISPLAY]
    # 4-byte cumulative plan for the small budget, 8 bytes for the large one
    assert google.cum_plan.format == "i" and display.cum_plan.format == "q"
    # all of google's spend was unauthorised: its two rings share their slots
    assert google.unauthorised == google.velocity and len(google._rbuf) == 32
    assert not display.used(UNAUTHORISED) and display.used(VELOCITY)


def test_a_value_written_before_round_trips_through_the_table_codec() -> None:
    # the table value leaves the event ids out (they are records of their own)
    state = serde.loads(BEFORE.read_bytes())
    again = stored_codec.loads(stored_codec.dumps(Stored(state, partition=3)))
    assert again.partition == 3 and len(again.state.dedupe) == 0
    assert serde.to_dict(again.state, dedupe=False) == serde.to_dict(state, dedupe=False)
    again.state.dedupe = state.dedupe
    assert again.state == state and serde.dumps(again.state) == BEFORE.read_bytes()
