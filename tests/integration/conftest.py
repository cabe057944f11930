"""Fixtures for tests against the real local Kafka (and Redis) of ``scripts/services.sh``.

Every test gets its own *run*: a unique topic prefix and app id (so runs never see each
other's records, even on a shared broker), topics created up front and deleted at the
end, and a worker started as a subprocess (``python -m pacer_stream worker``) configured
through ``PACER_*`` environment variables only -- exactly as in production.

Time: the worker's clock is the wall clock plus ``PACER_CLOCK_OFFSET_S``, chosen so the
worker believes it is 12:00 UTC; clients use the same offset. Nothing sleeps for timing:
every wait polls a condition with a bounded timeout (:func:`poll`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import DefaultPartitioner

from pacer_stream.client.kafka import PacerClient
from pacer_stream.settings import Settings
from pacer_stream.streams.admin import create_topics
from pacer_stream.wire import records, topics

REPO = Path(__file__).resolve().parents[2]
BOOTSTRAP = Settings().kafka_bootstrap_servers
#: Bound of every wait: a broken broker or worker fails the test instead of hanging it.
WAIT_S = 60.0
PARTITIONS = 2

T = TypeVar("T")


def ids_on_every_partition(prefix: str, per_partition: int) -> list[str]:
    """Fresh campaign ids, ``per_partition`` of them keyed to each partition by the
    producer's default partitioner. Random ids can all land on one partition, which would
    leave a test about partitions (rebalance, per-partition stores) with nothing to see."""
    partitioner = DefaultPartitioner()
    partitions = list(range(PARTITIONS))
    chosen: dict[int, list[str]] = {p: [] for p in partitions}
    run = uuid.uuid4().hex[:6]
    i = 0
    while any(len(ids) < per_partition for ids in chosen.values()):
        cid = f"{prefix}-{run}-{i}"
        ids = chosen[partitioner(cid.encode(), partitions, partitions)]
        if len(ids) < per_partition:
            ids.append(cid)
        i += 1
    return [cid for ids in chosen.values() for cid in ids]


async def poll(
    check: Callable[[], Awaitable[T | None] | T | None],
    *,
    timeout: float = WAIT_S,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Call ``check`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        value = check()
        if asyncio.iscoroutine(value) or isinstance(value, Awaitable):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        last = value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last={last!r})")
        await asyncio.sleep(interval)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _noon_offset() -> float:
    """Seconds to add to the wall clock so that it reads 12:00:00 UTC today."""
    now = datetime.now(UTC)
    return (now.replace(hour=12, minute=0, second=0, microsecond=0) - now).total_seconds()


@dataclass
class StreamRun:
    """One isolated deployment: topic prefix, app id, worker environment, clock."""

    tmp: Path
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    offset_s: float = field(default_factory=_noon_offset)
    redis: bool = False
    #: The broker this run talks to (a test's own broker for fault and SASL tests).
    bootstrap: str = BOOTSTRAP
    #: Bearer token the worker's campaign views require (None: open).
    web_token: str | None = None
    #: More ``PACER_*`` settings for the worker (Redis URL, SASL credentials, ...).
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return f"it-{self.run_id}."

    @property
    def app_id(self) -> str:
        return f"pacer-it-{self.run_id}"

    def now(self) -> datetime:
        """The worker's clock (wall clock + offset)."""
        return datetime.now(UTC) + timedelta(seconds=self.offset_s)

    def topic(self, logical: str) -> str:
        return self.prefix + logical

    def env(self, web_port: int) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "PACER_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                "PACER_TOPIC_PREFIX": self.prefix,
                "PACER_APP_ID": self.app_id,
                "PACER_TOPIC_PARTITIONS": str(PARTITIONS),
                "PACER_WORKER_WEB_PORT": str(web_port),
                "PACER_WORKER_DATA_DIR": str(self.tmp / "worker-data"),
                "PACER_CLOCK_OFFSET_S": repr(self.offset_s),
                "PACER_REDIS_PUBLISH_ENABLED": "true" if self.redis else "false",
                "PACER_MAINTENANCE_INTERVAL_S": "0.5",
                "PACER_SNAPSHOT_INTERVAL_S": "2",
                "PACER_ALLOWANCE_SLICE_S": "2",
                "PACER_LOG_LEVEL": "INFO",
            }
        )
        if self.web_token is not None:
            env["PACER_WORKER_WEB_TOKEN"] = self.web_token
        env.update(self.extra_env)
        return env

    def settings(self) -> Settings:
        return Settings(
            kafka_bootstrap_servers=self.bootstrap,
            topic_prefix=self.prefix,
            topic_partitions=PARTITIONS,
            app_id=self.app_id,
        )

    def client(self) -> PacerClient:
        return PacerClient(self.bootstrap, topic_prefix=self.prefix, clock=self.now)


class WorkerProcess:
    """``python -m pacer_stream worker`` as a child process, with its web views."""

    def __init__(
        self,
        run: StreamRun,
        name: str = "worker",
        *,
        cwd: Path = REPO,
        env: dict[str, str] | None = None,
        extra_env: dict[str, str] | None = None,
        data_dir: Path | None = None,
    ) -> None:
        self.run = run
        self.cwd = cwd
        #: The whole environment of the process (default: the run's, over this one's).
        self.env = env
        #: Settings on top of that environment (e.g. ``PACER_TABLE_STORE``).
        self.extra_env = dict(extra_env or {})
        #: The worker's own data directory (default: the run's, shared by the workers a
        #: test runs one after the other). Workers running side by side need their own:
        #: a RocksDB table database is opened by one process at a time.
        self.data_dir = data_dir
        self.port = _free_port()
        self.log_path = run.tmp / f"{name}-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pacer_stream", "worker"],
            cwd=self.cwd,
            env=self._env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def _env(self) -> dict[str, str]:
        env = dict(self.env) if self.env is not None else self.run.env(self.port)
        env.update(self.extra_env)
        if self.data_dir is not None:
            env["PACER_WORKER_DATA_DIR"] = str(self.data_dir)
        return env

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def get(self, path: str, *, token: str | None = None) -> tuple[int, Any]:
        """GET a view; campaign views carry the run's bearer token unless ``token`` is
        given ("" sends none)."""
        token = self.run.web_token if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = urllib.request.Request(self.base + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                body = resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            body, status = exc.read(), exc.code
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0, None
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode(errors="replace")

    async def wait_ready(self, timeout: float = WAIT_S) -> float:
        """Wait for ``/readyz`` to answer 200; returns the seconds it took."""

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"worker exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            return self.get("/readyz")[0] == 200

        try:
            await poll(ready, timeout=timeout, interval=0.1, what="worker /readyz")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- worker log ---\n{self.log_tail()}") from None
        return time.monotonic() - self.started_at

    def status(self, campaign_id: str) -> dict[str, Any] | None:
        code, body = self.get(f"/campaigns/{campaign_id}")
        return body if code == 200 else None

    def channel(self, campaign_id: str, channel: str) -> dict[str, Any] | None:
        body = self.status(campaign_id)
        if body is None:
            return None
        for ch in body["channels"]:
            if ch["channel"] == channel:
                return dict(ch)
        return None

    def stop(self, timeout: float = 30.0) -> int | None:
        """Graceful stop (SIGTERM: flush, commit, leave the group)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def kill(self) -> None:
        """kill -9: no flush, no commit, no goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


class Collector:
    """Reads one output topic from the beginning into memory (decoded records)."""

    def __init__(self, topic: str, logical: str, bootstrap: str = BOOTSTRAP) -> None:
        self.topic = topic
        self.logical = logical
        self.bootstrap = bootstrap
        self.items: list[tuple[bytes | None, Any]] = []
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            for batch in batches.values():
                for msg in batch:
                    self.items.append((msg.key, records.decode(self.logical, msg.value)))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    def values(self) -> list[Any]:
        return [v for _, v in self.items]

    async def wait(
        self, predicate: Callable[[Any], bool], *, timeout: float = WAIT_S, what: str = "record"
    ) -> Any:
        def find() -> Any:
            for v in self.values():
                if predicate(v):
                    return v
            return None

        return await poll(find, timeout=timeout, what=f"{what} on {self.topic}")


@pytest.fixture
def kafka_available() -> None:
    host, _, port = BOOTSTRAP.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            pass
    except OSError:
        message = f"Kafka not reachable at {BOOTSTRAP} (run scripts/services.sh start)"
        if os.environ.get("CI"):  # make test starts Kafka: under CI a skip would hide it
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
async def stream_run(tmp_path: Path, kafka_available: None) -> AsyncIterator[StreamRun]:
    run = StreamRun(tmp_path)
    await create_topics(run.settings())
    try:
        yield run
    finally:
        await _delete_topics(run)


async def _delete_topics(run: StreamRun) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=run.bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        names = [n for n in await admin.list_topics() if n.startswith((run.prefix, run.app_id))]
        if names:
            await admin.delete_topics(names)
    except Exception:  # best effort: a leftover topic harms nothing (unique names)
        pass
    finally:
        await admin.close()


@pytest.fixture
def workers(stream_run: StreamRun) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory of worker processes for the run; all are stopped at the end."""
    started: list[WorkerProcess] = []

    def make(name: str = "worker", **kwargs: Any) -> WorkerProcess:
        w = WorkerProcess(stream_run, name, **kwargs)
        started.append(w)
        return w

    yield make
    for w in started:
        w.stop(timeout=15)


@pytest.fixture
async def client(stream_run: StreamRun) -> AsyncIterator[PacerClient]:
    c = stream_run.client()
    await c.start()
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
async def collect(stream_run: StreamRun) -> AsyncIterator[Callable[[str], Awaitable[Collector]]]:
    """``await collect(topics.ALERTS)`` -> a running :class:`Collector` of that topic."""
    running: list[Collector] = []

    async def make(logical: str) -> Collector:
        c = Collector(stream_run.topic(logical), logical, stream_run.bootstrap)
        await c.start()
        running.append(c)
        return c

    yield make
    for c in running:
        await c.close()


__all__ = ["BOOTSTRAP", "Collector", "StreamRun", "WorkerProcess", "poll", "topics"]


@pytest.fixture
def private_kafka(tmp_path: Path, kafka_available: None) -> Iterator[Callable[..., Any]]:
    """Factory of private brokers (:class:`.brokers.PrivateKafka`), started; all are
    stopped at the end. Needs the jars that ``scripts/services.sh start`` fetched, hence
    ``kafka_available``."""
    from .brokers import PrivateKafka

    started: list[PrivateKafka] = []

    def make(name: str = "kafka", scram_users: dict[str, str] | None = None) -> PrivateKafka:
        broker = PrivateKafka(tmp_path / name, scram_users)
        started.append(broker)
        broker.start()
        return broker

    yield make
    for broker in started:
        try:
            broker.stop()
        except Exception:
            broker.kill()
