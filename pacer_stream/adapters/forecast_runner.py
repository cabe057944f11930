"""Runs forecast training off the event loop and swaps trained models in.

This is the adapter between the pure forecasting core (``core.forecast``) and an asyncio
worker. The event loop only ever does cheap things: it copies a channel's history into a
plain-data :class:`HistorySnapshot` (~700 rows at most), hands it to an executor, and,
when the executor answers, installs the model in the :class:`ModelRegistry` (one dict
assignment). ``train`` itself runs in a worker thread (default) or process, with a soft
time budget (checked between candidate models by the injected monotonic clock) and a hard
timeout here. A training that times out is abandoned: its late result is discarded and
the campaign/channel keeps its previous model (or the hour-mean baseline).

Wiring it into the stream worker (what the stream layer does)::

    registry = ModelRegistry()
    engine = PacingEngine(strategies=default_registry(registry.forecaster()))
    runner = ForecastRunner(registry)          # one per worker process

    # e.g. from a faust timer every 15 minutes, for the partitions this worker owns:
    # (state: CampaignState from the table; only histories whose model may be due)
    for key, snap in snapshots_of(state, now, wanted=runner.may_be_due):
        if runner.due(key, snap):
            runner.submit(key, snap, now)       # returns at once; never awaits training

    # on shutdown
    await runner.aclose()

``registry.forecaster()`` finds a context's model through ``AllocationContext.key``
(``(campaign_id, channel value)``), which the engine passes when it plans; or use one engine per
campaign/channel with ``registry.bound(key)``, as a single-campaign test would.

A new model takes effect at the next re-plan (day roll-over or budget change): a day's
plan is not rewritten mid-day by a model swap. Train before the local midnight (``due``
returns True once the installed model's data is ``retrain_after_hours`` old) so the next
day is planned with a fresh model. After a restart the registry is empty: allocations use
the baseline (``model_version`` says ``baseline:... (untrained)``) until the first
trainings finish; the history they learn from is part of ``CampaignState`` and comes
back from the changelog.

Thread pool or process pool: the default single-thread pool is simplest and the fits
release the GIL for most of their time (single OpenMP/BLAS thread each). A process pool
(:func:`process_executor`, spawn context) isolates the event loop completely at the cost
of pickling the snapshot in and the model out (tens of kB).
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pacer_stream.core.forecast.dataset import HistorySnapshot
from pacer_stream.core.forecast.service import ModelKey, ModelRegistry, snapshots_of
from pacer_stream.core.forecast.training import DEFAULT_BUDGET_S, TrainedModel, train

__all__ = [
    "ForecastRunner",
    "TrainOutcome",
    "process_executor",
    "snapshots_of",
]

#: Outcome statuses.
INSTALLED = "installed"  # the new model is current
SUPERSEDED = "superseded"  # a model trained on newer data was already installed
TIMEOUT = "timeout"  # abandoned after timeout_s; its late result will be discarded
FAILED = "failed"  # the trainer raised
BUSY = "busy"  # a training of this key is still running

#: Hours of history a channel needs before a model is trained for it.
MIN_HOURS = 24

Trainer = Callable[..., TrainedModel]
Timer = Callable[[float], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class TrainOutcome:
    key: ModelKey
    status: str
    model: TrainedModel | None = None
    error: str = ""
    #: Seconds from submit to outcome, by the runner's clock.
    seconds: float = 0.0


def process_executor(workers: int = 1) -> ProcessPoolExecutor:
    """A process pool safe to start from an asyncio worker (spawn, not fork)."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


class ForecastRunner:
    """Trains models in an executor with a timeout and installs them atomically.

    ``trainer`` is called as ``trainer(snapshot, now, seed=..., budget_s=..., clock=...)``
    in the executor (a module-level function, so process pools can pickle it). ``timer``
    is awaited to implement the timeout (``asyncio.sleep`` by default; tests inject an
    event-controlled one). ``clock`` is the monotonic clock handed to the trainer for its
    soft budget and used for the outcome's ``seconds``.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        *,
        executor: Executor | None = None,
        timeout_s: float = 10.0,
        budget_s: float = DEFAULT_BUDGET_S,
        seed: int = 0,
        retrain_after_hours: int = 20,
        trainer: Trainer = train,
        timer: Timer = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        on_installed: Callable[[ModelKey, TrainedModel], None] | None = None,
    ) -> None:
        self.registry = registry
        self._own_executor = executor is None
        self._executor: Executor = executor or ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="pacer-forecast"
        )
        self.timeout_s = timeout_s
        self.budget_s = budget_s
        self.seed = seed
        self.retrain_after_hours = retrain_after_hours
        self._trainer = trainer
        self._timer = timer
        self._clock = clock
        self._on_installed = on_installed
        #: Keys whose training is still executing (including abandoned ones).
        self._running: dict[ModelKey, asyncio.Future[TrainedModel]] = {}
        self._tasks: set[asyncio.Task[TrainOutcome]] = set()
        self._abandoned: set[asyncio.Future[TrainedModel]] = set()
        #: Keys submitted whose executor call has not started yet.
        self._pending: set[ModelKey] = set()
        self.counts: dict[str, int] = {
            INSTALLED: 0,
            SUPERSEDED: 0,
            TIMEOUT: 0,
            FAILED: 0,
            BUSY: 0,
            "late_discarded": 0,
        }

    # ------------------------------------------------------------------ scheduling
    def busy(self, key: ModelKey) -> bool:
        return key in self._running or key in self._pending

    def may_be_due(self, key: ModelKey, until_hour: int, hours_held: int) -> bool:
        """The rule of :meth:`due` on a history's size instead of its snapshot: no
        training running, at least ``MIN_HOURS`` held, and no model or one whose data
        ends ``retrain_after_hours`` or more before ``until_hour``. A snapshot holds at
        most the hours its history holds, so False here means :meth:`due` is False.
        Why: the timer asks for every owned campaign/channel, and copying a history to
        ask :meth:`due` costs milliseconds with weeks of it."""
        if self.busy(key) or hours_held < MIN_HOURS:
            return False
        current = self.registry.get(key)
        return current is None or until_hour - current.data_until_hour >= self.retrain_after_hours

    def due(self, key: ModelKey, snap: HistorySnapshot) -> bool:
        """True when ``key`` has enough history and no model trained in the last
        ``retrain_after_hours`` hours of data, and no training is running."""
        return self.may_be_due(key, snap.until_hour, snap.hours)

    def submit(
        self, key: ModelKey, snap: HistorySnapshot, now: datetime
    ) -> asyncio.Task[TrainOutcome] | None:
        """Start training ``key`` in the background; None if one is already running.

        Must be called from the event loop thread. The task's result is the outcome.
        """
        if self.busy(key):
            self.counts[BUSY] += 1
            return None
        self._pending.add(key)
        task = asyncio.get_running_loop().create_task(self._run(key, snap, now, self._clock()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _t: self._pending.discard(key))  # cancelled early
        return task

    def submit_all(
        self, items: Iterable[tuple[ModelKey, HistorySnapshot]], now: datetime
    ) -> list[asyncio.Task[TrainOutcome]]:
        """Submit every due item (convenience for a timer)."""
        out = []
        for key, snap in items:
            if self.due(key, snap):
                task = self.submit(key, snap, now)
                if task is not None:
                    out.append(task)
        return out

    # ------------------------------------------------------------------ training
    async def train_now(self, key: ModelKey, snap: HistorySnapshot, now: datetime) -> TrainOutcome:
        """Train ``key`` in the executor and install the result; never blocks the loop."""
        t0 = self._clock()
        if self.busy(key):
            self.counts[BUSY] += 1
            return TrainOutcome(key, BUSY)
        self._pending.add(key)
        return await self._run(key, snap, now, t0)

    async def _run(
        self, key: ModelKey, snap: HistorySnapshot, now: datetime, t0: float
    ) -> TrainOutcome:
        loop = asyncio.get_running_loop()
        call = functools.partial(
            self._trainer, snap, now, seed=self.seed, budget_s=self.budget_s, clock=self._clock
        )
        try:
            fut: asyncio.Future[TrainedModel] = loop.run_in_executor(self._executor, call)
        finally:
            self._pending.discard(key)
        self._running[key] = fut
        fut.add_done_callback(functools.partial(self._finished, key))
        timer: asyncio.Future[Any] = asyncio.ensure_future(self._timer(self.timeout_s))
        waiters: set[asyncio.Future[Any]] = {fut, timer}
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            if not fut.done():
                self._abandoned.add(fut)  # shutting down: its result will be discarded
            raise
        finally:
            timer.cancel()
        seconds = self._clock() - t0
        if not fut.done():
            self._abandoned.add(fut)
            self.counts[TIMEOUT] += 1
            return TrainOutcome(key, TIMEOUT, None, f"no result after {self.timeout_s}s", seconds)
        exc = fut.exception()
        if exc is not None:
            self.counts[FAILED] += 1
            return TrainOutcome(key, FAILED, None, f"{type(exc).__name__}: {exc}", seconds)
        installed = self.registry.install(key, fut.result())
        if installed is None:
            self.counts[SUPERSEDED] += 1
            return TrainOutcome(key, SUPERSEDED, fut.result(), "", seconds)
        self.counts[INSTALLED] += 1
        error = ""
        if self._on_installed is not None:
            try:
                self._on_installed(key, installed)
            except Exception as exc:  # the model is installed either way
                error = f"on_installed failed: {type(exc).__name__}: {exc}"
        return TrainOutcome(key, INSTALLED, installed, error, seconds)

    def _finished(self, key: ModelKey, fut: asyncio.Future[TrainedModel]) -> None:
        """The executor call ended (in time or not): the key may train again."""
        if self._running.get(key) is fut:
            del self._running[key]
        if fut in self._abandoned:
            # A timed-out training's result is discarded, never installed.
            self._abandoned.discard(fut)
            if not fut.cancelled():
                fut.exception()  # retrieve it, so asyncio does not log "never retrieved"
                self.counts["late_discarded"] += 1

    def running(self, key: ModelKey) -> asyncio.Future[TrainedModel] | None:
        """The executor call of ``key`` still executing (also after a timeout), if any."""
        return self._running.get(key)

    async def settle(self) -> None:
        """Wait until no executor call is executing, abandoned ones included."""
        while self._running:
            await asyncio.wait(list(self._running.values()))
            await asyncio.sleep(0)  # let the done-callbacks run

    async def drain(self) -> list[TrainOutcome]:
        """Wait for every submitted task (tests, graceful shutdown)."""
        tasks = list(self._tasks)
        return list(await asyncio.gather(*tasks)) if tasks else []

    async def aclose(self) -> None:
        """Stop accepting work; wait for submitted tasks; shut an owned executor down."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._own_executor:
            self._executor.shutdown(wait=False, cancel_futures=True)
