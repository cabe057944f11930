"""Alerts: how an alert record is built and the rules that decide when one fires.

The engine applies spend and answers requests; whether that leaves a channel ahead of
plan, behind it, past the emergency threshold or below its performance floors is decided
here, together with the once-per-episode de-duplication kept on the channel state
(``active_alerts``, ``pace_level``, ``perf_violation_*``). Pure functions over the state
passed in: no I/O, and ``ts`` is always the caller's clock.
"""

from __future__ import annotations

from pacer_stream.core.breaker import Transition
from pacer_stream.core.calendar import from_ts
from pacer_stream.core.history import CLICKS, CONVERSIONS
from pacer_stream.core.money import MAX_MICROS
from pacer_stream.core.pacing import pace_ratio, planned_at
from pacer_stream.core.performance import threshold_violation, window
from pacer_stream.core.state import CampaignState, ChannelState
from pacer_stream.core.types import (
    Alert,
    AlertType,
    BreakerTransition,
    CircuitBreakerState,
    Output,
    Thresholds,
)
from pacer_stream.core.types import Severity as Sev

_SEVERITY = {
    AlertType.WARNING_OVERPACING: Sev.MEDIUM,
    AlertType.CRITICAL_OVERPACING: Sev.HIGH,
    AlertType.EMERGENCY_STOP_REQUIRED: Sev.CRITICAL,
    AlertType.CIRCUIT_BREAKER_OPEN: Sev.CRITICAL,
    AlertType.PERFORMANCE_DEGRADATION: Sev.MEDIUM,
    AlertType.UNDERPACING: Sev.LOW,
    AlertType.UNBUDGETED_SPEND: Sev.HIGH,
}
_ACTION = {
    AlertType.WARNING_OVERPACING: "Reduce bids or throttle delivery; spend is ahead of plan",
    AlertType.CRITICAL_OVERPACING: "Throttle immediately; spend is far ahead of plan",
    AlertType.EMERGENCY_STOP_REQUIRED: "Stop spending: most of the budget is gone ahead of plan",
    AlertType.CIRCUIT_BREAKER_OPEN: "Spending blocked by the circuit breaker; investigate",
    AlertType.PERFORMANCE_DEGRADATION: "Check tracking and creatives; conversion rate fell",
    AlertType.UNDERPACING: "Raise bids or widen targeting; the day will end under budget",
    AlertType.UNBUDGETED_SPEND: "Set a budget for this channel; spend arrived without one",
}
#: Ratio below which an active pace alert level is cleared (hysteresis factor).
PACE_HYSTERESIS = 0.9


def alert(
    state: CampaignState,
    ch: ChannelState,
    kind: AlertType,
    ts: float,
    *,
    ratio: float | None = None,
    count: bool = True,
) -> Alert:
    t = state.thresholds
    if ratio is None:
        ratio = pace_ratio(ch, ts) if ch.day is not None else 0.0
    if count:
        ch.alert_seq += 1
    day = ch.day
    elapsed = day.elapsed_fraction(ts) if day is not None else 0.0
    budget = ch.budget
    projected = int(ch.spent_total / elapsed) if elapsed > 0 else ch.spent_total
    date = day.date.isoformat() if day is not None else "-"
    return Alert(
        alert_id=f"{state.campaign_id}/{ch.channel.value}/{date}/{kind.value}/{ch.alert_seq}",
        campaign_id=state.campaign_id,
        channel=ch.channel,
        alert_type=kind,
        severity=_SEVERITY[kind],
        pace_ratio=ratio,
        current_spend_micros=ch.spent_total,
        budget_micros=budget,
        budget_consumed_pct=(ch.spent_total / budget) if budget > 0 else 0.0,
        time_elapsed_pct=elapsed,
        projected_overspend_micros=(
            min(MAX_MICROS, max(0, projected - budget)) if budget > 0 else 0
        ),
        recommended_action=_ACTION[kind],
        at=from_ts(ts),
        thresholds={
            "pace_warning_threshold": t.pace_warning_threshold,
            "pace_critical_threshold": t.pace_critical_threshold,
            "emergency_stop_threshold": t.emergency_stop_threshold,
        },
    )


def transition_outputs(state: CampaignState, ch: ChannelState, tr: Transition) -> list[Output]:
    out: list[Output] = [
        BreakerTransition(
            campaign_id=state.campaign_id,
            channel=ch.channel,
            previous=tr.previous,
            state=tr.state,
            cause=tr.cause,
            since=from_ts(tr.at),
            until=from_ts(tr.until) if tr.until is not None else None,
            forced=tr.forced,
        )
    ]
    if tr.state is CircuitBreakerState.OPEN and tr.previous is not CircuitBreakerState.OPEN:
        out.append(alert(state, ch, AlertType.CIRCUIT_BREAKER_OPEN, tr.at))
    return out


def emergency(ch: ChannelState, ts: float, t: Thresholds) -> bool:
    """Spend above the emergency threshold *ahead of plan* (normal end-of-day
    spending near 100% is not a violation)."""
    b = ch.budget
    if b <= 0 or ch.spent_total < b * t.emergency_stop_threshold:
        return False
    return ch.spent_total - planned_at(ch, ts) >= b * t.emergency_ahead_pct


def emergency_alert(state: CampaignState, ch: ChannelState, ts: float) -> list[Output]:
    """``emergency_stop_required`` once per episode; cleared when spend is back
    within the threshold of plan."""
    kind = AlertType.EMERGENCY_STOP_REQUIRED
    if not emergency(ch, ts, state.thresholds):
        if ch.alert_active(kind):
            ch.active_alerts.discard(kind)
        return []
    if ch.alert_active(kind):
        return []
    ch.active_alerts.add(kind)
    return [alert(state, ch, kind, ts)]


def pace_alerts(state: CampaignState, ch: ChannelState, ts: float, planned: int) -> list[Output]:
    """Over- and underpacing alerts (and the conversion-rate one) at ``ts``, with
    ``planned = pacing.planned_at(ch, ts)`` (the caller has it already)."""
    t = state.thresholds
    out: list[Output] = []
    if planned < ch.budget * t.pace_min_planned_pct or planned <= 0:
        return out
    ratio = ch.spent_total / planned
    level = 2 if ratio > t.pace_critical_threshold else 1 if ratio > t.pace_warning_threshold else 0
    if level > ch.pace_level:
        kind = AlertType.CRITICAL_OVERPACING if level == 2 else AlertType.WARNING_OVERPACING
        out.append(alert(state, ch, kind, ts, ratio=ratio))
        ch.pace_level = level
    elif level < ch.pace_level:
        bar = t.pace_critical_threshold if ch.pace_level == 2 else t.pace_warning_threshold
        if ratio < bar * PACE_HYSTERESIS:
            ch.pace_level = level
    day = ch.day
    assert day is not None
    under = AlertType.UNDERPACING
    if day.elapsed_fraction(ts) >= t.underpacing_min_elapsed:
        if ratio < t.underpacing_target and not ch.alert_active(under):
            ch.active_alerts.add(under)
            out.append(alert(state, ch, under, ts, ratio=ratio))
        elif ratio >= t.underpacing_target and ch.alert_active(under):
            ch.active_alerts.discard(under)
    out += performance_alert(state, ch, ts)
    return out


def performance_alert(state: CampaignState, ch: ChannelState, ts: float) -> list[Output]:
    t = state.thresholds
    kind = AlertType.PERFORMANCE_DEGRADATION
    if ch.clicks_today < t.performance_min_clicks or ch.day is None:
        return []
    start = int(ch.day.start // 3600)
    if ch.baseline_cache[0] != start:
        base = ch.history.totals(start - 7 * 24, start)
        ch.baseline_cache = (start, base[CLICKS], base[CONVERSIONS])
    _, base_clicks, base_conv = ch.baseline_cache
    if base_clicks < t.performance_min_clicks or base_conv == 0:
        return []
    baseline = base_conv / base_clicks
    today = ch.conversions_today / ch.clicks_today
    if today < baseline * (1 - t.performance_drop):
        if not ch.alert_active(kind):
            ch.active_alerts.add(kind)
            return [alert(state, ch, kind, ts)]
    elif ch.alert_active(kind):
        ch.active_alerts.discard(kind)
    return []


def performance_thresholds(state: CampaignState, ch: ChannelState, ts: float) -> list[Output]:
    """Track optional performance floors over the trailing window: a violation
    throttles the multiplier at once; once it has persisted for the grace period,
    spend is denied (policy rule 8) and one ``performance_degradation`` alert fires."""
    t = state.thresholds
    if (
        t.min_conversion_rate is None
        and t.max_cost_per_click_micros is None
        and t.target_roas is None
    ):
        return []
    now_hour = int(ts // 3600)
    recent = window(ch.history, now_hour + 1, t.performance_window_h)
    if recent.clicks < t.performance_min_clicks:
        # Too little evidence either way: keep the current verdict. (A denied
        # channel buys no clicks; letting its sample shrink must not clear it.)
        return []
    reason = threshold_violation(
        recent,
        min_conversion_rate=t.min_conversion_rate,
        max_cost_per_click_micros=t.max_cost_per_click_micros,
        target_roas=t.target_roas,
        min_clicks=t.performance_min_clicks,
    )
    if reason is None:
        ch.perf_violation_since = None
        ch.perf_violation_reason = ""
        ch.perf_violation_alerted = False
        return []
    if ch.perf_violation_since is None:
        ch.perf_violation_since = ts
    ch.perf_violation_reason = reason
    if ts - ch.perf_violation_since >= t.performance_grace_s and not ch.perf_violation_alerted:
        ch.perf_violation_alerted = True
        return [alert(state, ch, AlertType.PERFORMANCE_DEGRADATION, ts)]
    return []


def current_condition(
    state: CampaignState, ch: ChannelState, ts: float
) -> tuple[float, Alert | None]:
    """(pace ratio, alert for the current condition or None), without changing any
    de-duplication state (the alert is not counted in ``alert_seq``)."""
    t = state.thresholds
    ratio = pace_ratio(ch, ts)
    if ch.breaker.state is CircuitBreakerState.OPEN:
        return ratio, alert(state, ch, AlertType.CIRCUIT_BREAKER_OPEN, ts, count=False)
    if ch.budget <= 0:
        return ratio, None
    if emergency(ch, ts, t):
        return ratio, alert(state, ch, AlertType.EMERGENCY_STOP_REQUIRED, ts, count=False)
    if planned_at(ch, ts) < ch.budget * t.pace_min_planned_pct:
        return ratio, None
    if ratio > t.pace_critical_threshold:
        return ratio, alert(state, ch, AlertType.CRITICAL_OVERPACING, ts, count=False)
    if ratio > t.pace_warning_threshold:
        return ratio, alert(state, ch, AlertType.WARNING_OVERPACING, ts, count=False)
    return ratio, None
