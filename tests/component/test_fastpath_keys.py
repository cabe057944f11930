"""Key layout and reservation ids (pure functions; no Redis needed)."""

from __future__ import annotations

import pytest

from pacer_stream.adapters import keys
from pacer_stream.core.types import ChannelType
from pacer_stream.errors import InvalidArgument, UnknownChannel, WrongType


def test_layout_is_documented_and_prefixed() -> None:
    k = keys.channel_keys("c-1", ChannelType.GOOGLE_ADS)
    assert k.all() == [
        "pacer:{c-1}:google_ads:allowance",
        "pacer:{c-1}:google_ads:breaker",
        "pacer:{c-1}:google_ads:ledger",
        "pacer:{c-1}:google_ads:timers",
    ]
    assert keys.channel_keys("c-1", "google_ads") == k
    assert keys.channel_keys("c-1", "video", prefix="x").ledger == "x:{c-1}:video:ledger"


@pytest.mark.parametrize(
    "request_id", ["a", "auction.42", "a:b|c", "ünï ©ode", "x" * 128, "==", "rsv1.x.y"]
)
@pytest.mark.parametrize("campaign_id", ["c", "a.b:c", "Ωmega campaign", "x" * 128])
def test_reservation_ids_round_trip(campaign_id: str, request_id: str) -> None:
    rid = keys.reservation_id(campaign_id, ChannelType.TIKTOK_ADS, "ab12", request_id)
    assert keys.is_fastpath_reservation_id(rid)
    ref = keys.parse_reservation_id(rid)
    assert ref == keys.ReservationRef(campaign_id, ChannelType.TIKTOK_ADS, "ab12", request_id)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "res-1",
        "rsv1.",
        "rsv1.ab12.YQ.google_ads",
        "rsv1.ab12.YQ.google_ads.YQ.extra",
        "rsv1.ab-12.YQ.google_ads.YQ",
        "rsv1.ab12.YQ.nowhere.YQ",
        "rsv1.ab12.%%%.google_ads.YQ",
        "rsv1.ab12.e30.google_ads.YQ",  # campaign "{}" cannot be a hash tag
    ],
)
def test_malformed_reservation_ids_are_rejected(bad: str) -> None:
    with pytest.raises((InvalidArgument, UnknownChannel)):
        keys.parse_reservation_id(bad)


def test_id_validation() -> None:
    with pytest.raises(WrongType):
        keys.check_id(5, "request_id")
    with pytest.raises(InvalidArgument):
        keys.check_id("é" * 65, "request_id")  # 130 bytes of UTF-8
    with pytest.raises(InvalidArgument):
        keys.check_campaign_id("a}b")
    with pytest.raises(UnknownChannel):
        keys.check_channel("radio")
    with pytest.raises(WrongType):
        keys.check_channel(3)
