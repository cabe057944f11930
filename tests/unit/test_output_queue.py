"""The output queue: outputs wait for their writes, keep their order, and only then let
their input records be acknowledged; a failed send stops the queue and is raised."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from pacer_stream.streams.output_queue import OutputJob, OutputQueue


class Recorder:
    def __init__(self, fail_on: str | None = None) -> None:
        self.sent: list[str] = []
        self.released: list[Any] = []
        self.fail_on = fail_on

    async def send(self, message: str) -> None:
        if message == self.fail_on:
            raise RuntimeError(f"cannot send {message}")
        self.sent.append(message)

    def release(self, records: Sequence[Any]) -> None:
        self.released.extend(records)


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_outputs_wait_for_their_writes_then_release_records() -> None:
    rec = Recorder()
    queue: OutputQueue[str] = OutputQueue(rec.send, rec.release)
    write = asyncio.get_running_loop().create_future()
    queue.put(OutputJob([write], ["reply-1", "alert-1"], ["r1", "r2"]))
    await settle()
    assert rec.sent == [] and rec.released == [] and len(queue) == 1
    write.set_result(None)
    await settle()
    assert rec.sent == ["reply-1", "alert-1"]
    assert rec.released == ["r1", "r2"] and len(queue) == 0


async def test_a_later_job_never_overtakes_an_earlier_one() -> None:
    rec = Recorder()
    queue: OutputQueue[str] = OutputQueue(rec.send, rec.release)
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    queue.put(OutputJob([first], ["breaker-open"], ["r1"]))
    queue.put(OutputJob([second], ["breaker-closed"], ["r2"]))
    queue.put(OutputJob([], ["dlq"], []))  # nothing to wait for, still in line
    second.set_result(None)  # the later write is delivered first
    await settle()
    assert rec.sent == [] and rec.released == []
    first.set_result(None)
    await settle()
    assert rec.sent == ["breaker-open", "breaker-closed", "dlq"]
    assert rec.released == ["r1", "r2"]


async def test_a_refused_write_stops_the_queue_before_its_outputs() -> None:
    """A reply or alert must not report a state the broker refused to keep: a restart
    would not have it. The records stay held and the failure is raised."""
    rec = Recorder()
    queue: OutputQueue[str] = OutputQueue(rec.send, rec.release)
    write = asyncio.get_running_loop().create_future()
    write.set_exception(RuntimeError("broker refused the value"))
    queue.put(OutputJob([write], ["reply"], ["r1"]))
    queue.put(OutputJob([], ["later"], ["r2"]))
    await queue.drain()
    assert rec.sent == [] and rec.released == [] and len(queue) == 2
    with pytest.raises(RuntimeError, match="broker refused the value"):
        queue.raise_failure()


async def test_a_failed_send_stops_the_queue_keeps_records_held_and_is_raised() -> None:
    rec = Recorder(fail_on="alert")
    queue: OutputQueue[str] = OutputQueue(rec.send, rec.release)
    queue.put(OutputJob([], ["reply", "alert"], ["r1"]))
    queue.put(OutputJob([], ["later"], ["r2"]))
    await queue.drain()
    assert rec.sent == ["reply"] and rec.released == [] and len(queue) == 2
    with pytest.raises(RuntimeError, match="cannot send alert"):
        queue.raise_failure()


async def test_drain_waits_for_every_job() -> None:
    rec = Recorder()
    queue: OutputQueue[str] = OutputQueue(rec.send, rec.release)
    write = asyncio.get_running_loop().create_future()
    queue.put(OutputJob([write], ["reply"], ["r1"]))
    drained = asyncio.ensure_future(queue.drain())
    await settle()
    assert not drained.done()
    write.set_result(None)
    await drained
    assert rec.sent == ["reply"] and rec.released == ["r1"]


async def test_room_waits_while_more_jobs_than_the_limit_are_queued() -> None:
    rec = Recorder()
    queue: OutputQueue[str] = OutputQueue(rec.send, rec.release)
    loop = asyncio.get_running_loop()
    writes = [loop.create_future() for _ in range(3)]
    for i, write in enumerate(writes):
        queue.put(OutputJob([write], [f"out-{i}"], [f"r{i}"]))
    room = asyncio.ensure_future(queue.room(1))
    await settle()
    assert not room.done()  # three queued, one allowed
    writes[0].set_result(None)
    await settle()
    assert not room.done() and len(queue) == 2
    writes[1].set_result(None)
    await settle()
    assert room.done() and len(queue) == 1
    writes[2].set_result(None)
    await queue.drain()
    assert rec.sent == ["out-0", "out-1", "out-2"]
