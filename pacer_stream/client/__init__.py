"""Clients for bid engines and other programs.

* ``FastPathClient`` -- Redis fast path: reserve / settle / release / breaker_state.
* ``PacerClient`` -- Kafka client (spend, can-spend request/reply, stop/resume, breaker
  follower); lives in ``pacer_stream/client/kafka.py`` and is re-exported here by its
  owner.
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

# from pacer_stream.client.kafka import PacerClient  (added with the Kafka client)

__all__ = [
    "FastPathClient",
    "Release",
    "ReleaseStatus",
    "Reservation",
    "SettleStatus",
    "Settlement",
    "StoreUnavailable",
]
