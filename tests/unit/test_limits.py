"""Worker-side bounds: remembered nonces of signed commands and published alerts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from pacer_stream import signing
from pacer_stream.core.types import Alert, AlertType, ChannelType, Severity
from pacer_stream.streams.limits import AlertLimiter
from pacer_stream.streams.processor import Processor
from pacer_stream.wire.records import CommandRecord, CommandType

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)
KEYS = {"k1": b"secret"}


def test_remembered_nonces_are_bounded_without_forgetting_a_live_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(signing, "MAX_NONCES", 5)
    nonces: dict[str, float] = {}
    cmd = CommandRecord(
        command_id="c1",
        campaign_id="camp",
        command=CommandType.RESUME,
        reason="ops",
        issued_at=NOW,
    )
    for i in range(5):
        signed = signing.sign(cmd, "k1", b"secret", now=NOW, nonce=f"n{i}")
        signing.verify(signed, KEYS, NOW, nonces)
    with pytest.raises(signing.CommandRejected) as info:
        signing.verify(signing.sign(cmd, "k1", b"secret", now=NOW, nonce="n5"), KEYS, NOW, nonces)
    assert info.value.code == signing.TOO_MANY_NONCES
    with pytest.raises(signing.CommandRejected) as info:  # still a replay, still refused
        signing.verify(signing.sign(cmd, "k1", b"secret", now=NOW, nonce="n0"), KEYS, NOW, nonces)
    assert info.value.code == signing.REPLAYED
    later = NOW + timedelta(seconds=301)  # the first five expired: room again
    signing.verify(signing.sign(cmd, "k1", b"secret", now=later, nonce="n6"), KEYS, later, nonces)
    assert set(nonces) == {"n6"}


def _alert(i: int, channel: ChannelType = ChannelType.GOOGLE_ADS) -> Alert:
    return Alert(
        alert_id=f"a{i}",
        campaign_id="camp",
        channel=channel,
        alert_type=AlertType.WARNING_OVERPACING,
        severity=Severity.MEDIUM,
        pace_ratio=1.6,
        current_spend_micros=1,
        budget_micros=2,
        budget_consumed_pct=0.5,
        time_elapsed_pct=0.5,
        projected_overspend_micros=0,
        recommended_action="x",
        at=NOW + timedelta(seconds=i),
        thresholds={},
    )


def test_a_flapping_condition_publishes_a_bounded_number_of_alerts() -> None:
    processor = Processor(alert_limiter=AlertLimiter(burst=10, window_s=300))
    published = processor.emit([_alert(i) for i in range(50)])
    assert len(published) == 10
    other = processor.emit([replace(_alert(60), channel=ChannelType.DISPLAY)])
    assert len(other) == 1  # another channel has its own budget of alerts
