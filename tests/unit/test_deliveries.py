"""The delivery watch (:mod:`pacer_stream.streams.deliveries`): the first write the
broker refused is kept and reported once, commits are refused from then on, and the next
agent raises it."""

from __future__ import annotations

import asyncio

import pytest

from pacer_stream.streams.deliveries import DeliveryWatch, delivery_watch


async def _settled() -> None:
    await asyncio.sleep(0)  # done callbacks run on the loop's next turn


async def test_delivered_outputs_leave_commits_alone() -> None:
    watch = DeliveryWatch()
    delivery: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    watch.watch(delivery, "pacer.dlq.v1")
    delivery.set_result(7)
    await _settled()
    assert not watch.refuses_commits()
    watch.raise_failure()  # nothing to raise


async def test_a_refused_output_refuses_commits_and_is_raised() -> None:
    loop = asyncio.get_running_loop()
    told: list[BaseException] = []
    watch = DeliveryWatch(on_failure=told.append)
    first: asyncio.Future[int] = loop.create_future()
    second: asyncio.Future[int] = loop.create_future()
    watch.watch(first, "pacer.dlq.v1")
    watch.watch(second, "pacer.alerts.v1")
    assert not watch.refuses_commits()  # still in flight
    first.set_exception(PermissionError("topic authorization failed"))
    second.set_exception(ValueError("record too large"))
    await _settled()
    assert watch.refuses_commits()
    with pytest.raises(PermissionError):  # the first refusal is the one kept
        watch.raise_failure()
    assert [type(e) for e in told] == [PermissionError]  # told once, of the first


async def test_a_cancelled_delivery_counts_as_lost() -> None:
    watch = DeliveryWatch()
    delivery: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    watch.watch(delivery, "pacer.can-spend.replies.v1")
    delivery.cancel()
    await _settled()
    assert watch.refuses_commits()


def test_an_app_without_a_watch_has_none() -> None:
    class App:
        pass

    app = App()
    assert delivery_watch(app) is None
    app.delivery_watch = DeliveryWatch()  # type: ignore[attr-defined]
    assert delivery_watch(app) is app.delivery_watch  # type: ignore[attr-defined]
