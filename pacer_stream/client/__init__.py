"""Clients for bid engines and other programs.

* ``FastPathClient`` -- Redis fast path: reserve / settle / release / breaker_state.
* ``PacerClient`` -- Kafka client (spend, budgets, can-spend request/reply, stop/resume)
  and ``BreakerFollower`` (latest breaker state per campaign/channel from the compacted
  breakers topic); both live in ``pacer_stream/client/kafka.py``.
"""

from pacer_stream.adapters.store import (
    Release,
    ReleaseStatus,
    Reservation,
    Settlement,
    SettleStatus,
    StoreUnavailable,
)
from pacer_stream.client.fastpath import FastPathClient
from pacer_stream.client.kafka import BreakerFollower, PacerClient
from pacer_stream.client.publisher import SpendPublisher

__all__ = [
    "BreakerFollower",
    "FastPathClient",
    "PacerClient",
    "Release",
    "ReleaseStatus",
    "Reservation",
    "SettleStatus",
    "Settlement",
    "SpendPublisher",
    "StoreUnavailable",
]
