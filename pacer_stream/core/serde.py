"""Exact serialisation of :class:`CampaignState` to a compact JSON-able dict and bytes.

Why this exists: the stream worker keeps one campaign's whole state as the value of a
changelog-backed table, so the state must survive a round trip through Kafka *exactly*:
after ``loads(dumps(state))`` every later decision, alert, breaker transition and
de-duplication must be the same as with the original object. That rules out
recomputing anything that depends on data which may have changed since it was computed
(the day's plan was made from the history *at planning time*), so the plan, the
strategy result, the allowance cache and every window are stored as they are. Only pure
functions of stored values are recomputed on load: the :class:`LocalDay` (from zone and
date) and the cumulative plan (prefix sums of the plan's amounts, as ``_replan`` builds
it).

Format (``"v": 1``): short keys, parallel arrays instead of lists of objects, only
non-default thresholds. Floats are finite JSON numbers (orjson writes the shortest
representation that reads back to the same float); the rare non-finite float in a
strategy result is written as a string. Integers are micros or counts (< 2**63).

Pure: no I/O, no clock; ``orjson`` is the only dependency beyond the standard library.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import fields
from datetime import date
from functools import lru_cache
from typing import Any, Final

import orjson

from pacer_stream.core.allocation.base import DayPlan, StrategyResult
from pacer_stream.core.breaker import Breaker, shared_if_pristine
from pacer_stream.core.calendar import LocalDay, from_ts, local_day
from pacer_stream.core.compact import (
    AlertSet,
    FloatQueue,
    int_column,
    no_outputs,
    shared_if_empty,
    sorted_alert_values,
)
from pacer_stream.core.history import HourlyAmounts, HourlyHistory
from pacer_stream.core.planning import shared_plan, shared_result
from pacer_stream.core.report_lag import new_lags
from pacer_stream.core.state import (
    Answer,
    AnswerStatus,
    CampaignState,
    ChannelState,
    Offsets,
    Reservation,
    Unreported,
)
from pacer_stream.core.types import (
    AlertType,
    BreakerCause,
    BreakerTransition,
    ChannelType,
    CircuitBreakerState,
    PacingStrategy,
    Thresholds,
)
from pacer_stream.core.windows import UNAUTHORISED, UNMET, VELOCITY, DedupeWindow, MinuteRings

__all__ = ["FORMAT_VERSION", "SerdeError", "dumps", "from_dict", "loads", "to_dict"]

FORMAT_VERSION: Final = 1

_DEFAULT_THRESHOLDS: Final = Thresholds()
_THRESHOLD_NAMES: Final = tuple(f.name for f in fields(Thresholds))
_NON_FINITE: Final = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}

JSON = dict[str, Any]


class SerdeError(ValueError):
    """Stored bytes or dict that are not a valid serialised campaign state."""


# --------------------------------------------------------------------------- encode


def dumps(state: CampaignState) -> bytes:
    """Compact JSON bytes of ``state`` (see :func:`to_dict`)."""
    return orjson.dumps(to_dict(state))


def to_dict(state: CampaignState, *, dedupe: bool = True) -> JSON:
    """A JSON-able dict holding everything :class:`CampaignState` holds; without the
    event-id window when ``dedupe`` is False (the stream worker saves each id as its own
    record, so a campaign's value does not grow with its events; it reads back as an
    empty window)."""
    out = {
        "v": FORMAT_VERSION,
        "id": state.campaign_id,
        "tz": state.timezone,
        "s": state.strategy.value,
        "t": _thresholds_dict(state.thresholds),
        "cf": state.configured,
        "es": state.emergency_stopped,
        "sr": state.stop_reason,
        "o": dict(state.offsets),
        "a": _answered_dict(state.answered),
        "ob": [_transition_dict(o) for o in state.outbox if isinstance(o, BreakerTransition)],
        "ch": [_channel_dict(ch) for ch in state.channels.values()],
    }
    if dedupe:
        out["d"] = _dedupe_dict(state.dedupe)
    return out


@lru_cache(maxsize=256)
def _thresholds_items(t: Thresholds) -> tuple[tuple[str, Any], ...]:
    """Non-default thresholds (cached: a campaign's thresholds change rarely)."""
    return tuple(
        (name, getattr(t, name))
        for name in _THRESHOLD_NAMES
        if getattr(t, name) != getattr(_DEFAULT_THRESHOLDS, name)
    )


def _thresholds_dict(t: Thresholds) -> JSON:
    return dict(_thresholds_items(t))


def _dedupe_dict(d: DedupeWindow) -> JSON:
    out: JSON = {"w": d.window_s, "m": d.max_entries, "x": d.evicted}
    expiry = d.expiry
    ids = list(expiry)
    out["i"] = ids
    out["e"] = list(expiry.values())
    # The deque and the dict hold the same ids in the same order (both only grow at the
    # end and shrink from the front): store the ids once when that holds (C-speed check).
    order = list(d.order or ())
    if order != ids:  # defensive: keep both exactly
        out["q"] = order
    return out


def _answered_dict(answered: dict[str, Answer]) -> list[list[Any]]:
    """Granted requests as rows ``[request id, channel, amount, answered at, status]``,
    plus the reservation id when it is not the engine's ``res-<request id>``."""
    rows: list[list[Any]] = []
    for k, a in answered.items():
        row: list[Any] = [k, a.channel.value, a.amount, a.answered_at, a.status.value]
        if a.reservation_id != "res-" + k:
            row.append(a.reservation_id)
        rows.append(row)
    return rows


def _floats(values: tuple[float, ...]) -> tuple[float, ...] | list[float | str]:
    # One C-level sum instead of a per-element check: any NaN/inf (or an overflow, which
    # only sends us down the exact path below) makes the sum non-finite. Tuples go to
    # orjson as they are (no copy).
    if math.isfinite(sum(values)):
        return values
    return [v if math.isfinite(v) else _non_finite_name(v) for v in values]


def _non_finite_name(v: float) -> str:
    if math.isnan(v):
        return "nan"
    return "inf" if v > 0 else "-inf"


def _ring_list(rings: MinuteRings, k: int) -> list[Any]:
    return [rings.size(k), rings.minutes(k), rings.amounts(k)]


def _channel_dict(ch: ChannelState) -> JSON:
    day = ch.day
    plan = ch.plan
    result = ch.result
    br = ch.breaker
    hist = ch.history
    rings = ch.rings
    hours, rows = hist.columns()
    x = ch.extras_if_any()
    out: JSON = {
        "c": ch.channel.value,
        "bb": ch.base_budget,
        "b": ch.budget,
        "st": ch.strategy.value if ch.strategy is not None else None,
        "day": [day.tz, day.date.isoformat()] if day is not None else None,
        "af": ch.active_from,
        "sp": ch.spent.tolist(),
        "tot": [
            ch.spent_total,
            ch.clicks_today,
            ch.conversions_today,
            ch.impressions_today,
            ch.revenue_today,
            ch.reserved_total,
        ],
        "r": [
            [r.reservation_id, r.amount, r.expires_at, r.created_at]
            for r in x.reservations.values()
        ]
        if x is not None
        else [],
        "vel": _ring_list(rings, VELOCITY),
        "una": _ring_list(rings, UNAUTHORISED),
        "unm": _ring_list(rings, UNMET),
        "ot": x.overspend_times.tolist() if x is not None else [],
        "ur": [[k, u.amount, u.drop_at, u.created_at] for k, u in x.unreported.items()]
        if x is not None
        else [],
        "ut": ch.unauthorised_times.tolist(),
        "lag": x.report_lags.tolist() if x is not None else [],
        "umh": [list(x.unmet_hours.amounts), list(x.unmet_hours.amounts.values())]
        if x is not None
        else [[], []],
        "br": [
            br.state.value,
            br.since,
            br.until,
            br.cause.value if br.cause is not None else None,
            br.trips,
            br.forced,
            br.trials_admitted,
            br.trials_passed,
            br.trial_amount,
        ],
        "pl": ch.pace_level,
        "aa": sorted_alert_values(ch.alert_mask),
        "seq": ch.alert_seq,
        "pv": [x.perf_violation_since, x.perf_violation_reason, x.perf_violation_alerted]
        if x is not None
        else [None, "", False],
        # keys and bucket lists as two arrays: no per-bucket Python work (up to 29 x 24)
        "h": [hist.horizon_hours, hist.newest, hours, rows],
        "ak": list(ch.allowance_key),
        "av": ch.allowance_value,
    }
    if plan is not None:
        out["pa"] = plan.amounts
        out["pc"] = plan.caps
        out["pw"] = _floats(plan.weights)
    if result is not None:
        weights: tuple[float, ...] | list[float | str] | None = (
            None if plan is not None and result.weights == plan.weights else _floats(result.weights)
        )
        out["res"] = [
            weights,
            _floats(result.multipliers),
            _floats(result.predicted_conversion_rate),
            _floats(result.predicted_cost_per_click),
            result.confidence
            if math.isfinite(result.confidence)
            else _non_finite_name(result.confidence),
            result.model_version,
        ]
    return out


# --------------------------------------------------------------------------- decode


def loads(data: bytes | bytearray | memoryview | str) -> CampaignState:
    """Inverse of :func:`dumps`; raises :class:`SerdeError` on anything else."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise SerdeError(f"stored campaign state is not JSON: {exc}") from exc
    return from_dict(obj)


def from_dict(obj: object) -> CampaignState:
    """Inverse of :func:`to_dict`; raises :class:`SerdeError` on anything else."""
    if not isinstance(obj, dict):
        raise SerdeError(f"stored campaign state must be an object, got {type(obj).__name__}")
    if obj.get("v") != FORMAT_VERSION:
        raise SerdeError(f"unknown campaign state format {obj.get('v')!r}")
    try:
        return _state(obj)
    except SerdeError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, OverflowError) as exc:
        raise SerdeError(f"malformed campaign state: {type(exc).__name__}: {exc}") from exc


def _state(obj: JSON) -> CampaignState:
    state = CampaignState(
        campaign_id=_str(obj["id"]),
        timezone=_str(obj["tz"]),
        strategy=PacingStrategy(obj["s"]),
        thresholds=_thresholds(obj["t"]),
        configured=_bool(obj["cf"]),
        emergency_stopped=_bool(obj["es"]),
        stop_reason=_str(obj["sr"]),
        dedupe=_dedupe(obj["d"]) if "d" in obj else DedupeWindow(),
        offsets=Offsets({_str(k): _int(v) for k, v in obj["o"].items()}),
        # Empty maps load as the shared empty containers, as a new state holds them.
        answered=shared_if_empty(_answered(obj["a"])),
        outbox=[_transition(x) for x in obj.get("ob", ())] or no_outputs(),
    )
    for c in obj["ch"]:
        ch = _channel(c, state.thresholds)
        state.channels[ch.channel] = ch
    return state


@lru_cache(maxsize=256)
def _thresholds_cached(items: tuple[tuple[str, Any], ...]) -> Thresholds:
    return Thresholds(**dict(items))


def _thresholds(obj: JSON) -> Thresholds:
    if not isinstance(obj, dict):
        raise SerdeError("thresholds must be an object")
    unknown = set(obj) - set(_THRESHOLD_NAMES)
    if unknown:
        raise SerdeError(f"unknown thresholds {sorted(unknown)}")
    if not obj:
        return _DEFAULT_THRESHOLDS
    return _thresholds_cached(tuple(sorted(obj.items())))


def _dedupe(obj: JSON) -> DedupeWindow:
    ids = obj["i"]
    exp = obj["e"]
    if len(ids) != len(exp):
        raise SerdeError("dedupe ids and expiries differ in length")
    d = DedupeWindow(window_s=_num(obj["w"]), max_entries=_int(obj["m"]))
    d.evicted = _int(obj["x"])
    if ids:  # an empty window holds no storage (see DedupeWindow)
        d.expiry = dict(zip(ids, exp, strict=True))
        order: list[str] = obj["q"] if "q" in obj else ids  # noqa: SIM401 (typed)
        d.order = deque(order)
    return d


def _answered(obj: Any) -> dict[str, Answer]:
    if not isinstance(obj, list):
        # Older values kept request id -> reservation id without channel and amount, so
        # a retry could not be matched against them: forgetting them makes such a
        # retry a fresh request, decided by every rule (never a free pass).
        return {}
    out: dict[str, Answer] = {}
    for row in obj:
        k = _str(row[0])
        rid = _str(row[5]) if len(row) > 5 else "res-" + k
        out[k] = Answer(ChannelType(row[1]), _int(row[2]), rid, float(row[3]), AnswerStatus(row[4]))
    return out


def _float_list(values: list[Any]) -> tuple[float, ...]:
    return tuple(_NON_FINITE[v] if isinstance(v, str) else float(v) for v in values)


def _channel(c: JSON, thresholds: Thresholds) -> ChannelState:
    channel = ChannelType(c["c"])
    day: LocalDay | None = None
    if c["day"] is not None:
        tz, iso = c["day"]
        day = local_day(_str(tz), date.fromisoformat(iso))
    plan: DayPlan | None = None
    if "pa" in c:
        # shared with equal plans of other channels, as when planned (memory)
        plan = shared_plan(
            DayPlan(
                tuple(_int(a) for a in c["pa"]),
                tuple(_int(a) for a in c["pc"]),
                _float_list(c["pw"]),
                thresholds,  # caps they give are derived, not kept (as when planned)
            )
        )
    result: StrategyResult | None = None
    if "res" in c:
        w, mults, cr, cpc, conf, version = c["res"]
        if w is None:
            if plan is None:
                raise SerdeError("strategy result shares weights with a missing plan")
            weights = plan.weights
        else:
            weights = _float_list(w)
        result = shared_result(
            StrategyResult(
                weights,
                _float_list(mults),
                _float_list(cr),
                _float_list(cpc),
                _NON_FINITE[conf] if isinstance(conf, str) else float(conf),
                version,
            )
        )
    tot = c["tot"]
    br_state, since, until, cause, trips, forced, admitted, passed = c["br"][:8]
    # the trial amount was added later: absent in older values (no trial in flight)
    trial_amount = _int(c["br"][8]) if len(c["br"]) > 8 else 0
    breaker = Breaker(
        state=CircuitBreakerState(br_state),
        since=float(since),
        until=None if until is None else float(until),
        cause=None if cause is None else BreakerCause(cause),
        trips=_int(trips),
        forced=_bool(forced),
        trials_admitted=_int(admitted),
        trials_passed=_int(passed),
        trial_amount=trial_amount,
    )
    breaker = shared_if_pristine(breaker)  # most channels share it (see PRISTINE)
    rings = MinuteRings()
    _ring(rings, VELOCITY, c["vel"], "velocity")
    # Rings and times added to the state later are optional, so a changelog written by an
    # older worker still loads (an absent window is an empty one).
    if "una" in c:
        _ring(rings, UNAUTHORISED, c["una"], "unauthorised")
    if "unm" in c:
        _ring(rings, UNMET, c["unm"], "unmet")
    history = _history(c["h"])
    since_v, reason, alerted = c["pv"]
    key = c["ak"]
    reservations = {
        _str(r[0]): Reservation(_str(r[0]), _int(r[1]), float(r[2]), float(r[3])) for r in c["r"]
    }
    ch = ChannelState(
        channel=channel,
        base_budget=_int(c["bb"]),
        budget=_int(c["b"]),
        strategy=None if c["st"] is None else PacingStrategy(c["st"]),
        day=day,
        active_from=None if c["af"] is None else float(c["af"]),
        plan=plan,
        result=result,
        spent=int_column([_int(x) for x in c["sp"]]),
        spent_total=_int(tot[0]),
        clicks_today=_int(tot[1]),
        conversions_today=_int(tot[2]),
        impressions_today=_int(tot[3]),
        revenue_today=_int(tot[4]),
        reserved_total=_int(tot[5]),
        reservations=shared_if_empty(reservations),
        overspend_times=FloatQueue(float(x) for x in c.get("ot", ())),
        unreported=shared_if_empty(
            {
                _str(u[0]): Unreported(_int(u[1]), float(u[2]), float(u[3]) if len(u) > 3 else 0.0)
                for u in c.get("ur", ())
            }
        ),
        unreported_total=sum(_int(u[1]) for u in c.get("ur", ())),
        unauthorised_times=FloatQueue(float(x) for x in c.get("ut", ())),
        report_lags=new_lags(float(x) for x in c.get("lag", ())),
        unmet_hours=_unmet_hours(c.get("umh")),
        breaker=breaker,
        pace_level=_int(c["pl"]),
        active_alerts=AlertSet(AlertType(a) for a in c["aa"]),
        alert_seq=_int(c["seq"]),
        perf_violation_since=None if since_v is None else float(since_v),
        perf_violation_reason=_str(reason),
        perf_violation_alerted=_bool(alerted),
        history=history,
        allowance_key=(_int(key[0]), _int(key[1]), _int(key[2])),
        allowance_value=_int(c["av"]),
    )
    ch.rings = rings
    return ch


def _unmet_hours(value: list[Any] | None) -> HourlyAmounts:
    if value is None:  # written before unmet demand was kept by hour
        return HourlyAmounts()
    hours, amounts = value
    if len(hours) != len(amounts):
        raise SerdeError("unmet demand hours and amounts differ in length")
    return HourlyAmounts(
        amounts=shared_if_empty({_int(h): _int(a) for h, a in zip(hours, amounts, strict=True)})
    )


def _ring(rings: MinuteRings, k: int, value: list[Any], what: str) -> None:
    """Ring ``k`` of ``rings`` as stored (``[size, minutes, amounts]``, both empty
    while unused; an unused ring takes no room in the buffer)."""
    size, minutes, amounts = value
    try:
        rings.set_ring(k, _int(size), [_int(m) for m in minutes], [_int(a) for a in amounts])
    except ValueError:
        raise SerdeError(f"{what} ring arrays do not match its size") from None
    except OverflowError:
        raise SerdeError(f"{what} ring minutes or amounts out of range") from None


def _history(value: list[Any]) -> HourlyHistory:
    if len(value) == 3:  # early format: [[hour, *metrics], ...]
        horizon, newest, rows = value
        hours = [r[0] for r in rows]
        buckets = [r[1:] for r in rows]
    else:
        horizon, newest, hours, buckets = value
    if len(hours) != len(buckets):
        raise SerdeError("history hours and buckets differ in length")
    try:
        return HourlyHistory(
            horizon_hours=_int(horizon),
            buckets={_int(h): [_int(x) for x in b] for h, b in zip(hours, buckets, strict=True)},
            newest=_int(newest),
        )
    except (ValueError, OverflowError) as e:  # more than five metrics, or out of range
        raise SerdeError(f"history: {e}") from e


def _str(v: object) -> str:
    if not isinstance(v, str):
        raise SerdeError(f"expected a string, got {type(v).__name__}")
    return v


def _int(v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise SerdeError(f"expected an integer, got {type(v).__name__}")
    return v


def _num(v: object) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise SerdeError(f"expected a number, got {type(v).__name__}")
    return float(v)


def _bool(v: object) -> bool:
    if not isinstance(v, bool):
        raise SerdeError(f"expected a boolean, got {type(v).__name__}")
    return v


def _transition_dict(tr: BreakerTransition) -> list[Any]:
    """Pending breaker transitions (lazy ones seen by a read-only call) survive a
    restart, so the breakers topic never misses one."""
    return [
        tr.campaign_id,
        tr.channel.value,
        tr.previous.value,
        tr.state.value,
        tr.cause.value,
        tr.since.timestamp(),
        tr.until.timestamp() if tr.until is not None else None,
        tr.forced,
    ]


def _transition(x: list[Any]) -> BreakerTransition:
    cid, channel, previous, state, cause, since, until, forced = x
    return BreakerTransition(
        campaign_id=_str(cid),
        channel=ChannelType(channel),
        previous=CircuitBreakerState(previous),
        state=CircuitBreakerState(state),
        cause=BreakerCause(cause),
        since=from_ts(float(since)),
        until=None if until is None else from_ts(float(until)),
        forced=_bool(forced),
    )
