"""The worker's stream (:class:`PacerStream`): ``take_events`` batches keep faust's
contract -- order, at most ``max_`` events, a full batch handed over at once, a lone
event handed over after the window, every event acknowledged after its batch."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from typing import Any

import faust

from pacer_stream.streams.stream import PacerStream


def _app() -> faust.App:
    return faust.App(
        f"pacer-stream-test-{uuid.uuid4().hex[:8]}",
        Stream=PacerStream,
        store="memory://",
        autodiscover=False,
    )


async def _until(done: Any) -> None:
    for _ in range(2000):
        if done():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition not met within 2 s")


def _collecting_agent(app: faust.App, max_: int, within: float) -> tuple[Any, list[list[Any]]]:
    batches: list[list[Any]] = []
    acked_before: list[bool] = []

    @app.agent(app.channel())  # type: ignore[untyped-decorator]
    async def take(stream: faust.Stream[Any]) -> None:
        assert isinstance(stream, PacerStream)
        async for events in stream.take_events(max_, within):
            acked_before.extend(e.message.acked for e in events)
            batches.append([e.value for e in events])

    take.acked_before = acked_before
    return take, batches


async def test_full_batches_come_at_once_in_order_and_never_above_max() -> None:
    app = _app()
    agent, batches = _collecting_agent(app, max_=3, within=3600.0)  # the window never ends
    async with agent.test_context() as ctx:
        for i in range(9):
            await ctx.put(i)
        await _until(lambda: sum(map(len, batches)) == 9)
    assert [v for b in batches for v in b] == list(range(9))
    assert all(1 <= len(b) <= 3 for b in batches)
    assert not any(agent.acked_before)  # acknowledged after the batch, not before


async def test_a_lone_event_is_handed_over_after_the_window() -> None:
    app = _app()
    agent, batches = _collecting_agent(app, max_=100, within=0.01)
    async with agent.test_context() as ctx:
        await ctx.put("only")
        await _until(lambda: batches)
        await ctx.put("next")
        await _until(lambda: len(batches) == 2)
    assert batches == [["only"], ["next"]]


async def test_a_zero_window_hands_over_what_has_arrived_without_waiting() -> None:
    """``within`` 0 (the can-spend agent's): no wait for company, and no wait for a
    full batch either (a lone event would otherwise wait for ``max_`` - 1 more)."""
    app = _app()
    agent, batches = _collecting_agent(app, max_=100, within=0.0)
    async with agent.test_context() as ctx:
        await ctx.put("only")
        await _until(lambda: batches)
        for value in ("a", "b", "c"):
            await ctx.put(value)
        await _until(lambda: sum(map(len, batches)) == 4)
    assert [v for b in batches for v in b] == ["only", "a", "b", "c"]
    assert batches[0] == ["only"]


def _batches_of_two(app: faust.App, seen: list[Sequence[Any]], fail_at: int = 0) -> Any:
    """An agent keeping its batches of two in ``seen``; it raises on batch ``fail_at``
    (counted from 1; 0: never)."""

    @app.agent(app.channel())  # type: ignore[untyped-decorator]
    async def take(stream: faust.Stream[Any]) -> None:
        async for events in stream.take_events(2, 3600.0):
            seen.append(events)
            if len(seen) == fail_at:
                raise RuntimeError("the producer refused a write")

    return take


async def test_events_are_acknowledged_once_their_batch_is_handled() -> None:
    app = _app()
    seen: list[Sequence[Any]] = []
    take = _batches_of_two(app, seen)
    async with take.test_context() as ctx:
        for i in range(4):
            await ctx.put(i)
        await _until(lambda: len(seen) == 2 and all(e.message.acked for e in seen[1]))
    assert all(e.message.acked for batch in seen for e in batch)


async def test_a_batch_whose_handler_raised_is_never_acknowledged() -> None:
    """The agent raised with the batch in hand: its events stay unacknowledged, so the
    offset commit cannot pass them and a restarted worker replays them."""
    app = _app()
    seen: list[Sequence[Any]] = []
    take = _batches_of_two(app, seen, fail_at=2)
    with contextlib.suppress(RuntimeError):
        async with take.test_context() as ctx:
            for i in range(4):
                await ctx.put(i)
            await _until(lambda: len(seen) == 2)
    assert [e.value for e in seen[1]] == [2, 3]
    assert all(e.message.acked for e in seen[0])  # handled: acknowledged
    assert not any(e.message.acked for e in seen[1])  # raised: never acknowledged
