"""A timer's sweep gives the event loop back between slices of ``timer_slice_ms``: an
agent with a batch runs in the middle of a long sweep instead of after it."""

from __future__ import annotations

import asyncio
from typing import Any

from pacer_stream.streams.processor import Result
from pacer_stream.streams.side_records import is_side_key

from .test_agents import Harness, _configure, _harness
from .test_value_writes import _acked, _spends


async def _steps_before_another_task(w: Harness, campaigns: int) -> tuple[int, int]:
    """Run a sweep over the owned campaigns beside a task started with it; returns (the
    steps the sweep had taken when the task ran, the steps in all)."""
    for i in range(campaigns):
        await _configure(w, f"slices-{i}")
    w.drain()
    steps: list[str] = []
    ran_after: list[int] = []

    def step(value: Any) -> Result:
        steps.append(value.campaign_id)
        return Result(status="ticked")

    async def other() -> None:
        ran_after.append(len(steps))

    await asyncio.gather(w.m.sweep(step), other())
    return ran_after[0], len(steps)


async def test_a_sweep_lets_other_tasks_run_between_slices(tmp_path: Any) -> None:
    w = _harness(tmp_path, timer_slice_ms=0)
    before, total = await _steps_before_another_task(w, 4)
    assert total == 4
    assert before == 1


async def test_a_sweep_within_one_slice_runs_to_the_end(tmp_path: Any) -> None:
    w = _harness(tmp_path, timer_slice_ms=1_000)
    before, total = await _steps_before_another_task(w, 4)
    assert before == total == 4


async def test_a_slice_waits_for_the_delivery_of_the_outputs_it_queued(tmp_path: Any) -> None:
    """A pace-snapshot run must not queue a whole table's records in the producer's
    buffer ahead of the agents' replies: each slice with outputs waits for the producer
    to deliver them; a slice without outputs does not wait."""
    w = _harness(tmp_path, timer_slice_ms=0)
    for i in range(3):
        await _configure(w, f"flush-{i}")
    w.drain()
    flushes: list[int] = []
    buffered: list[int] = []
    producer = w.m.app.producer

    async def flush() -> None:
        flushes.append(len(buffered))
        w.drain()  # what the producer sends

    producer.flush = flush  # the test's stand-in for the Kafka client's delivery

    def snapshot(value: Any) -> Result:
        result = w.m.processor.snapshots(value)
        buffered.append(len(result.messages))
        return result

    await w.m.sweep(snapshot)
    assert flushes == [1, 2, 3]  # a wait after each campaign's slice, for its snapshots
    flushes.clear()
    await w.m.sweep(lambda value: Result(status="ticked"))
    assert flushes == []


async def test_the_forecast_timer_runs_in_slices_too(tmp_path: Any) -> None:
    """Copying histories for due trainings is the timer's work on the event loop: a
    task started with it runs after the first campaign with a slice of 0."""
    w = _harness(tmp_path, timer_slice_ms=0)
    for i in range(3):
        await _configure(w, f"forecast-{i}")
    w.drain()
    runner = w.m.forecast_runner
    asked: list[str] = []
    may_be_due = runner.may_be_due

    def counted(key: tuple[str, str], until_hour: int, hours_held: int) -> bool:
        asked.append(key[0])
        return may_be_due(key, until_hour, hours_held)

    runner.may_be_due = counted  # type: ignore[method-assign]
    ran_after: list[int] = []

    async def other() -> None:
        ran_after.append(len(set(asked)))

    submitted, _ = await asyncio.gather(w.m.forecast_training(), other())
    assert submitted == 0  # no history yet: nothing to train
    assert len(set(asked)) == 3 and ran_after == [1]


async def test_a_sweep_sends_each_campaign_write_before_its_next_step(tmp_path: Any) -> None:
    """A campaign value is KiBs to encode, a tick of it microseconds: a slice of ticks
    whose writes were all encoded at the slice's end held the event loop for many times
    the slice (every campaign crossing an alert at once: 0.4-0.7 s with 200 campaigns).
    The sweep encodes and sends each write right after its step, so the slice's clock
    counts it; with one slice for the whole sweep, campaign i's value is sent before
    campaign i + 1 is stepped."""
    w = _harness(tmp_path, timer_slice_ms=1_000)
    for i in range(3):
        await _configure(w, f"writes-{i}")
    w.drain()
    sent_before_step: list[int] = []

    def step(value: Any) -> Result:
        sent_before_step.append(len(w.changelog(w.m.direct)))
        return Result(status="ticked", store=value)

    await w.m.sweep(step)
    assert sent_before_step == [0, 1, 2]
    assert len(w.changelog(w.drain())) == 3


async def test_deferred_value_writes_run_in_slices(tmp_path: Any) -> None:
    """The spend path's deferred values come due together (every campaign it touched an
    interval ago), each KiBs to encode: written in one go they held the write lock, and
    every record arriving meanwhile, for 15-20 ms with 100 campaigns (seconds with a
    large table). With a slice of 0 a task started beside the timer runs after the first
    write; every held value is still written and its records acknowledged."""
    w = _harness(tmp_path, timer_slice_ms=0, value_write_interval_s=1.0)
    cids = [f"deferred-{i}" for i in range(3)]
    for cid in cids:
        await _configure(w, cid)  # a write: each campaign's interval starts now
    w.drain()
    for cid in cids:
        await _spends(w, cid, 1_000, 2_000)
    held = {cid: w.m.value_writes.held(cid) for cid in cids}
    assert all(len(records) == 2 for records in held.values())
    w.clock.advance(1.0)
    values_when_other_ran: list[int] = []

    async def other() -> None:
        values_when_other_ran.append(len(_campaign_values(w, w.m.direct)))

    written, _ = await asyncio.gather(w.m.write_held(), other())
    assert written == 3
    assert values_when_other_ran == [1]
    assert len(_campaign_values(w, w.drain())) == 3
    assert all(_acked(records) == [True, True] for records in held.values())


async def test_deferred_value_writes_within_one_slice_run_to_the_end(tmp_path: Any) -> None:
    w = _harness(tmp_path, timer_slice_ms=1_000, value_write_interval_s=1.0)
    cids = [f"one-slice-{i}" for i in range(3)]
    for cid in cids:
        await _configure(w, cid)
    w.drain()
    for cid in cids:
        await _spends(w, cid, 1_000)
    w.clock.advance(1.0)
    values_when_other_ran: list[int] = []

    async def other() -> None:
        values_when_other_ran.append(len(_campaign_values(w, w.m.direct)))

    written, _ = await asyncio.gather(w.m.write_held(), other())
    assert written == 3 and values_when_other_ran == [3]


def _campaign_values(w: Harness, outs: list[Any]) -> list[Any]:
    """Changelog writes of campaign values (not event-id or grant records)."""
    return [o for o in w.changelog(outs) if o.key is not None and not is_side_key(o.key)]
