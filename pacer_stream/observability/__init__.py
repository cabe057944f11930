"""Operational surface of pacer-stream: Prometheus metrics, health probes, JSON logs.

Nothing here imports faust, aiokafka or redis, so the core, the simulator and the tests
can use the helpers freely; the worker's web views are thin adapters over
:mod:`.metrics` (``render_latest``) and :mod:`.health` (``healthz``/``readyz``).
"""

from __future__ import annotations

from pacer_stream.observability.health import WorkerStatus, bind_worker_status, healthz, readyz
from pacer_stream.observability.logging import configure_logging, get_logger
from pacer_stream.observability.metrics import REGISTRY, render_latest

__all__ = [
    "REGISTRY",
    "WorkerStatus",
    "bind_worker_status",
    "configure_logging",
    "get_logger",
    "healthz",
    "readyz",
    "render_latest",
]
