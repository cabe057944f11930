"""The per-campaign activity record of the operator page stays bounded by count and time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pacer_stream.core.types import (
    Alert,
    AlertType,
    BreakerCause,
    BreakerTransition,
    ChannelType,
    CircuitBreakerState,
    Code,
    Decision,
    Severity,
)
from pacer_stream.streams import activity
from pacer_stream.streams.activity import ActivityLog

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
GOOGLE = ChannelType.GOOGLE_ADS
DISPLAY = ChannelType.DISPLAY
DENY_HOUR = Decision(False, Code.HOURLY_CAP, "hour used", 0)
DENY_OPEN = Decision(False, Code.BREAKER_OPEN, "open", 0)
ALLOW = Decision(True, Code.OK, "", 10)


def _transition(cid: str, at: datetime, state: CircuitBreakerState) -> BreakerTransition:
    return BreakerTransition(
        cid, GOOGLE, CircuitBreakerState.CLOSED, state, BreakerCause.RUNAWAY_VELOCITY, at, None
    )


def _alert(cid: str, at: datetime) -> Alert:
    return Alert(
        "a", cid, GOOGLE, AlertType.UNDERPACING, Severity.LOW, 0.5, 1, 10, 0.1, 0.5, 0, "x", at
    )


def test_denials_are_counted_per_code_over_the_last_hour_only() -> None:
    log = ActivityLog(started_at=T0.timestamp())
    log.record_decision("c", GOOGLE, 5, DENY_HOUR, T0)
    log.record_decision("c", DISPLAY, 5, DENY_HOUR, T0 + timedelta(minutes=30))
    log.record_decision("c", GOOGLE, 5, DENY_OPEN, T0 + timedelta(minutes=31))
    log.record_decision("c", GOOGLE, 5, DENY_OPEN, T0 + timedelta(minutes=32))
    log.record_decision("c", GOOGLE, 5, ALLOW, T0 + timedelta(minutes=33))
    at = T0 + timedelta(minutes=40)
    s = log.summary("c", at)
    assert s["requests"] == {"allowed": 1, "denied": 4}
    assert [(r["code"], r["count"], r["channels"]) for r in s["denials_by_code"]] == [
        ("circuit_breaker_open", 2, {"google_ads": 2}),
        ("hourly_cap_reached", 2, {"google_ads": 1, "display": 1}),
    ]
    assert [d["code"] for d in s["recent_denials"]][:2] == ["circuit_breaker_open"] * 2
    # 61 minutes after the first denial it has left the window; the others remain
    s = log.summary("c", T0 + timedelta(minutes=61))
    assert [(r["code"], r["count"]) for r in s["denials_by_code"]] == [
        ("circuit_breaker_open", 2),
        ("hourly_cap_reached", 1),
    ]
    # and two hours later nothing is left
    assert log.summary("c", T0 + timedelta(hours=2))["denials_by_code"] == []


def test_counters_hold_at_most_an_hour_of_minute_buckets() -> None:
    log = ActivityLog(started_at=T0.timestamp())
    for minute in range(300):
        log.record_decision("c", GOOGLE, 1, DENY_HOUR, T0 + timedelta(minutes=minute))
    act = log.get("c")
    assert act is not None
    assert len(act.buckets) <= activity.WINDOW_S // activity.BUCKET_S
    assert len(act.denials) <= activity.MAX_RECENT_DENIALS
    s = log.summary("c", T0 + timedelta(minutes=299))
    assert s["denials_by_code"][0]["count"] == activity.WINDOW_S // 60


def test_transitions_and_alerts_are_newest_first_and_bounded() -> None:
    log = ActivityLog(started_at=T0.timestamp())
    n = activity.MAX_TRANSITIONS + 10
    log.record_outputs(
        _transition("c", T0 + timedelta(seconds=i), CircuitBreakerState.OPEN) for i in range(n)
    )
    log.record_outputs(_alert("c", T0 + timedelta(seconds=i)) for i in range(50))
    s = log.summary("c", T0 + timedelta(minutes=5))
    timeline = s["breaker_timeline"]
    assert len(timeline) == activity.MAX_TRANSITIONS
    assert timeline[0]["at"] == (T0 + timedelta(seconds=n - 1)).timestamp()
    assert [t["at"] for t in timeline] == sorted((t["at"] for t in timeline), reverse=True)
    assert len(s["alerts"]) == activity.MAX_ALERTS
    # older than the history horizon: gone from the view
    late = T0 + timedelta(seconds=activity.HISTORY_S + 3600)
    assert log.summary("c", late)["breaker_timeline"] == []
    assert log.summary("c", late)["alerts"] == []


def test_least_recently_active_campaigns_are_forgotten_first() -> None:
    log = ActivityLog(started_at=T0.timestamp(), max_campaigns=3)
    for cid in ("a", "b", "c"):
        log.record_decision(cid, GOOGLE, 1, DENY_HOUR, T0)
    log.record_decision("a", GOOGLE, 1, DENY_HOUR, T0)  # a is active again
    log.record_decision("d", GOOGLE, 1, ALLOW, T0)
    assert len(log) == 3
    assert log.get("b") is None
    assert log.get("a") is not None and log.get("d") is not None
    assert log.summary("b", T0)["requests"] == {"allowed": 0, "denied": 0}
