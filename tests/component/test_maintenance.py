"""The maintenance timer's schedule: campaigns that await time (holds, a breaker away
from CLOSED, outputs waiting) are ticked every interval, every other owned campaign at
the full tick (``maintenance_full_interval_s`` of the worker's clock), and the gauges stay
exact in between."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from pacer_stream.core.types import CircuitBreakerState
from pacer_stream.observability import metrics

from .test_agents import GOOGLE, Harness, _configure, _harness, _request

DAY_S = 86_400


def _day(w: Harness, cid: str) -> Any:
    return w.state(cid).channels[GOOGLE].day.date


def _gauge(name: str, **labels: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(name, labels)


async def _reserve(w: Harness, cid: str, rid: str) -> None:
    async with w.m.can_spend.test_context() as agent:
        await w.put(agent, _request(cid, rid, 2_000_000, w.clock.now()), key=cid.encode())


async def test_between_full_ticks_only_campaigns_that_await_time_are_ticked(
    tmp_path: Any,
) -> None:
    w = _harness(tmp_path, maintenance_full_interval_s=DAY_S)
    held, idle = (f"maint-{kind}-{uuid.uuid4().hex[:8]}" for kind in ("held", "idle"))
    await _configure(w, held, reservation_ttl_s=10)
    await _configure(w, idle)
    await w.m.maintenance()  # the first pass after recovery ticks every campaign
    await _reserve(w, held, "r1")
    await w.m.maintenance()
    assert _gauge("pacer_reservations_active") == 1
    # Two UTC campaigns, two channels each: all CLOSED, counted against the full tick.
    assert _gauge("pacer_breakers", state=CircuitBreakerState.CLOSED.value) == 4

    first_day = _day(w, idle)
    w.clock.advance(13 * 3600)  # past midnight, well inside the full interval
    await w.m.maintenance()
    assert w.state(held).channels[GOOGLE].reserved_total == 0  # its hold expired promptly
    assert _day(w, held) == first_day + timedelta(days=1)  # and its day rolled with it
    assert _day(w, idle) == first_day  # awaits nothing: left to the full tick
    assert _gauge("pacer_reservations_active") == 0

    w.clock.advance(DAY_S - 13 * 3600)  # a full interval since the last full tick
    await w.m.maintenance()
    assert _day(w, idle) == first_day + timedelta(days=1)  # noon the next day: rolled
