"""Writes the broker refused: the worker stops, and commits nothing after the refusal.

The Kafka client reports a record's delivery on a future, after ``send`` returned. An
input record is acknowledged once its outputs (a DLQ entry, a reply, an alert, a breaker
state) are in the client's hands, and faust's offset commit flushes the client before it
commits -- but the flush waits for deliveries without looking at how they ended. A
delivery the broker refuses for good (an ACL that denies the topic, a record the broker
finds too large) would therefore be lost while the input behind it is committed: a
campaign value a restart does not have, a dead letter nobody sees, an alert nobody gets.

:class:`DeliveryWatch` looks at the delivery of every changelog write and every output.
The first failure is kept: from then on no offset is committed (the worker's consumer
asks :meth:`refuses_commits` before each commit), the records the refused write covers
stay held, the outputs waiting for it are not sent, and the worker stops itself (exit
code non-zero). The restarted worker reads again from the last commit, which precedes
the refused record's input, and produces it again; the offset high-water marks make the
replayed state changes no-ops. Retriable errors never get here: the client retries those
until its delivery timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pacer_stream.observability.logging import get_logger

log = get_logger("pacer_stream.deliveries")


class DeliveryWatch:
    """The first delivery that failed, if any; ``on_failure`` is called with it once
    (the worker stops itself there rather than waiting for its next batch)."""

    def __init__(self, on_failure: Callable[[BaseException], None] | None = None) -> None:
        self.failure: BaseException | None = None
        self._on_failure = on_failure

    def watch(self, delivery: asyncio.Future[Any], topic: str) -> None:
        """Look at ``delivery`` (a record's future from the Kafka client) once it ends."""
        delivery.add_done_callback(lambda fut: self._ended(fut, topic))

    def _ended(self, delivery: asyncio.Future[Any], topic: str) -> None:
        if delivery.cancelled():
            error: BaseException = asyncio.CancelledError(f"delivery to {topic} cancelled")
        elif (exc := delivery.exception()) is not None:
            error = exc
        else:
            return
        if self.failure is None:
            self.failure = error
            log.error("delivery_failed", topic=topic, error=repr(error))
            if self._on_failure is not None:
                self._on_failure(error)

    def refuses_commits(self) -> bool:
        """Whether an offset commit could now pass an input whose output was lost."""
        return self.failure is not None

    def raise_failure(self) -> None:
        """Raise the refused delivery's error, if any (an agent handing over work after
        the refusal stops there)."""
        if self.failure is not None:
            raise self.failure


def delivery_watch(app: Any) -> DeliveryWatch | None:
    """The app's delivery watch (None for an app that has none)."""
    watch: DeliveryWatch | None = getattr(app, "delivery_watch", None)
    return watch
