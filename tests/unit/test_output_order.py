"""Which outputs of a batch wait for its changelog writes: only those reporting the
state of a campaign the batch wrote (so no reply waits on another campaign's write)."""

from __future__ import annotations

from pacer_stream.streams.app import split_outputs
from pacer_stream.streams.processor import Message

CHANGELOG = "app-campaigns-changelog"


def test_outputs_of_written_campaigns_wait_and_the_rest_go_at_once() -> None:
    batch = [
        Message(CHANGELOG, b"c1", b"state-1", 0),
        Message("replies", b"c1", b"grant-1", None, "c1"),
        Message("replies", b"c2", b"denial-2", None, "c2"),  # c2 was not written
        Message("dlq", b"c1", b"bad", None, None),  # reports no state
        Message("breakers", b"c1:display", b"open", None, "c1"),
        Message("alerts", b"c3", b"alert-3", None, "c3"),
    ]
    at_once, after = split_outputs(batch, CHANGELOG)
    assert [m.value for m in at_once] == [b"denial-2", b"bad", b"alert-3"]
    assert [m.value for m in after] == [b"grant-1", b"open"]  # in their batch order


def test_a_campaign_id_with_a_colon_is_matched_whole() -> None:
    batch = [
        Message(CHANGELOG, b"a:b", b"state", 0),
        Message("breakers", b"a:b:display", b"open", None, "a:b"),
        Message("breakers", b"a:display", b"open", None, "a"),
    ]
    at_once, after = split_outputs(batch, CHANGELOG)
    assert [m.key for m in after] == [b"a:b:display"]
    assert [m.key for m in at_once] == [b"a:display"]
