"""The benchmark's echo servers answer a can-spend request with a reply the client
accepts: the floor they measure is a real round trip, not one the client drops."""

from __future__ import annotations

from datetime import UTC, datetime

from pacer_stream.bench.peers import echo_reply
from pacer_stream.core.types import ChannelType, Code
from pacer_stream.wire import records
from pacer_stream.wire.records import CanSpendReply, CanSpendRequest


def test_an_echo_reply_names_the_request_and_decodes_as_a_reply() -> None:
    request = CanSpendRequest(
        request_id="r-1",
        campaign_id="camp-7",
        channel=ChannelType.DISPLAY,
        amount_micros=1_000,
        requested_at=datetime(2026, 12, 7, 12, tzinfo=UTC),
        deadline_ms=100,
    )
    key, value = echo_reply(records.encode(request))
    reply = records.decode_as(CanSpendReply, value)
    assert key == b"camp-7"
    assert (reply.request_id, reply.campaign_id, reply.channel) == (
        "r-1",
        "camp-7",
        ChannelType.DISPLAY,
    )
    assert reply.allowed and reply.code is Code.OK
