"""Grants as records of their own (``core.grants``, ``streams.grants``): what a grant
saves, how it is put back after a restart, and when its record is deleted."""

from __future__ import annotations

from collections.abc import Iterator

from pacer_stream.core.engine import PacingEngine
from pacer_stream.core.grants import grant_of, restore
from pacer_stream.core.types import (
    CampaignConfig,
    ChannelConfig,
    ChannelType,
    CircuitBreakerState,
    PacingStrategy,
)
from pacer_stream.streams import stored as stored_codec
from pacer_stream.streams.grants import (
    GrantLog,
    decode_grant,
    encode_grant,
    grant_key,
    is_grant_key,
    split_grant_key,
)
from pacer_stream.streams.stored import Stored
from pacer_stream.wire import topics

from .conftest import DAY0

NOON = DAY0.replace(hour=12)
G = ChannelType.GOOGLE_ADS
ENGINE = PacingEngine()
CHANGELOG = "app-campaigns-changelog"


class Saved:
    def __init__(self, records: dict[bytes, bytes]) -> None:
        self.records = records

    def saved(self, prefix: bytes, partition: int) -> Iterator[tuple[bytes, bytes]]:
        yield from ((k, v) for k, v in sorted(self.records.items()) if k.startswith(prefix))


def _stored(cid: str = "c1") -> Stored:
    cfg = CampaignConfig(cid, {G: ChannelConfig(1_000_000_000)}, PacingStrategy.EVEN_DISTRIBUTION)
    state, _ = ENGINE.configure(None, cfg, NOON)
    return Stored(state, 0)


def _grant(stored: Stored, request_id: str, offset: int, amount: int = 1_000_000) -> bytes:
    decision, _ = ENGINE.reserve(stored.state, G, amount, request_id, NOON)
    assert decision.allowed
    stored.state.offsets[topics.CAN_SPEND_REQUESTS] = offset
    grant = grant_of(stored.state, G, request_id)
    assert grant is not None
    return encode_grant(grant)


def test_a_restored_grant_is_the_grant_the_engine_made() -> None:
    made = _stored()
    before = stored_codec.dumps(made)  # the value as saved before the grant
    _grant(made, "r1", 5)
    grant = grant_of(made.state, G, "r1")
    assert grant is not None and decode_grant(encode_grant(grant)) == grant
    saved = stored_codec.loads(before)
    assert restore(saved.state, grant)
    assert not restore(saved.state, grant)  # the request is remembered now
    ch, made_ch = saved.state.channels[G], made.state.channels[G]
    assert ch.reserved_total == made_ch.reserved_total == 1_000_000
    assert ch.reservations == made_ch.reservations
    assert saved.state.answered == made.state.answered
    # a retry of the request gets the same hold back, nothing more
    retry, _ = ENGINE.reserve(saved.state, G, 1_000_000, "r1", NOON)
    assert retry.allowed and retry.reservation_id == grant.reservation_id
    assert ch.reserved_total == 1_000_000


def test_a_trial_on_a_half_open_channel_is_no_plain_grant() -> None:
    stored = _stored()
    ENGINE.force_breaker(stored.state, G, CircuitBreakerState.HALF_OPEN, NOON)
    decision, _ = ENGINE.reserve(stored.state, G, 1_000, "r1", NOON)
    assert decision.allowed and grant_of(stored.state, G, "r1") is None


def test_keys_name_the_campaign_and_the_request_offset() -> None:
    key = grant_key("camp-1", 42)
    assert is_grant_key(key) and not is_grant_key(b"camp-1")
    assert split_grant_key(key) == ("camp-1", 42)
    assert "\U000e01ef".encode()[:1] < b"\xf4"  # after every campaign key


def test_after_a_restart_grants_past_the_saved_mark_come_back() -> None:
    made = _stored()
    before = stored_codec.dumps(made)  # saved with the requests mark unset
    covered_made = _stored()
    records = {grant_key("c1", 3): _grant(made, "r-late", 3)}
    # a grant the saved value already carries (its mark is past it)
    saved_value = stored_codec.loads(before)
    records[grant_key("c1", 1)] = _grant(covered_made, "r-old", 1)
    saved_value.state.offsets[topics.CAN_SPEND_REQUESTS] = 2
    log = GrantLog(CHANGELOG, Saved(records))
    assert log.attach(saved_value) == 1
    ch = saved_value.state.channels[G]
    assert ch.reserved_total == 1_000_000 and "r-late" in saved_value.state.answered
    assert "r-old" not in saved_value.state.answered
    # the next value written carries r-late; both records go after it
    gone = log.covered("c1")
    assert sorted(m.key for m in gone) == sorted(records) and all(m.value is None for m in gone)
    assert log.covered("c1") == []


def test_a_grant_record_is_deleted_once_a_value_carries_it() -> None:
    stored = _stored()
    log = GrantLog(CHANGELOG)
    log.attach(stored)
    _grant(stored, "r1", 7)
    grant = grant_of(stored.state, G, "r1")
    assert grant is not None
    record = log.granted(stored, grant, 7)
    assert record.key == grant_key("c1", 7) and record.campaign == "c1"
    assert [(m.key, m.value) for m in log.covered("c1")] == [(record.key, None)]
    # records read by a recovery after another worker deleted one: nothing to restore
    log.recovered(grant_key("c1", 8), encode_grant(grant))
    log.recovered(grant_key("c1", 8), None)
    assert log.attach(stored) == 0
    assert log.forget("c1") == []
