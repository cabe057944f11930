"""The forecast runner: background training, atomic swaps, timeouts that never block the
event loop. No sleeps: slow trainings are fakes held by a threading.Event, and the
timeout is an injected timer released by an asyncio.Event."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pacer_stream.adapters.forecast_runner import (
    BUSY,
    FAILED,
    INSTALLED,
    SUPERSEDED,
    TIMEOUT,
    ForecastRunner,
    process_executor,
)
from pacer_stream.core.engine import PacingEngine
from pacer_stream.core.forecast.dataset import HistorySnapshot
from pacer_stream.core.forecast.service import ModelRegistry, snapshot, snapshots_of
from pacer_stream.core.forecast.training import TrainedModel, train
from pacer_stream.core.state import CampaignState, ChannelState
from pacer_stream.core.types import (
    CampaignConfig,
    ChannelConfig,
    ChannelType,
    PacingStrategy,
    SpendEvent,
)

from .forecast_market import Market, synthetic_history

M = Market()
KEY = ("camp", "google_ads")


def _snap(n_hours: int, seed: int = 0) -> tuple[HistorySnapshot, datetime]:
    hist = synthetic_history(M, n_hours, seed=seed)
    now = datetime.fromtimestamp((max(hist.buckets) + 1) * 3600, UTC)
    return snapshot(hist, M.tz, now), now


SNAP, NOW = _snap(8 * 24)
MODEL = train(SNAP, NOW)


class EventTimer:
    """Injected timeout: 'expires' when the test sets ``fire``."""

    def __init__(self) -> None:
        self.fire = asyncio.Event()
        self.started: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.started.append(seconds)
        await self.fire.wait()


class BlockingTrainer:
    """A slow trainer: runs in the executor thread until the test releases it."""

    def __init__(self, result: TrainedModel | Exception) -> None:
        self.result = result
        self.entered = threading.Event()
        self.release = threading.Event()
        self.kwargs: dict[str, Any] = {}

    def __call__(self, snap: HistorySnapshot, now: datetime, **kwargs: Any) -> TrainedModel:
        self.kwargs = kwargs
        self.entered.set()
        assert self.release.wait(60), "test never released the trainer"
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def _newer(model: TrainedModel, hours: int = 24) -> TrainedModel:
    return replace(model, data_until_hour=model.data_until_hour + hours)


async def _engine_work(n: int) -> int:
    """Event processing on the loop: reserve -> record n times."""
    engine = PacingEngine()
    t = datetime(2026, 3, 2, 12, tzinfo=UTC)
    cfg = CampaignConfig(
        "c", {ChannelType.DISPLAY: ChannelConfig(10**12)}, PacingStrategy.EVEN_DISTRIBUTION
    )
    state, _ = engine.configure(None, cfg, t)
    done = 0
    for i in range(n):
        d, _ = engine.reserve(state, ChannelType.DISPLAY, 1000, f"r{i}", t)
        if d.allowed:
            ev = SpendEvent(
                f"e{i}",
                "c",
                ChannelType.DISPLAY,
                1000,
                t,
                clicks=1,
                reservation_id=d.reservation_id,
            )
            engine.record_spend(state, ev, t)
            done += 1
        await asyncio.sleep(0)  # yield like a stream agent between events
    return done


async def test_background_training_installs_versions_atomically() -> None:
    reg = ModelRegistry()
    installed: list[TrainedModel] = []
    runner = ForecastRunner(reg, on_installed=lambda k, m: installed.append(m))
    task = runner.submit(KEY, SNAP, NOW)
    assert task is not None
    assert runner.busy(KEY)
    assert runner.submit(KEY, SNAP, NOW) is None  # one training per key at a time
    out = await task
    assert out.status == INSTALLED
    assert out.model is not None and out.model.version == 1
    assert reg.get(KEY) is out.model
    assert installed == [out.model]
    assert not runner.busy(KEY)
    out2 = await runner.train_now(KEY, SNAP, NOW)
    assert out2.status == INSTALLED and out2.model is not None
    assert out2.model.version == 2
    assert out2.model.label == out.model.label.replace(":v1", ":v2")
    assert reg.get(KEY) is out2.model
    assert runner.counts[INSTALLED] == 2
    assert runner.counts[BUSY] == 1
    await runner.aclose()


async def test_a_slow_training_times_out_without_blocking_the_event_loop() -> None:
    reg = ModelRegistry()
    v1 = reg.install(KEY, MODEL)
    trainer = BlockingTrainer(_newer(MODEL))
    timer = EventTimer()
    runner = ForecastRunner(reg, trainer=trainer, timer=timer, timeout_s=7.5, budget_s=0.25)
    task = runner.submit(KEY, SNAP, NOW)
    assert task is not None
    await asyncio.to_thread(trainer.entered.wait, 60)  # training is now running
    # The loop keeps processing events while the trainer is stuck in its thread.
    assert await _engine_work(200) == 200
    assert not task.done()
    assert timer.started == [7.5]
    assert trainer.kwargs["budget_s"] == 0.25 and callable(trainer.kwargs["clock"])
    timer.fire.set()  # the timeout expires
    out = await task
    assert out.status == TIMEOUT
    assert reg.get(KEY) is v1  # the old model stays in place
    # The abandoned thread still runs: no second training piles up behind it.
    assert runner.busy(KEY)
    assert runner.submit(KEY, SNAP, NOW) is None
    trainer.release.set()
    await runner.settle()
    assert not runner.busy(KEY)
    assert runner.counts["late_discarded"] == 1
    assert reg.get(KEY) is v1  # the late result was discarded, never installed
    assert reg.version(KEY) == 1
    await runner.aclose()


async def test_a_training_that_finishes_in_time_wins_the_race_with_its_timer() -> None:
    reg = ModelRegistry()
    trainer = BlockingTrainer(MODEL)
    timer = EventTimer()
    runner = ForecastRunner(reg, trainer=trainer, timer=timer)
    task = runner.submit(KEY, SNAP, NOW)
    assert task is not None
    await asyncio.to_thread(trainer.entered.wait, 60)
    trainer.release.set()
    out = await task
    assert out.status == INSTALLED
    assert runner.counts[TIMEOUT] == 0
    timer.fire.set()  # a timer firing afterwards changes nothing
    await runner.settle()
    assert reg.version(KEY) == 1
    await runner.aclose()


async def test_a_failing_trainer_is_reported_and_frees_the_key() -> None:
    reg = ModelRegistry()
    trainer = BlockingTrainer(RuntimeError("boom"))
    trainer.release.set()
    runner = ForecastRunner(reg, trainer=trainer, timer=EventTimer())
    out = await runner.train_now(KEY, SNAP, NOW)
    assert out.status == FAILED
    assert "RuntimeError: boom" in out.error
    assert reg.get(KEY) is None
    assert not runner.busy(KEY)
    await runner.aclose()


async def test_a_result_older_than_the_installed_model_is_superseded() -> None:
    reg = ModelRegistry()
    current = reg.install(KEY, _newer(MODEL, 48))
    trainer = BlockingTrainer(MODEL)
    trainer.release.set()
    runner = ForecastRunner(reg, trainer=trainer, timer=EventTimer())
    out = await runner.train_now(KEY, SNAP, NOW)
    assert out.status == SUPERSEDED
    assert reg.get(KEY) is current
    await runner.aclose()


async def test_due_and_submit_all_for_a_campaign_state() -> None:
    reg = ModelRegistry()
    runner = ForecastRunner(reg, retrain_after_hours=20)
    small, _ = _snap(23)
    assert not runner.due(KEY, small)  # under 24 h: nothing to train
    assert runner.due(KEY, SNAP)  # no model yet
    reg.install(KEY, MODEL)
    assert not runner.due(KEY, SNAP)  # fresh
    later = replace(SNAP, until_hour=SNAP.until_hour + 20)
    assert runner.due(KEY, later)

    state = CampaignState("camp", timezone=M.tz)
    for ch, n in ((ChannelType.GOOGLE_ADS, 8 * 24), (ChannelType.DISPLAY, 10)):
        cs = ChannelState(channel=ch)
        cs.history = synthetic_history(M, n, seed=1)
        state.channels[ch] = cs
    later_now = NOW + timedelta(hours=20)
    tasks = runner.submit_all(snapshots_of(state, later_now), later_now)
    assert len(tasks) == 1  # display has too little history
    outs = await asyncio.gather(*tasks)
    assert [o.key for o in outs] == [KEY]
    assert outs[0].status == INSTALLED
    assert reg.version(KEY) == 2
    await runner.aclose()


def test_readers_never_see_a_half_installed_model() -> None:
    reg = ModelRegistry()
    reg.install(KEY, MODEL)
    stop = threading.Event()
    bad: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            m = reg.get(KEY)
            if m is None or not m.label.endswith(f":v{m.version}"):
                bad.append(repr(m))

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(300):
        reg.install(KEY, _newer(MODEL, i))
    stop.set()
    for t in threads:
        t.join()
    assert bad == []
    assert reg.version(KEY) == 301


async def test_aclose_cancels_waiting_tasks() -> None:
    trainer = BlockingTrainer(MODEL)
    runner = ForecastRunner(ModelRegistry(), trainer=trainer, timer=EventTimer())
    task = runner.submit(KEY, SNAP, NOW)
    assert task is not None
    await asyncio.to_thread(trainer.entered.wait, 60)
    await runner.aclose()
    assert task.cancelled()
    trainer.release.set()


@pytest.mark.timeout(120)
async def test_training_in_a_process_pool() -> None:
    reg = ModelRegistry()
    pool = process_executor(1)
    runner = ForecastRunner(reg, executor=pool, timeout_s=110)
    try:
        out = await runner.train_now(KEY, SNAP, NOW)
    finally:
        await runner.aclose()
        pool.shutdown(wait=True)
    assert out.status == INSTALLED, out.error
    assert out.model is not None and out.model.label == MODEL.label.replace(":v0", ":v1")


def test_may_be_due_says_no_only_where_due_says_no() -> None:
    """The timer skips copying a channel's history when ``may_be_due`` is False; that
    must never skip a model ``due`` would train."""
    reg = ModelRegistry()
    runner = ForecastRunner(reg, retrain_after_hours=20)
    small, _ = _snap(23)
    later = replace(SNAP, until_hour=SNAP.until_hour + 20)
    for installed in (False, True):
        if installed:
            reg.install(KEY, MODEL)
        for snap in (small, SNAP, later):
            if not runner.may_be_due(KEY, snap.until_hour, snap.hours):
                assert not runner.due(KEY, snap)
    # the cases it answers without a copy
    assert not runner.may_be_due(KEY, SNAP.until_hour, 8 * 24)  # a fresh model
    assert not runner.may_be_due(("camp", "display"), SNAP.until_hour, 23)  # too little
    assert runner.may_be_due(KEY, later.until_hour, 8 * 24)  # a model 20 h old
    assert runner.may_be_due(("camp", "display"), SNAP.until_hour, 24)  # no model yet


def test_snapshots_of_copies_only_the_wanted_channels() -> None:
    state = CampaignState("camp", timezone=M.tz)
    for ch, n in ((ChannelType.GOOGLE_ADS, 8 * 24), (ChannelType.DISPLAY, 10)):
        cs = ChannelState(channel=ch)
        cs.history = synthetic_history(M, n, seed=1)
        state.channels[ch] = cs
    asked: list[tuple[tuple[str, str], int, int]] = []

    def wanted(key: tuple[str, str], until_hour: int, hours_held: int) -> bool:
        asked.append((key, until_hour, hours_held))
        return hours_held >= 24

    snaps = snapshots_of(state, NOW, wanted=wanted)
    assert [key for key, _ in snaps] == [KEY]
    until = int(NOW.timestamp() // 3600)
    assert asked == [(KEY, until, 8 * 24), (("camp", "display"), until, 10)]
    assert snaps == [(KEY, snapshots_of(state, NOW)[0][1])]
