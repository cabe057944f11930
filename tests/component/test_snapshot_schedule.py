"""The pace-snapshot timer's schedule: every run snapshots the owned campaigns changed
since the run before; every owned campaign is snapshotted at the first run
``snapshot_idle_interval_s`` (the worker's clock) after the last full one, and first
after a table recovery."""

from __future__ import annotations

import uuid
from typing import Any

from pacer_stream.wire import topics

from .test_agents import Harness, _configure, _harness, _spend


def _snapshotted(w: Harness) -> set[str]:
    """The campaigns of the pace snapshots produced since the last drain."""
    return {o.key.decode() for o in w.on(w.drain(), topics.PACE) if o.key is not None}


async def _two_campaigns(w: Harness) -> tuple[str, str]:
    busy, idle = (f"snap-{kind}-{uuid.uuid4().hex[:8]}" for kind in ("busy", "idle"))
    await _configure(w, busy)
    await _configure(w, idle)
    w.drain()
    return busy, idle


async def test_between_full_runs_only_changed_campaigns_are_snapshotted(tmp_path: Any) -> None:
    w = _harness(tmp_path, snapshot_idle_interval_s=300)
    busy, idle = await _two_campaigns(w)
    await w.m.snapshot_all()  # the first run after recovery: every owned campaign
    assert _snapshotted(w) == {busy, idle}

    w.clock.advance(60)
    async with w.m.spend_events.test_context() as agent:
        await w.put(agent, _spend(busy, "e1", 1_000_000, w.clock.now()), key=busy.encode())
    w.drain()
    await w.m.snapshot_all()
    assert _snapshotted(w) == {busy}  # the idle campaign waits for the full run

    w.clock.advance(60)
    await w.m.snapshot_all()
    assert _snapshotted(w) == set()  # nothing changed since the run before

    w.clock.advance(180)  # 300 s since the last full run
    await w.m.snapshot_all()
    assert _snapshotted(w) == {busy, idle}


async def test_an_idle_interval_of_zero_snapshots_every_campaign_every_run(
    tmp_path: Any,
) -> None:
    w = _harness(tmp_path, snapshot_idle_interval_s=0)
    busy, idle = await _two_campaigns(w)
    for _ in range(3):
        await w.m.snapshot_all()
        assert _snapshotted(w) == {busy, idle}
        w.clock.advance(60)


async def test_a_recovered_table_is_snapshotted_whole_at_the_next_run(tmp_path: Any) -> None:
    w = _harness(tmp_path, snapshot_idle_interval_s=300)
    busy, idle = await _two_campaigns(w)
    await w.m.snapshot_all()
    w.drain()
    w.clock.advance(60)
    await w.m.on_recovered()  # partitions may have moved: what is owned now is new here
    w.drain()
    await w.m.snapshot_all()
    assert _snapshotted(w) == {busy, idle}


async def test_a_clock_set_back_takes_a_full_run(tmp_path: Any) -> None:
    w = _harness(tmp_path, snapshot_idle_interval_s=300)
    busy, idle = await _two_campaigns(w)
    await w.m.snapshot_all()
    w.drain()
    w.clock.advance(-120)
    await w.m.snapshot_all()
    assert _snapshotted(w) == {busy, idle}
