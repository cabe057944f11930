"""Liveness (``/healthz``) and readiness (``/readyz``) of a pacer-stream worker.

Why pure functions over a status object: the worker's faust web views, its callbacks
(partitions assigned/revoked, table recovery finished, Redis publish succeeded/failed) and
the tests all share one small mutable :class:`WorkerStatus`. The callbacks only *record*
facts; :func:`healthz` and :func:`readyz` *judge* them, given the current monotonic time.
No faust, aiohttp or redis import here, so the rules are unit-testable without a broker
and the web layer stays a two-line adapter::

    status = WorkerStatus(redis_configured=True)
    # in callbacks: status.on_partitions_assigned(len(assigned)), status.on_recovered(),
    #               status.on_redis_ok(time.monotonic()), status.on_redis_error(...)
    code, body = readyz(status, time.monotonic())
    return web.json(body, status=code)

Semantics:

* **healthz** answers "should Kubernetes restart me?". It is 200 while the process runs
  and no component declared a fatal error (:meth:`WorkerStatus.mark_fatal`). It
  deliberately ignores Kafka and Redis: restarting a worker does not fix a broker outage,
  and restart loops during an outage only add rebalances.
* **readyz** answers "is this worker doing its job now?": started and not stopping, a
  partition assignment received since start and no rebalance/recovery in progress
  (tables recovered), when the broker is probed a metadata round trip within
  ``kafka_stale_after_s`` (a worker cut off from its broker keeps its assignment but can
  neither read nor reply: it must not look ready), and, when Redis is configured, a
  successful Redis round trip within ``redis_stale_after_s``. A worker with zero
  partitions after a completed rebalance is ready: with more workers than partitions
  that is a normal standby, not a fault.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pacer_stream.observability import metrics

__all__ = ["WorkerStatus", "bind_worker_status", "healthz", "readyz"]

OK: int = 200
UNAVAILABLE: int = 503


@dataclass
class WorkerStatus:
    """Facts the worker records as they happen; judged by :func:`readyz`.

    Times are ``time.monotonic()`` seconds, supplied by the caller, so tests control the
    clock and no wall-clock jump can flip readiness.
    """

    #: Whether a Redis fast path is configured (if not, Redis is not a readiness check).
    redis_configured: bool = False
    #: Redis must have answered within this many seconds for the worker to be ready.
    redis_stale_after_s: float = 15.0

    started: bool = False
    stopping: bool = False
    fatal_error: str | None = None
    #: At least one assignment was received since start (possibly empty).
    assignment_received: bool = False
    #: A rebalance is in progress or tables are still being recovered from changelogs.
    recovering: bool = False
    assigned_partitions: int = 0
    redis_ok_at: float | None = None
    redis_error: str | None = None
    #: Whether the worker probes its broker (see ``streams/broker_probe.py``); when it
    #: does, a metadata round trip must have succeeded within ``kafka_stale_after_s``.
    kafka_probed: bool = False
    kafka_stale_after_s: float = 6.0
    kafka_ok_at: float | None = None
    kafka_error: str | None = None
    #: Free-form extra facts shown in the readiness body (e.g. app id, version).
    details: dict[str, Any] = field(default_factory=dict)

    def mark_started(self) -> None:
        """Record that the worker finished starting its services."""
        self.started = True

    def mark_stopping(self) -> None:
        """Record a shutdown in progress, so traffic is drained before exit."""
        self.stopping = True

    def mark_fatal(self, reason: str) -> None:
        """Record an unrecoverable error: liveness fails and Kubernetes restarts us."""
        self.fatal_error = reason

    def on_rebalance_started(self) -> None:
        """Partitions were revoked: state is incomplete until the new assignment recovers."""
        self.recovering = True

    def on_partitions_assigned(self, count: int) -> None:
        """A new assignment arrived; tables must now recover before we are ready."""
        self.assignment_received = True
        self.assigned_partitions = max(0, int(count))
        self.recovering = True
        metrics.set_assigned_partitions(self.assigned_partitions)

    def on_recovered(self) -> None:
        """Table recovery for the current assignment finished."""
        self.recovering = False

    def on_redis_ok(self, now: float) -> None:
        """A Redis command (ping or publish) succeeded at monotonic time ``now``."""
        self.redis_ok_at = now
        self.redis_error = None

    def on_redis_error(self, error: str) -> None:
        """A Redis command failed; readiness fails once the last success is stale."""
        self.redis_error = error

    def on_kafka_ok(self, now: float) -> None:
        """The broker answered a metadata request at monotonic time ``now``."""
        self.kafka_probed = True
        self.kafka_ok_at = now
        self.kafka_error = None

    def on_kafka_error(self, error: str) -> None:
        """The broker did not answer; readiness fails at once (the probe already waited
        for its own timeout, so one failure is a real outage, not a blip)."""
        self.kafka_probed = True
        self.kafka_error = error


def healthz(status: WorkerStatus) -> tuple[int, dict[str, Any]]:
    """Return ``(http_status, body)`` for the liveness probe."""
    if status.fatal_error is not None:
        return UNAVAILABLE, {"status": "fatal", "error": status.fatal_error}
    return OK, {"status": "ok"}


def _kafka_check(status: WorkerStatus, now: float) -> dict[str, Any]:
    """Judge the broker: an assignment received and, when probed, a recent answer."""
    check: dict[str, Any] = {
        "ok": status.assignment_received,
        "assignment_received": status.assignment_received,
        "assigned_partitions": status.assigned_partitions,
    }
    if status.kafka_probed:
        age = None if status.kafka_ok_at is None else max(0.0, now - status.kafka_ok_at)
        reachable = (
            status.kafka_error is None and age is not None and age <= status.kafka_stale_after_s
        )
        check["ok"] = check["ok"] and reachable
        check["broker_reachable"] = reachable
        check["last_ok_age_s"] = age
        if status.kafka_error is not None:
            check["error"] = status.kafka_error
    return check


def _redis_check(status: WorkerStatus, now: float) -> dict[str, Any]:
    """Judge the Redis fast-path connection at monotonic time ``now``."""
    if not status.redis_configured:
        return {"ok": True, "configured": False}
    age = None if status.redis_ok_at is None else max(0.0, now - status.redis_ok_at)
    ok = age is not None and age <= status.redis_stale_after_s
    check: dict[str, Any] = {"ok": ok, "configured": True, "last_ok_age_s": age}
    if status.redis_error is not None:
        check["error"] = status.redis_error
    return check


def readyz(status: WorkerStatus, now: float) -> tuple[int, dict[str, Any]]:
    """Return ``(http_status, body)`` for the readiness probe at monotonic time ``now``.

    The body lists every check with its verdict, so an operator reading the probe output
    sees *why* a worker is not ready.
    """
    checks: dict[str, dict[str, Any]] = {
        "process": {
            "ok": status.started and not status.stopping and status.fatal_error is None,
            "started": status.started,
            "stopping": status.stopping,
        },
        "kafka": _kafka_check(status, now),
        "tables": {"ok": status.assignment_received and not status.recovering},
        "redis": _redis_check(status, now),
    }
    ready = all(c["ok"] for c in checks.values())
    body: dict[str, Any] = {"status": "ready" if ready else "not_ready", "checks": checks}
    if status.details:
        body["details"] = dict(status.details)
    return (OK if ready else UNAVAILABLE), body


def bind_worker_status(status: WorkerStatus, clock: Callable[[], float]) -> None:
    """Make ``pacer_worker_ready`` follow :func:`readyz` at every scrape.

    ``clock`` is a zero-argument callable returning monotonic seconds (normally
    ``time.monotonic``). Evaluating at scrape time means the gauge can never disagree
    with the probe, and nobody has to remember to update it.
    """
    metrics.WORKER_READY.set_function(lambda: 1.0 if readyz(status, clock())[0] == OK else 0.0)
