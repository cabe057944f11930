"""Readiness follows the broker: a worker cut off from Kafka is not ready, and is again
as soon as the broker answers (the probe records facts; ``readyz`` judges them)."""

from __future__ import annotations

from pacer_stream.observability.health import WorkerStatus, readyz


def _ready() -> WorkerStatus:
    status = WorkerStatus(kafka_stale_after_s=6.0)
    status.mark_started()
    status.on_partitions_assigned(2)
    status.on_recovered()
    return status


def test_unprobed_worker_judges_by_assignment_only() -> None:
    code, body = readyz(_ready(), now=50.0)
    assert code == 200 and "broker_reachable" not in body["checks"]["kafka"]


def test_broker_error_makes_the_worker_not_ready_then_ready_again() -> None:
    status = _ready()
    status.on_kafka_ok(100.0)
    assert readyz(status, now=101.0)[0] == 200
    status.on_kafka_error("KafkaConnectionError: Unable to bootstrap")
    code, body = readyz(status, now=102.0)
    assert code == 503
    kafka = body["checks"]["kafka"]
    assert kafka["ok"] is False and kafka["broker_reachable"] is False
    assert kafka["error"].startswith("KafkaConnectionError")
    assert body["checks"]["tables"]["ok"] is True  # the reason is the broker, not state
    status.on_kafka_ok(110.0)
    code, body = readyz(status, now=110.5)
    assert code == 200 and "error" not in body["checks"]["kafka"]


def test_a_probe_that_stopped_answering_goes_stale() -> None:
    status = _ready()
    status.on_kafka_ok(100.0)
    assert readyz(status, now=106.0)[0] == 200
    code, body = readyz(status, now=106.5)
    assert code == 503 and body["checks"]["kafka"]["last_ok_age_s"] == 6.5


def test_error_before_any_success_is_not_ready() -> None:
    status = _ready()
    status.on_kafka_error("TimeoutError")
    assert readyz(status, now=1.0)[0] == 503
