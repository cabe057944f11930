"""The per-event shortcuts answer exactly what the general code they skip answers.

The spend and decision paths take a shorter road for the usual input (a UTC datetime, a
"Z" time, a record with every field of the core type, a channel without holds); each
test here checks the short road against the long one over many inputs, so a shortcut can
never become a second rule.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pacer_stream.core.compact import FloatQueue, recent_floats
from pacer_stream.core.state import ChannelState
from pacer_stream.core.types import AlertType, ChannelType, SpendEvent
from pacer_stream.core.validation import aware, epoch_s
from pacer_stream.errors import InvalidRecord, InvalidTime, WrongType
from pacer_stream.wire.records import SpendRecord, parse_time

_INSTANTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@given(_INSTANTS)
def test_epoch_seconds_of_any_zone_equal_the_checked_timestamp(when: datetime) -> None:
    for tz in (UTC, timezone(timedelta(hours=-5)), ZoneInfo("Europe/Berlin")):
        local = when.astimezone(tz)
        assert epoch_s(local) == aware(local).timestamp() == when.timestamp()


def test_epoch_seconds_refuse_what_aware_refuses() -> None:
    with pytest.raises(InvalidTime):
        epoch_s(datetime(2026, 3, 2, 9), what="now")
    with pytest.raises(WrongType):
        epoch_s("2026-03-02T09:00:00Z", what="now")  # type: ignore[arg-type]


@given(_INSTANTS, st.integers(min_value=-14 * 60, max_value=14 * 60))
def test_a_z_time_parses_to_the_instant_its_offset_form_names(
    when: datetime, offset_min: int
) -> None:
    when = when.replace(microsecond=when.microsecond // 1000 * 1000)
    z = when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    local = when.astimezone(timezone(timedelta(minutes=offset_min)))
    sign = "-" if offset_min < 0 else "+"
    hours, minutes = divmod(abs(offset_min), 60)
    text = local.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + f"{sign}{hours:02d}:{minutes:02d}"
    parsed = parse_time(z)
    assert parsed == parse_time(text) == when
    assert parsed.tzinfo is UTC


def test_a_spend_record_converts_to_the_core_event_field_by_field() -> None:
    fields: dict[str, Any] = {
        "event_id": "e-1",
        "campaign_id": "c-1",
        "channel": ChannelType.FACEBOOK_ADS,
        "amount_micros": 1_500_000,
        "event_time": datetime(2026, 3, 2, 9, tzinfo=UTC),
        "clicks": 3,
        "conversions": 1,
        "impressions": 40,
        "revenue_micros": 9_000_000,
        "reservation_id": "res-r-1",
    }
    record = SpendRecord(**fields, source="dsp-a")
    event = record.to_core()
    assert event == SpendEvent(**fields)
    assert SpendRecord.from_core(event, source="dsp-a") == record


@given(
    st.lists(st.floats(min_value=0, max_value=1e6), max_size=12).map(sorted),
    st.floats(min_value=0, max_value=1e6),
    st.integers(min_value=1, max_value=8),
)
def test_counting_unauthorised_times_keeps_what_the_queue_keeps(
    times: list[float], since: float, most: int
) -> None:
    queue = FloatQueue(times)
    kept = queue.keep_recent(since, most)
    assert recent_floats(FloatQueue(times)._values, since, most) == queue._values
    ch = ChannelState(ChannelType.GOOGLE_ADS)
    ch.unauthorised_times = FloatQueue(times[:-1])
    new = times[-1] if times else None
    assert ch.count_unauthorised(new, since, most) == kept
    assert ch.unauthorised_times.tolist() == queue.tolist()


def test_the_alert_mask_answers_like_the_set_view() -> None:
    ch = ChannelState(ChannelType.GOOGLE_ADS)
    ch.active_alerts.add(AlertType.UNDERPACING)
    for kind in AlertType:
        assert ch.alert_active(kind) == (kind in ch.active_alerts)


def test_held_reads_the_holds_of_a_channel_with_and_without_extras() -> None:
    ch = ChannelState(ChannelType.GOOGLE_ADS)
    assert ch.held() == (0, 0, 0)
    assert ch.extras_if_any() is None
    ch.reserved_total = 700
    ch.unreported_total = 50
    assert ch.held() == (0, 700, 50)
    assert ch.remaining == max(0, ch.budget - ch.spent_total - 750)


@given(
    st.integers(1, 9999),
    st.integers(0, 13),
    st.integers(0, 32),
    st.integers(0, 25),
    st.integers(0, 59),
    st.integers(0, 61),
    st.text("0123456789", max_size=6),
)
def test_an_upper_case_z_time_reads_as_the_general_parser_reads_it(
    year: int, month: int, day: int, hour: int, minute: int, second: int, digits: str
) -> None:
    """The C parser's shortcut against the general path (a lower-case ``t`` takes it),
    out-of-range fields included: the same instant or the same refusal."""
    frac = f".{digits}" if digits else ""
    text = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}{frac}Z"
    general = text.replace("T", "t")

    def outcome(value: str) -> object:
        try:
            return parse_time(value)
        except InvalidRecord as exc:
            return exc.code, exc.message.replace(general, text)

    fast = outcome(text)
    assert fast == outcome(general)
    if isinstance(fast, datetime):
        assert fast.tzinfo is UTC
