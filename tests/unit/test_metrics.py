"""Unit tests of pacer_stream.observability: metric naming rules, helpers, health, logs.

The naming rules are checked over the whole REGISTRY rather than metric by metric, so a
metric added later by anyone is held to the same rules without anyone
remembering to write a test for it.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Histogram

from pacer_stream.core.types import AlertType, ChannelType, CircuitBreakerState, Code, SpendEvent
from pacer_stream.observability import metrics as m
from pacer_stream.observability.health import (
    WorkerStatus,
    bind_worker_status,
    healthz,
    readyz,
)
from pacer_stream.observability.logging import configure_logging, get_logger
from pacer_stream.streams.clock import ManualClock
from pacer_stream.streams.processor import Processor
from pacer_stream.streams.stored import Stored
from pacer_stream.wire.records import encode_spend

UNIT_SUFFIXES = ("_seconds", "_bytes", "_micros", "_messages")


def _value(name: str, **labels: str) -> float:
    """Current value of one series (0.0 when it does not exist yet)."""
    v = m.REGISTRY.get_sample_value(name, labels)
    return 0.0 if v is None else v


# --- naming rules -------------------------------------------------------------------------


def test_every_metric_has_the_pacer_prefix() -> None:
    families = list(m.REGISTRY.collect())
    assert len(families) >= 15
    for family in families:
        assert family.name.startswith("pacer_"), family.name
        assert family.documentation.strip(), f"{family.name} has no help text"


def test_counters_are_exposed_with_total_suffix() -> None:
    for family in m.REGISTRY.collect():
        if family.type != "counter":
            continue
        assert not family.name.endswith("_total"), f"{family.name}: would become _total_total"
        body = m.render_latest()[0].decode()
        assert f"# TYPE {family.name}_total counter" in body or (
            f"# TYPE {family.name} counter" in body and f"{family.name}_total" in body
        ), family.name


def test_no_campaign_label_and_only_low_cardinality_labels() -> None:
    declared = m.label_names()
    assert {f.name for f in m.REGISTRY.collect()} == set(declared), "ALL_METRICS is stale"
    for name, labels in declared.items():
        for label in labels:
            assert "campaign" not in label, f"{name} has a campaign label {label!r}"
            assert label in m.ALLOWED_LABELS, f"{name}: label {label!r} not in ALLOWED_LABELS"


def test_units_are_base_units() -> None:
    forbidden = ("_ms", "_milliseconds", "_minutes", "_hours", "_kb", "_mb", "_cents", "_usd")
    for family in m.REGISTRY.collect():
        assert not any(part in family.name for part in forbidden), family.name
        if family.type == "histogram":
            assert family.name.endswith(UNIT_SUFFIXES), f"{family.name}: histogram needs a unit"
        if "micros" in family.name:
            assert family.name.endswith("_micros"), family.name


def test_bounded_series_exist_before_first_event() -> None:
    """rate() only sees a first increment if the series already existed at zero."""
    for code in Code:
        for path in m.DECISION_PATHS:
            assert (
                m.REGISTRY.get_sample_value(
                    "pacer_can_spend_decisions_total", {"path": path, "code": code.value}
                )
                is not None
            )
    for state in CircuitBreakerState:
        assert (
            m.REGISTRY.get_sample_value("pacer_breaker_transitions_total", {"state": state.value})
            is not None
        )


# --- helpers ------------------------------------------------------------------------------


def test_observe_decision_counts_and_times() -> None:
    before = _value("pacer_can_spend_decisions_total", path="kafka", code="daily_budget_exhausted")
    count_before = _value("pacer_can_spend_decision_duration_seconds_count", path="kafka")
    sum_before = _value("pacer_can_spend_decision_duration_seconds_sum", path="kafka")
    m.observe_decision("kafka", Code.DAILY_CAP, 0.004)
    m.observe_decision("kafka", "daily_budget_exhausted")  # counted, not timed
    after = _value("pacer_can_spend_decisions_total", path="kafka", code="daily_budget_exhausted")
    assert after - before == 2
    assert (
        _value("pacer_can_spend_decision_duration_seconds_count", path="kafka") - count_before == 1
    )
    assert _value(
        "pacer_can_spend_decision_duration_seconds_sum", path="kafka"
    ) - sum_before == pytest.approx(0.004)
    # 4 ms falls in the 5 ms bucket and not in the 2.5 ms one.
    le5 = _value("pacer_can_spend_decision_duration_seconds_bucket", path="kafka", le="0.005")
    assert le5 >= 1


@pytest.mark.parametrize(
    ("path", "code"), [("redis", "ok"), ("kafka", "campaign_c1_denied"), ("KAFKA", "ok")]
)
def test_observe_decision_refuses_unbounded_values(path: str, code: str) -> None:
    with pytest.raises(ValueError):
        m.observe_decision(path, code, 0.001)


def test_observe_spend_event_counts_results_and_applied_micros() -> None:
    applied0 = _value("pacer_spend_events_total", result="applied")
    dup0 = _value("pacer_spend_events_total", result="duplicate")
    micros0 = _value("pacer_spend_applied_micros_total", channel="search")
    lag0 = _value("pacer_event_processing_lag_seconds_count")
    m.observe_spend_event(
        "applied", channel=ChannelType.SEARCH, amount_micros=2_500_000, lag_seconds=0.2
    )
    m.observe_spend_event("late", channel="search", amount_micros=500_000)
    m.observe_spend_event("duplicate", channel="search", amount_micros=9_999_999)
    m.observe_spend_event("dlq")
    assert _value("pacer_spend_events_total", result="applied") - applied0 == 1
    assert _value("pacer_spend_events_total", result="duplicate") - dup0 == 1
    # Duplicates change no state, so their amount is not counted as applied.
    assert _value("pacer_spend_applied_micros_total", channel="search") - micros0 == 3_000_000
    assert _value("pacer_event_processing_lag_seconds_count") - lag0 == 1
    with pytest.raises(ValueError):
        m.observe_spend_event("dropped")
    with pytest.raises(ValueError):
        m.observe_spend_event("applied", amount_micros=1)  # channel missing


def test_many_observations_at_once_equal_one_observe_each() -> None:
    """The bulk path reads prometheus_client internals; this fails first if a version
    changes them."""
    values = [0.0, 0.01, 0.0100001, 0.5, 1.0, 2.49, 3600.0, 1e9, 0.25, 0.25]
    one, bulk = CollectorRegistry(), CollectorRegistry()
    by_one = Histogram("h", "h", buckets=m.EVENT_LAG_BUCKETS, registry=one)
    for v in values:
        by_one.observe(v)
    m.observe_many(Histogram("h", "h", buckets=m.EVENT_LAG_BUCKETS, registry=bulk), values)
    m.observe_many(Histogram("h2", "h", registry=bulk), [])  # nothing: no change

    def samples(reg: CollectorRegistry, name: str) -> dict[tuple[str, str], float]:
        return {
            (s.name, s.labels.get("le", "")): s.value
            for metric in reg.collect()
            if metric.name == name
            for s in metric.samples
            if not s.name.endswith("_created")
        }

    assert samples(bulk, "h") == samples(one, "h")
    assert samples(bulk, "h")[("h_count", "")] == len(values)
    assert samples(bulk, "h2")[("h2_count", "")] == 0


def test_event_lags_of_a_record_count_each_event() -> None:
    count0 = _value("pacer_event_processing_lag_seconds_count")
    sum0 = _value("pacer_event_processing_lag_seconds_sum")
    m.observe_event_lags([0.2, -1.0, 0.3])  # the negative one is clamped to 0
    assert _value("pacer_event_processing_lag_seconds_count") - count0 == 3
    assert _value("pacer_event_processing_lag_seconds_sum") - sum0 == pytest.approx(0.5)


def test_event_lag_from_the_future_is_clamped() -> None:
    sum0 = _value("pacer_event_processing_lag_seconds_sum")
    m.observe_event_lag(-3.0)
    assert _value("pacer_event_processing_lag_seconds_sum") == sum0


def test_alert_breaker_and_fail_closed_helpers() -> None:
    a0 = _value("pacer_alerts_emitted_total", alert_type="critical_overpacing")
    b0 = _value("pacer_breaker_transitions_total", state="open")
    f0 = _value("pacer_fastpath_fail_closed_denials_total", reason="state_stale")
    m.observe_alert(AlertType.CRITICAL_OVERPACING)
    m.observe_breaker_transition(CircuitBreakerState.OPEN)
    m.observe_fail_closed(Code.STATE_STALE)
    assert _value("pacer_alerts_emitted_total", alert_type="critical_overpacing") - a0 == 1
    assert _value("pacer_breaker_transitions_total", state="open") - b0 == 1
    assert _value("pacer_fastpath_fail_closed_denials_total", reason="state_stale") - f0 == 1
    with pytest.raises(ValueError):
        m.observe_fail_closed(Code.DAILY_CAP)  # a normal denial, not a fail-closed one
    with pytest.raises(ValueError):
        m.observe_alert("something_else")


def test_set_breakers_zeroes_missing_states() -> None:
    m.set_breakers({CircuitBreakerState.OPEN: 3, "half_open": 1, "closed": 7})
    m.set_breakers({CircuitBreakerState.OPEN: 2})
    assert _value("pacer_breakers", state="open") == 2
    assert _value("pacer_breakers", state="half_open") == 0
    assert _value("pacer_breakers", state="closed") == 0


def test_dlq_labels_fold_garbage_into_other() -> None:
    ok0 = _value("pacer_dlq_records_total", topic="pacer.spend.v1", error_code="invalid_json")
    other0 = _value("pacer_dlq_records_total", topic="pacer.spend.v1", error_code="other")
    m.observe_dlq("pacer.spend.v1", "invalid_json")
    m.observe_dlq("pacer.spend.v1", "Bad Code With Spaces\n" * 10)
    assert (
        _value("pacer_dlq_records_total", topic="pacer.spend.v1", error_code="invalid_json") - ok0
        == 1
    )
    assert (
        _value("pacer_dlq_records_total", topic="pacer.spend.v1", error_code="other") - other0 == 1
    )


def test_observe_reallocation_counts_positive_deltas() -> None:
    moves0 = _value("pacer_reallocation_moves_total")
    micros0 = _value("pacer_reallocation_moved_micros_total")
    moved = m.observe_reallocation(
        {
            ChannelType.SEARCH: 3_000_000,
            ChannelType.DISPLAY: -2_000_000,
            ChannelType.VIDEO: -1_000_000,
        }
    )
    assert moved == 3_000_000
    assert m.observe_reallocation({ChannelType.SEARCH: 0}) == 0  # no move, not counted
    assert _value("pacer_reallocation_moves_total") - moves0 == 1
    assert _value("pacer_reallocation_moved_micros_total") - micros0 == 3_000_000


def test_gauges_and_commands() -> None:
    m.set_reservations_active(12)
    m.set_consumer_lag("pacer.spend.v1", 345)
    m.set_assigned_partitions(4)
    m.set_reservations_active(-1)  # clamped: a negative count is a caller bug, not data
    assert _value("pacer_reservations_active") == 0
    assert _value("pacer_consumer_lag_messages", topic="pacer.spend.v1") == 345
    assert _value("pacer_assigned_partitions") == 4
    c0 = _value("pacer_commands_total", command="emergency_stop", result="rejected")
    m.observe_command("emergency_stop", "rejected")
    assert _value("pacer_commands_total", command="emergency_stop", result="rejected") - c0 == 1
    with pytest.raises(ValueError):
        m.observe_command("drop_tables", "accepted")


def test_worker_info_and_exposition() -> None:
    m.set_worker_info("0.1.0", "pacer-stream")
    body, content_type = m.render_latest()
    text = body.decode()
    assert content_type.startswith("text/plain")
    assert 'pacer_worker_info{app_id="pacer-stream"' in text
    assert "pacer_spend_events_total" in text
    assert "_created" not in text
    assert "campaign_id" not in text


# --- health -------------------------------------------------------------------------------


@pytest.fixture
def ready_status() -> WorkerStatus:
    status = WorkerStatus(redis_configured=True, redis_stale_after_s=10.0)
    status.mark_started()
    status.on_partitions_assigned(4)
    status.on_recovered()
    status.on_redis_ok(now=100.0)
    return status


def test_healthz_is_alive_unless_fatal() -> None:
    status = WorkerStatus()
    assert healthz(status) == (200, {"status": "ok"})
    status.mark_fatal("agent crashed")
    code, body = healthz(status)
    assert code == 503 and body["error"] == "agent crashed"


def test_readyz_ready(ready_status: WorkerStatus) -> None:
    code, body = readyz(ready_status, now=105.0)
    assert code == 200, body
    assert body["status"] == "ready"
    assert body["checks"]["kafka"]["assigned_partitions"] == 4
    json.dumps(body)  # the web view serialises it


def test_readyz_not_ready_before_start_and_assignment() -> None:
    status = WorkerStatus()
    code, body = readyz(status, now=0.0)
    assert code == 503
    assert body["checks"]["process"]["ok"] is False
    assert body["checks"]["kafka"]["ok"] is False
    assert body["checks"]["redis"] == {"ok": True, "configured": False}


def test_readyz_waits_for_table_recovery_after_rebalance(ready_status: WorkerStatus) -> None:
    ready_status.on_rebalance_started()
    assert readyz(ready_status, now=101.0)[0] == 503
    ready_status.on_partitions_assigned(3)
    code, body = readyz(ready_status, now=101.0)
    assert code == 503 and body["checks"]["tables"]["ok"] is False
    ready_status.on_recovered()
    assert readyz(ready_status, now=101.0)[0] == 200


def test_readyz_zero_partitions_is_a_ready_standby(ready_status: WorkerStatus) -> None:
    ready_status.on_partitions_assigned(0)
    ready_status.on_recovered()
    assert readyz(ready_status, now=101.0)[0] == 200


def test_readyz_redis_stale_or_never_seen(ready_status: WorkerStatus) -> None:
    ready_status.on_redis_error("connection refused")
    # The last success is still fresh: one failed command does not flap readiness.
    assert readyz(ready_status, now=105.0)[0] == 200
    code, body = readyz(ready_status, now=111.0)
    assert code == 503
    assert body["checks"]["redis"]["error"] == "connection refused"
    never = WorkerStatus(redis_configured=True)
    never.mark_started()
    never.on_partitions_assigned(1)
    never.on_recovered()
    assert readyz(never, now=0.0)[0] == 503


def test_readyz_stopping(ready_status: WorkerStatus) -> None:
    ready_status.mark_stopping()
    assert readyz(ready_status, now=100.0)[0] == 503


def test_ready_gauge_follows_readyz(ready_status: WorkerStatus) -> None:
    clock = [100.0]
    bind_worker_status(ready_status, lambda: clock[0])
    try:
        assert _value("pacer_worker_ready") == 1
        clock[0] = 1000.0  # Redis success now stale
        assert _value("pacer_worker_ready") == 0
    finally:
        # set_function() installs an instance attribute; dropping it restores set().
        vars(m.WORKER_READY).pop("_child_samples", None)
    m.set_worker_ready(True)
    assert _value("pacer_worker_ready") == 1
    m.set_worker_ready(False)
    assert _value("pacer_worker_ready") == 0


# --- logging ------------------------------------------------------------------------------


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    yield stream
    for h in list(root.handlers):
        if h not in saved_handlers:
            root.removeHandler(h)
    for h in saved_handlers:
        if h not in root.handlers:
            root.addHandler(h)
    root.setLevel(saved_level)


def test_structlog_lines_are_json(log_stream: io.StringIO) -> None:
    get_logger("pacer_stream.test").info(
        "spend_applied", amount_micros=5, channel=ChannelType.SEARCH
    )
    get_logger("pacer_stream.test").debug("not shown at info")
    lines = log_stream.getvalue().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event"] == "spend_applied"
    assert record["logger"] == "pacer_stream.test"
    assert record["level"] == "info"
    assert record["timestamp"].endswith("Z") and "T" in record["timestamp"]
    assert record["amount_micros"] == 5


def test_stdlib_logging_is_routed_through_json(log_stream: io.StringIO) -> None:
    logging.getLogger("aiokafka.consumer").warning("heartbeat failed for %s", "group-1")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("faust").exception("agent crashed")
    first, second = (json.loads(line) for line in log_stream.getvalue().splitlines())
    assert first == {
        "event": "heartbeat failed for group-1",
        "logger": "aiokafka.consumer",
        "level": "warning",
        "timestamp": first["timestamp"],
    }
    assert second["level"] == "error" and "RuntimeError: boom" in second["exception"]


def test_configure_logging_rejects_unknown_level() -> None:
    with pytest.raises(ValueError):
        configure_logging("loud")


def test_spend_metrics_of_a_counted_batch_are_observed_once_at_its_end() -> None:
    """Outside ``counting`` each record observes its own spend metrics; inside, the
    batch's records are observed together when it ends (same totals)."""
    clock = ManualClock()
    processor = Processor(clock=clock)
    held: dict[str, Stored] = {}

    def spend(i: int) -> None:
        event = SpendEvent(f"m-{i}", "metrics-c", ChannelType.SEARCH, 1_000, clock.now())
        result = processor.handle(
            processor.names.spend, 0, i, b"metrics-c", encode_spend(event), held.get
        )
        assert result.status == "applied" and result.store is not None
        held["metrics-c"] = result.store

    def applied() -> float:
        return _value("pacer_spend_events_total", result="applied")

    def lags() -> float:
        return _value("pacer_event_processing_lag_seconds_count")

    before, lags_before = applied(), lags()
    spend(0)
    assert (applied() - before, lags() - lags_before) == (1, 1)
    with processor.counting():
        spend(1)
        spend(2)
        assert (applied() - before, lags() - lags_before) == (1, 1)
    assert (applied() - before, lags() - lags_before) == (3, 3)
