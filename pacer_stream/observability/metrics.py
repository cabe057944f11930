"""Every Prometheus metric of pacer-stream, in one module.

Why one module: alert rules (``deploy/prometheus/alerts.yml``) and the Grafana dashboard
(``deploy/grafana/pacer-stream.json``) refer to metric names as plain strings. Keeping the
definitions together lets ``tests/contract/test_deploy.py`` check that every name used
there exists, and lets ``tests/unit/test_metrics.py`` enforce the naming rules of the
spec (section 6) over the whole product at once:

* prefix ``pacer_``; base units in the name (``_seconds``, ``_bytes``); money is integer
  micros, so money metrics end in ``_micros`` (``_micros_total`` for counters);
* counters end in ``_total`` (``prometheus_client`` appends it to the names below);
* labels are low-cardinality only (channel, code, alert_type, state, topic, error_code,
  path, result, reason, command). **Never a campaign id**: one series per campaign would
  explode the time-series database; per-campaign detail lives in the pace topic and the
  status endpoint instead.

Metrics live in a dedicated :data:`REGISTRY` (not ``prometheus_client.REGISTRY``) so that
tests can read values without interference from other libraries, and so the worker's
``/metrics`` view exports exactly the product's metrics (see :func:`render_latest`).

Callers should use the ``observe_*`` / ``set_*`` helpers rather than the metric objects:
the helpers accept the core enums, validate label values (so a typo cannot create a new
series), and keep the label sets in one place.

Overhead: one helper call costs about a microsecond. The in-process ``BudgetPacer`` hot
path may therefore choose not to instrument every decision; the stream worker and the
Redis fast path do.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from typing import Any, Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)

from pacer_stream.core.types import AlertType, ChannelType, CircuitBreakerState, Code

__all__ = [
    "ALLOWED_LABELS",
    "ALL_METRICS",
    "CONTENT_TYPE_LATEST",
    "DECISION_PATHS",
    "FAIL_CLOSED_REASONS",
    "REGISTRY",
    "SPEND_RESULTS",
    "label_names",
    "observe_alert",
    "observe_alert_suppressed",
    "observe_breaker_transition",
    "observe_command",
    "observe_decision",
    "observe_dlq",
    "observe_event_lag",
    "observe_event_lags",
    "observe_fail_closed",
    "observe_many",
    "observe_reallocation",
    "observe_spend_event",
    "render_latest",
    "set_assigned_partitions",
    "set_breakers",
    "set_consumer_lag",
    "set_reservations_active",
    "set_worker_info",
    "set_worker_ready",
]

# ``*_created`` series double the series count and nothing here reads them (process-wide
# switch of prometheus_client; no other library in the worker exports metrics).
disable_created_metrics()  # type: ignore[no-untyped-call]

#: The registry every pacer-stream metric is registered in.
REGISTRY: Final[CollectorRegistry] = CollectorRegistry(auto_describe=True)

#: Label names a pacer metric may use. Each has a small, bounded set of values.
ALLOWED_LABELS: Final[frozenset[str]] = frozenset(
    {
        "channel",
        "code",
        "alert_type",
        "state",
        "topic",
        "error_code",
        "path",
        "result",
        "reason",
        "command",
        "version",
        "app_id",
        "python",
    }
)

#: Where a can-spend decision was taken: Kafka request/reply, the in-process facade, or
#: the Redis fast path.
DECISION_PATHS: Final[tuple[str, ...]] = ("kafka", "inprocess", "fastpath")

#: Outcome of one spend event: ``applied`` (today, in order), ``late`` (applied to an
#: earlier hour or day), ``duplicate`` (event_id or offset already seen: no change),
#: ``dlq`` (refused and sent to the dead-letter topic).
SPEND_RESULTS: Final[tuple[str, ...]] = ("applied", "late", "duplicate", "dlq")

#: Why the fast path denied without consulting the allowance (fail closed).
FAIL_CLOSED_REASONS: Final[tuple[str, ...]] = (
    Code.STORE_UNAVAILABLE.value,
    Code.STATE_STALE.value,
    "parse_error",
)

COMMANDS: Final[tuple[str, ...]] = ("emergency_stop", "resume", "reallocate", "force_breaker")
COMMAND_RESULTS: Final[tuple[str, ...]] = ("accepted", "rejected")

#: Decision latency spans 10 us (in-process) to the Kafka round trip (target p99 20 ms).
DECISION_BUCKETS: Final[tuple[float, ...]] = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)

#: Event-time lag spans sub-second (healthy) to a day (late events, replays).
EVENT_LAG_BUCKETS: Final[tuple[float, ...]] = (
    0.01,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
    21600.0,
    86400.0,
)

_FREE_LABEL_RE: Final = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,63}$")

# --- spend ---------------------------------------------------------------------------

SPEND_EVENTS: Final = Counter(
    "pacer_spend_events",
    "Spend events processed, by result (applied, late, duplicate, dlq).",
    ["result"],
    registry=REGISTRY,
)
SPEND_APPLIED_MICROS: Final = Counter(
    "pacer_spend_applied_micros",
    "Spend applied to pace state, in micros (1 currency unit = 1,000,000 micros).",
    ["channel"],
    registry=REGISTRY,
)
EVENT_LAG: Final = Histogram(
    "pacer_event_processing_lag_seconds",
    "Delay from a spend event's event_time to the moment the worker applied it.",
    buckets=EVENT_LAG_BUCKETS,
    registry=REGISTRY,
)

# --- decisions -----------------------------------------------------------------------

DECISIONS: Final = Counter(
    "pacer_can_spend_decisions",
    "Can-spend decisions by path (kafka, inprocess, fastpath) and decision code.",
    ["path", "code"],
    registry=REGISTRY,
)
DECISION_LATENCY: Final = Histogram(
    "pacer_can_spend_decision_duration_seconds",
    "Time to take one can-spend decision, by path.",
    ["path"],
    buckets=DECISION_BUCKETS,
    registry=REGISTRY,
)
FAIL_CLOSED: Final = Counter(
    "pacer_fastpath_fail_closed_denials",
    "Fast-path denials taken without an allowance (Redis unreachable, state stale).",
    ["reason"],
    registry=REGISTRY,
)
RESERVATIONS_ACTIVE: Final = Gauge(
    "pacer_reservations_active",
    "Unexpired can-spend reservations held in this worker's state.",
    registry=REGISTRY,
)

# --- alerts, breakers, reallocation ----------------------------------------------------

ALERTS: Final = Counter(
    "pacer_alerts_emitted",
    "Pacing alerts published, by alert type.",
    ["alert_type"],
    registry=REGISTRY,
)
ALERTS_SUPPRESSED: Final = Counter(
    "pacer_alerts_suppressed",
    "Pacing alerts not published because their campaign/channel exceeded the alert "
    "burst limit, by alert type.",
    ["alert_type"],
    registry=REGISTRY,
)
BREAKER_TRANSITIONS: Final = Counter(
    "pacer_breaker_transitions",
    "Circuit-breaker transitions, by the state entered.",
    ["state"],
    registry=REGISTRY,
)
BREAKERS: Final = Gauge(
    "pacer_breakers",
    "Campaign/channel breakers owned by this worker, by current state.",
    ["state"],
    registry=REGISTRY,
)
REALLOCATION_MOVES: Final = Counter(
    "pacer_reallocation_moves",
    "Budget reallocations applied (one per campaign move event).",
    registry=REGISTRY,
)
REALLOCATION_MICROS: Final = Counter(
    "pacer_reallocation_moved_micros",
    "Budget moved between channels, in micros (sum of the positive deltas).",
    registry=REGISTRY,
)
COMMANDS_TOTAL: Final = Counter(
    "pacer_commands",
    "Operator commands handled, by command and result (accepted, rejected).",
    ["command", "result"],
    registry=REGISTRY,
)

# --- input quality and consumption -----------------------------------------------------

DLQ_RECORDS: Final = Counter(
    "pacer_dlq_records",
    "Input records sent to the dead-letter topic, by source topic and error code.",
    ["topic", "error_code"],
    registry=REGISTRY,
)
REPLIES_UNDELIVERABLE: Final = Counter(
    "pacer_replies_undeliverable",
    "Can-spend replies to a per-client reply topic the broker did not confirm in time "
    "(the topic does not exist or is not readable): the bid engine's wait times out.",
    registry=REGISTRY,
)
CONSUMER_LAG: Final = Gauge(
    "pacer_consumer_lag_messages",
    "Messages between the end of a topic and this worker's committed position.",
    ["topic"],
    registry=REGISTRY,
)

# --- worker ----------------------------------------------------------------------------

WORKER_INFO: Final = Info(
    "pacer_worker",
    "Static facts about the worker process (version, app id, Python).",
    registry=REGISTRY,
)
WORKER_READY: Final = Gauge(
    "pacer_worker_ready",
    "1 when /readyz would answer 200 (partitions assigned, tables recovered, Redis ok).",
    registry=REGISTRY,
)
ASSIGNED_PARTITIONS: Final = Gauge(
    "pacer_assigned_partitions",
    "Input partitions currently assigned to this worker (active, not standby).",
    registry=REGISTRY,
)


#: Every metric object defined above (what :func:`label_names` describes).
ALL_METRICS: Final[tuple[Counter | Gauge | Histogram | Info, ...]] = (
    SPEND_EVENTS,
    SPEND_APPLIED_MICROS,
    EVENT_LAG,
    DECISIONS,
    DECISION_LATENCY,
    FAIL_CLOSED,
    RESERVATIONS_ACTIVE,
    ALERTS,
    ALERTS_SUPPRESSED,
    BREAKER_TRANSITIONS,
    BREAKERS,
    REALLOCATION_MOVES,
    REALLOCATION_MICROS,
    COMMANDS_TOTAL,
    DLQ_RECORDS,
    REPLIES_UNDELIVERABLE,
    CONSUMER_LAG,
    WORKER_INFO,
    WORKER_READY,
    ASSIGNED_PARTITIONS,
)


def label_names() -> dict[str, tuple[str, ...]]:
    """Return each metric family's declared label names, keyed by family name.

    Declared labels are known before any sample exists (a DLQ counter has no series
    until the first bad record), which is what the deploy contract tests need to check
    that alert rules and dashboards only use real labels. Info metrics report the keys
    of their value as labels.
    """
    out: dict[str, tuple[str, ...]] = {}
    for metric in ALL_METRICS:
        for family in metric.describe():
            out[family.name] = tuple(metric._labelnames)
    out[WORKER_INFO._name] = ("version", "app_id", "python")
    return out


def _value(v: str | Enum) -> str:
    """Return the label value of an enum member or a plain string."""
    if isinstance(v, Enum):
        return str(v.value)
    return str(v)


def _choice(label: str, v: str | Enum, allowed: Iterable[str]) -> str:
    """Return ``v`` as a label value, refusing values outside the bounded set.

    Raising (instead of silently accepting) is what keeps cardinality bounded: a wrong
    value is a programming error that unit tests catch, not a new time series.
    """
    s = _value(v)
    if s not in allowed:
        raise ValueError(f"invalid {label} label value {s!r}")
    return s


def _free(v: str | Enum) -> str:
    """Return a label value from an open but small vocabulary (topic, error code).

    Values that do not look like identifiers are folded into ``other`` so a hostile or
    garbled input cannot mint arbitrary series.
    """
    s = _value(v)
    return s if _FREE_LABEL_RE.match(s) else "other"


_CODES: Final = frozenset(c.value for c in Code)
_ALERT_TYPES: Final = frozenset(a.value for a in AlertType)
_STATES: Final = frozenset(s.value for s in CircuitBreakerState)
_CHANNELS: Final = frozenset(c.value for c in ChannelType)


def observe_spend_event(
    result: str,
    *,
    channel: ChannelType | str | None = None,
    amount_micros: int = 0,
    lag_seconds: float | None = None,
    count: int = 1,
) -> None:
    """Count ``count`` processed spend events (several: a replayed or refused batch).

    ``result`` is one of :data:`SPEND_RESULTS`. For ``applied`` and ``late`` results the
    ``amount_micros`` is added to ``pacer_spend_applied_micros_total{channel}`` (it is
    ignored for duplicates and DLQ records, which change no state). ``lag_seconds``, when
    given, is the event-time lag observed into ``pacer_event_processing_lag_seconds``.
    """
    r = _value(result)
    events = _SPEND_EVENTS_BY_RESULT.get(r)
    if events is None:
        raise ValueError(f"invalid result label value {r!r}")
    events.inc(count)
    if r in ("applied", "late") and amount_micros:
        if channel is None:
            raise ValueError("channel is required to count applied spend")
        if amount_micros < 0:
            raise ValueError("amount_micros must be >= 0")
        applied = _SPEND_MICROS_BY_CHANNEL.get(_value(channel))
        if applied is None:
            raise ValueError(f"invalid channel label value {_value(channel)!r}")
        applied.inc(amount_micros)
    if lag_seconds is not None:
        observe_event_lag(lag_seconds)


def observe_event_lag(seconds: float) -> None:
    """Observe the delay between an event's event_time and its processing.

    Negative values (producer clock slightly ahead) are clamped to zero: the histogram
    measures how stale the worker's view is, and "from the future" means "not stale".
    """
    EVENT_LAG.observe(max(0.0, float(seconds)))


def observe_event_lags(seconds: Sequence[float]) -> None:
    """:func:`observe_event_lag` for every value of ``seconds`` at once (the events of
    one spend record): what one observe per value would record, counted per bucket."""
    observe_many(EVENT_LAG, [max(0.0, float(s)) for s in seconds])


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """Add ``values`` to an unlabelled ``histogram`` as ``observe`` would one by one,
    with one update per bucket that got any and one of the sum.

    prometheus_client has no bulk observe, and each observe takes the value locks of
    the sum and a bucket: about 2 us an event, a tenth of applying one. This reads the
    histogram's bucket bounds and values (``_upper_bounds``, ``_buckets``, ``_sum``:
    internals of the pinned version; ``test_metrics`` checks the result against one
    ``observe`` per value, so a version that changes them fails there first)."""
    if not values:
        return
    bounds = histogram._upper_bounds
    counts = [0] * len(bounds)
    for v in values:
        counts[bisect_left(bounds, v)] += 1  # the first bound >= v: observe's bucket
    buckets = histogram._buckets
    for i, n in enumerate(counts):
        if n:
            buckets[i].inc(n)
    histogram._sum.inc(sum(values))


def observe_decision(path: str, code: Code | str, seconds: float | None = None) -> None:
    """Count one can-spend decision and, when timed, observe its latency.

    ``path`` is ``kafka``, ``inprocess`` or ``fastpath``; ``code`` is a
    :class:`~pacer_stream.core.types.Code` (or its value); ``seconds`` is the time taken
    to decide (wall time measured with ``time.perf_counter``).
    """
    children = _DECISION_CHILDREN.get((path, code))
    if children is None:
        p = _choice("path", path, DECISION_PATHS)
        children = (
            DECISIONS.labels(path=p, code=_choice("code", code, _CODES)),
            DECISION_LATENCY.labels(path=p),
        )
        _DECISION_CHILDREN[path, code] = children
    children[0].inc()
    if seconds is not None:
        children[1].observe(max(0.0, float(seconds)))


#: (path, code) -> the decision counter's and latency histogram's children: a label
#: lookup (validation, the metric's lock) costs ~3.5 us, on every can-spend decision.
#: Bounded: only valid pairs are added (an invalid one raises first).
_DECISION_CHILDREN: dict[tuple[str, Code | str], tuple[Any, Any]] = {}


def observe_fail_closed(reason: Code | str) -> None:
    """Count a fast-path denial taken because the store could not be trusted.

    ``reason`` is ``store_unavailable``, ``state_stale`` or ``parse_error``. Callers also
    call :func:`observe_decision` for the same request; this counter exists separately so
    an alert can fire on fail-closed denials without matching decision codes.
    """
    FAIL_CLOSED.labels(reason=_choice("reason", reason, FAIL_CLOSED_REASONS)).inc()


def observe_alert(alert_type: AlertType | str) -> None:
    """Count one published pacing alert (after de-duplication)."""
    ALERTS.labels(alert_type=_choice("alert_type", alert_type, _ALERT_TYPES)).inc()


def observe_alert_suppressed(alert_type: AlertType | str) -> None:
    """Count one alert held back by the per-campaign/channel burst limit."""
    ALERTS_SUPPRESSED.labels(alert_type=_choice("alert_type", alert_type, _ALERT_TYPES)).inc()


def observe_breaker_transition(state: CircuitBreakerState | str) -> None:
    """Count one breaker transition by the state it entered (``open`` = a trip)."""
    BREAKER_TRANSITIONS.labels(state=_choice("state", state, _STATES)).inc()


def set_breakers(counts: Mapping[CircuitBreakerState | str, int]) -> None:
    """Set how many owned breakers are in each state; states not given are set to 0."""
    given = {_choice("state", k, _STATES): int(v) for k, v in counts.items()}
    for s in _STATES:
        BREAKERS.labels(state=s).set(given.get(s, 0))


def observe_dlq(topic: str, error_code: str) -> None:
    """Count one record sent to the DLQ, by its source topic and stable error code."""
    DLQ_RECORDS.labels(topic=_free(topic), error_code=_free(error_code)).inc()


def observe_reallocation(deltas: Mapping[ChannelType | str, int]) -> int:
    """Count one applied budget move; return the micros it moved.

    ``deltas`` are the per-channel changes of a ``BudgetMove`` (they sum to zero); the
    amount moved is the sum of the positive deltas. A move of zero is not counted.
    """
    moved = sum(d for d in deltas.values() if d > 0)
    if moved > 0:
        REALLOCATION_MOVES.inc()
        REALLOCATION_MICROS.inc(moved)
    return moved


def observe_command(command: str, result: str) -> None:
    """Count one operator command, ``accepted`` or ``rejected`` (unsigned, replayed...)."""
    COMMANDS_TOTAL.labels(
        command=_choice("command", command, COMMANDS),
        result=_choice("result", result, COMMAND_RESULTS),
    ).inc()


def set_reservations_active(count: int) -> None:
    """Set the number of live reservations held by this worker."""
    RESERVATIONS_ACTIVE.set(max(0, int(count)))


def set_consumer_lag(topic: str, messages: int) -> None:
    """Set the consumer lag of one input topic (sum over this worker's partitions)."""
    CONSUMER_LAG.labels(topic=_free(topic)).set(max(0, int(messages)))


def set_assigned_partitions(count: int) -> None:
    """Set the number of input partitions actively assigned to this worker."""
    ASSIGNED_PARTITIONS.set(max(0, int(count)))


def set_worker_ready(ready: bool) -> None:
    """Set ``pacer_worker_ready`` (normally driven by ``health.bind_worker_status``)."""
    WORKER_READY.set(1 if ready else 0)


def set_worker_info(version: str, app_id: str) -> None:
    """Publish the worker's version and app id as ``pacer_worker_info``."""
    import platform

    WORKER_INFO.info({"version": version, "app_id": app_id, "python": platform.python_version()})


def render_latest() -> tuple[bytes, str]:
    """Return the exposition body and its content type for a ``/metrics`` view."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


#: The spend counters' children by label value: spend is counted once per event, and
#: ``labels()`` (a lock and a dict lookup) would cost more than the increment itself.
_SPEND_EVENTS_BY_RESULT: Final = {r: SPEND_EVENTS.labels(result=r) for r in SPEND_RESULTS}
_SPEND_MICROS_BY_CHANNEL: Final = {ch: SPEND_APPLIED_MICROS.labels(channel=ch) for ch in _CHANNELS}


def _initialise_series() -> None:
    """Create every bounded label combination at zero.

    Prometheus' ``rate()`` and ``increase()`` need a series to exist before its first
    increment, otherwise the first DLQ record or breaker trip is invisible to alert
    rules; pre-creating the bounded combinations avoids that.
    """
    for r in SPEND_RESULTS:
        SPEND_EVENTS.labels(result=r)
    for ch in _CHANNELS:
        SPEND_APPLIED_MICROS.labels(channel=ch)
    for p in DECISION_PATHS:
        DECISION_LATENCY.labels(path=p)
        for c in _CODES:
            DECISIONS.labels(path=p, code=c)
    for reason in FAIL_CLOSED_REASONS:
        FAIL_CLOSED.labels(reason=reason)
    for a in _ALERT_TYPES:
        ALERTS.labels(alert_type=a)
    for s in _STATES:
        BREAKER_TRANSITIONS.labels(state=s)
        BREAKERS.labels(state=s)
    for cmd in COMMANDS:
        for res in COMMAND_RESULTS:
            COMMANDS_TOTAL.labels(command=cmd, result=res)


_initialise_series()
