"""Outputs that wait for their state's delivery, without holding up the agents.

A reply, alert or breaker state that reports a campaign's new state is published only
once the changelog write carrying that state is delivered: a crash must never leave a
bid engine holding a grant, or the breakers topic showing a transition, that the
recovered state does not have. Waiting for that delivery inside the agent, though, stalls
the agent for a whole produce round trip per batch, and every request that arrives
meanwhile queues behind it.

So the agent hands the batch's changelog writes to the producer, queues the waiting
outputs here as one :class:`OutputJob`, and goes on with the next batch. One task works
through the jobs strictly in the order they were queued: it waits for a job's writes,
sends its outputs, then lets the job's input records be acknowledged. Outputs therefore
reach their topics in the same order as before (a later batch's outputs never overtake an
earlier one's), and an input record is never committed before the outputs it produced are
in the producer's hands -- at-least-once holds: a crash replays the record, the offset
high-water mark makes the replay a no-op, and the outputs are produced again.

If a job's write was refused by the broker, or sending an output fails, the queue stops
(its jobs and their records stay held, uncommitted; the outputs of a refused write are
never sent) and :meth:`OutputQueue.raise_failure` raises the error in the next agent
that queues work, which stops the worker (its agents do not restart in place).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

M = TypeVar("M")


@dataclass(slots=True)
class OutputJob(Generic[M]):
    """A batch's outputs that wait: ``writes`` are the delivery futures of the batch's
    changelog writes, ``outputs`` go out (in order) once those are done, and
    ``records`` (held input records) are released after that."""

    writes: Sequence[asyncio.Future[Any]]
    outputs: Sequence[M]
    records: Sequence[Any]


class OutputQueue(Generic[M]):
    """Jobs sent one after another by a task of their own (started when work arrives,
    ended when the queue is empty)."""

    def __init__(
        self,
        send: Callable[[M], Awaitable[Any]],
        release: Callable[[Sequence[Any]], None],
    ) -> None:
        self._send = send
        self._release = release
        self._jobs: deque[OutputJob[M]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._progress = asyncio.Event()  # set whenever a job ends (or the queue stops)
        self.failure: BaseException | None = None

    def __len__(self) -> int:
        """Jobs queued and not finished."""
        return len(self._jobs)

    def put(self, job: OutputJob[M]) -> None:
        self._jobs.append(job)
        if self.failure is None and (self._task is None or self._task.done()):
            self._task = asyncio.ensure_future(self._run())

    def raise_failure(self) -> None:
        """Raise the error that stopped the queue, if any."""
        if self.failure is not None:
            raise self.failure

    async def drain(self) -> None:
        """Wait until every queued job is done (or the queue stopped on a failure)."""
        while self._jobs and self.failure is None:
            task = self._task
            if task is None or task.done():
                self._task = task = asyncio.ensure_future(self._run())
            await asyncio.shield(task)

    async def room(self, limit: int) -> None:
        """Wait until at most ``limit`` jobs are queued: the agents' backpressure when
        deliveries stall (a broker away), which waiting for them in the agent used to
        give for free."""
        while len(self._jobs) > limit and self.failure is None:
            self._progress.clear()
            await self._progress.wait()

    async def _run(self) -> None:
        jobs = self._jobs
        while jobs:
            job = jobs[0]
            if job.writes:
                ended = await asyncio.gather(*job.writes, return_exceptions=True)
                refused = next((e for e in ended if isinstance(e, BaseException)), None)
                if refused is not None:
                    # The state these outputs report is not durable: a restart would not
                    # have it. Stop, as for a failed send (records stay held).
                    self.failure = refused
                    self._progress.set()
                    return
            try:
                for message in job.outputs:
                    await self._send(message)
            except Exception as exc:
                self.failure = exc
                self._progress.set()
                return
            jobs.popleft()
            self._release(job.records)
            self._progress.set()
