"""History snapshots: validation of bad history, cleaning, bounded memory."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from pacer_stream.core.forecast.dataset import HistorySnapshot, InvalidHistory, build_frame
from pacer_stream.core.forecast.service import snapshot, snapshots_of
from pacer_stream.core.forecast.training import train
from pacer_stream.core.history import HourlyHistory
from pacer_stream.core.state import CampaignState, ChannelState
from pacer_stream.core.types import ChannelType
from pacer_stream.errors import InvalidArgument, PacerError

H0 = 495_000  # an epoch hour (2026-06-20)


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ((H0, math.nan, 1, 0), "spend of hour"),
        ((H0, 100, math.inf, 0), "clicks of hour"),
        ((H0, 100, 1, -1), "negative"),
        ((H0, -5, 1, 0), "negative"),
        ((H0, 100, "3", 0), "not a number"),
        ((H0, 100, 1.5, 0), "whole number"),
        ((H0, 100, True, 0), "not a number"),
        ((math.nan, 100, 1, 0), "epoch hour"),
        ((H0, 100), "row must be"),
        ("abcd", "row must be"),
    ],
)
def test_bad_rows_are_rejected_with_a_typed_error(row: object, words: str) -> None:
    with pytest.raises(InvalidHistory) as err:
        HistorySnapshot.from_rows("UTC", [row], H0 + 10)  # type: ignore[list-item]
    assert err.value.code == "invalid_history"
    assert words in str(err.value)
    assert isinstance(err.value, InvalidArgument)
    assert isinstance(err.value, PacerError)
    assert isinstance(err.value, ValueError)


def test_bad_rows_can_be_dropped_and_counted() -> None:
    rows = [
        (H0, 1_000_000, 2, 1),
        (H0 + 1, math.nan, 1, 0),
        (H0 + 2, 500_000, -1, 0),
        (H0 + 3, 2_000_000, 4, 0),
    ]
    snap = HistorySnapshot.from_rows("UTC", rows, H0 + 10, drop_invalid=True)
    assert snap.dropped == 2
    assert snap.rows == ((H0, 1_000_000, 2, 1), (H0 + 3, 2_000_000, 4, 0))


def test_empty_hours_future_hours_and_duplicates_are_normalised() -> None:
    rows = [
        (H0 + 2, 10, 1, 0),
        (H0, 0, 0, 0),  # no activity: no information, skipped
        (H0 + 2, 5, 1, 1),  # duplicate hour: summed
        (H0 + 9, 7, 1, 0),  # at/after until_hour: excluded
        (np.int64(H0 + 1), np.float64(3.0), 1, 0),  # numpy scalars are fine
    ]
    snap = HistorySnapshot.from_rows("UTC", rows, H0 + 9)
    assert snap.rows == ((H0 + 1, 3, 1, 0), (H0 + 2, 15, 2, 1))
    assert snap.hours == 2
    assert snap.dropped == 0


def test_unknown_time_zone_and_bad_until_hour_are_rejected() -> None:
    with pytest.raises(InvalidArgument):
        HistorySnapshot.from_rows("Mars/Olympus", [], H0)
    with pytest.raises(InvalidHistory):
        HistorySnapshot.from_rows("UTC", [], 1.5)  # type: ignore[arg-type]


def test_corrupt_history_buckets_are_rejected_or_cleaned() -> None:
    # A history holds five integer metrics an hour, but a restored one may hold a
    # negative count, and a mapping from elsewhere a truncated bucket.
    hist = HourlyHistory(buckets={H0: [1_000_000, 3, 1, 0, 0], H0 + 1: [-4, 1, 0, 0, 0]})
    now = datetime.fromtimestamp((H0 + 5) * 3600, UTC)
    with pytest.raises(InvalidHistory):
        snapshot(hist, "UTC", now)
    buckets = {**hist.buckets, H0 + 2: [1, 2]}  # truncated bucket
    with pytest.raises(InvalidHistory):
        HistorySnapshot.from_history(buckets, "UTC", H0 + 5)
    cleaned = HistorySnapshot.from_history(buckets, "UTC", H0 + 5, drop_invalid=True)
    assert cleaned.dropped == 2
    assert cleaned.rows == ((H0, 1_000_000, 3, 1),)


def test_snapshots_of_a_campaign_are_keyed_and_clean() -> None:
    state = CampaignState("c1", timezone="Europe/Berlin")
    for ch in (ChannelType.GOOGLE_ADS, ChannelType.DISPLAY):
        cs = ChannelState(channel=ch)
        cs.history.add(H0, 2_000_000, 4, 1, 0, 0)
        state.channels[ch] = cs
    state.channels[ChannelType.DISPLAY].history.add(H0 + 1, -4, 0, 0, 0, 0)  # corrupted
    now = datetime.fromtimestamp((H0 + 3) * 3600, UTC)
    snaps = dict(snapshots_of(state, now))
    assert set(snaps) == {("c1", "google_ads"), ("c1", "display")}
    assert all(s.tz == "Europe/Berlin" for s in snaps.values())
    assert snaps[("c1", "display")].dropped == 1
    assert snaps[("c1", "display")].until_hour == H0 + 3


def test_history_keeps_four_weeks_in_bounded_memory() -> None:
    hist = HourlyHistory()
    assert hist.horizon_hours >= 28 * 24
    for h in range(H0, H0 + 60 * 24):
        hist.add(h, 1, 1, 0, 0, 0)
    assert len(hist.buckets) <= hist.horizon_hours + 1
    assert min(hist.buckets) >= H0 + 60 * 24 - 1 - hist.horizon_hours
    assert hist.hours_with_data(H0 + 60 * 24) >= 28 * 24


def test_frames_use_local_hours_and_days() -> None:
    # 2026-03-08 07:00 UTC = 03:00 EDT (just after the spring-forward gap).
    h = int(datetime(2026, 3, 8, 7, tzinfo=UTC).timestamp() // 3600)
    snap = HistorySnapshot.from_rows("America/New_York", [(h - 1, 1, 1, 0), (h, 1, 1, 0)], h + 1)
    f = build_frame(snap)
    assert f.hour_of_day.tolist() == [1, 3]
    assert f.weekday.tolist() == [6, 6]
    assert f.day[0] == f.day[1]


def test_training_rejects_nothing_it_was_given_cleanly() -> None:
    snap = HistorySnapshot.from_rows(
        "UTC", [(H0 + i, 1_000_000, 5, i % 2) for i in range(30)], H0 + 40
    )
    m = train(snap, datetime.fromtimestamp((H0 + 40) * 3600, UTC))
    assert m.usable
    assert m.dropped == 0
