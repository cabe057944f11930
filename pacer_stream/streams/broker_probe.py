"""Is the broker there? A metadata round trip every second, recorded in the status.

Why a probe of its own: when the broker goes away, faust keeps its partition assignment
(no rebalance can happen without a coordinator) and its clients retry quietly, so nothing
in the worker's own state changes -- yet it can neither read input nor send replies.
``/readyz`` must say so (a load balancer or an operator then knows the worker is cut off),
and say it again as soon as the broker is back. The probe uses its own small aiokafka
client with the worker's connection settings (SASL/TLS included), so it also fails when
credentials stop working.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiokafka.client import AIOKafkaClient

from pacer_stream.observability.health import WorkerStatus
from pacer_stream.observability.logging import get_logger

log = get_logger("pacer_stream.streams.broker")


class BrokerProbe:
    """Records ``status.on_kafka_ok`` / ``on_kafka_error`` every ``interval_s``."""

    def __init__(
        self,
        options: dict[str, Any],
        status: WorkerStatus,
        *,
        interval_s: float = 1.0,
        timeout_s: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = dict(options)
        self.status = status
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.clock = clock
        self._client: AIOKafkaClient | None = None
        self._was_ok: bool | None = None

    async def probe_once(self) -> bool:
        """One metadata request (bootstrapping first if needed); never raises."""
        try:
            async with asyncio.timeout(self.timeout_s):
                if self._client is None:
                    client = AIOKafkaClient(
                        **self.options, request_timeout_ms=int(self.timeout_s * 1000)
                    )
                    try:
                        await client.bootstrap()
                    except BaseException:
                        await client.close()
                        raise
                    self._client = client
                await self._client.fetch_all_metadata()
        except Exception as exc:  # any failure means "not reachable now"
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self.status.on_kafka_error(reason)
            if self._was_ok is not False:
                log.warning("kafka_unreachable", error=reason)
            self._was_ok = False
            return False
        self.status.on_kafka_ok(self.clock())
        if self._was_ok is False:
            log.info("kafka_reachable_again")
        self._was_ok = True
        return True

    async def run(self) -> None:
        """Probe forever (cancel to stop)."""
        try:
            while True:
                await self.probe_once()
                await asyncio.sleep(self.interval_s)
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()
