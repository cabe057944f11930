"""The table value's codec: JSON, compressed above a size, older forms still load."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from pacer_stream.core import serde
from pacer_stream.core.engine import PacingEngine
from pacer_stream.core.types import (
    CampaignConfig,
    ChannelConfig,
    ChannelType,
    PacingStrategy,
    SpendEvent,
)
from pacer_stream.streams import stored as stored_codec
from pacer_stream.streams.stored import Stored

NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
ENGINE = PacingEngine()
CHANNELS = [ChannelType.GOOGLE_ADS, ChannelType.DISPLAY, ChannelType.FACEBOOK_ADS]


def _busy(cid: str = "busy") -> Stored:
    cfg = CampaignConfig(
        cid, {c: ChannelConfig(10_000_000_000) for c in CHANNELS}, PacingStrategy.EVEN_DISTRIBUTION
    )
    start = NOON - timedelta(hours=11)
    state, _ = ENGINE.configure(None, cfg, start)
    for k in range(300):
        t = start + timedelta(minutes=2 * k + 1)
        event = SpendEvent(f"e{k}", cid, CHANNELS[k % 3], 5_000 + k, t, clicks=k % 2)
        ENGINE.record_spend(state, event, t)
    state.dedupe = type(state.dedupe)()  # event ids are records of their own
    return Stored(state, partition=3, nonces={"n1": 1.0e9}, config_applied_at=1.0e9)


def test_a_large_value_is_stored_compressed_and_round_trips() -> None:
    value = _busy()
    data = stored_codec.dumps(value)
    assert data[:1] == stored_codec.COMPRESSED
    text = stored_codec.json_of(data)
    assert text[:1] == b"{" and len(data) * 3 < len(text)  # it pays for itself
    again = stored_codec.loads(data)
    assert again.state == value.state
    assert (again.partition, again.nonces, again.config_applied_at) == (3, {"n1": 1.0e9}, 1.0e9)


def test_a_value_stored_uncompressed_still_loads() -> None:
    value = _busy("plain")
    text = stored_codec.json_of(stored_codec.dumps(value))
    assert stored_codec.loads(text).state == value.state


def test_a_small_value_stays_plain_json() -> None:
    state, _ = ENGINE.configure(
        None, CampaignConfig("s", {}, PacingStrategy.EVEN_DISTRIBUTION), NOON
    )
    data = stored_codec.dumps(Stored(state, 0))
    assert len(data) <= stored_codec.COMPRESS_ABOVE
    assert orjson.loads(data)["v"] == stored_codec.FORMAT_VERSION


def test_a_corrupt_compressed_value_is_a_serde_error_not_a_crash() -> None:
    data = stored_codec.dumps(_busy("corrupt"))
    with pytest.raises(serde.SerdeError):
        stored_codec.loads(data[:-20])
    with pytest.raises(serde.SerdeError):
        stored_codec.loads(stored_codec.COMPRESSED + zlib.compress(b"not json"))
