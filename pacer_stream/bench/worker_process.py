"""The real worker as a subprocess, for the benchmarks that time it.

Why a module of its own: the stream and the restart benchmarks both start
``python -m pacer_stream worker`` on throwaway topics, configured only through
``PACER_*`` variables, poll its ``/readyz`` view, read its RSS and delete the topics
afterwards; one harness keeps them measuring the same thing the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from pacer_stream.settings import Settings
from pacer_stream.streams.admin import create_topics


def free_port() -> int:
    """A free TCP port on loopback (for the worker's web views)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def worker_env(
    *,
    bootstrap: str,
    prefix: str,
    app_id: str,
    partitions: int,
    port: int,
    data_dir: Path,
    log_level: str = "WARNING",
    **settings: str,
) -> dict[str, str]:
    """The worker's environment: this process's, minus any ``PACER_*`` of the caller's
    shell, plus the run's settings (``settings`` names more, lower case:
    ``table_store="memory"`` -> ``PACER_TABLE_STORE``). Redis publishing is off: the
    benchmarks time the Kafka path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACER_")}
    env.update(
        {
            "PACER_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "PACER_TOPIC_PREFIX": prefix,
            "PACER_APP_ID": app_id,
            "PACER_TOPIC_PARTITIONS": str(partitions),
            "PACER_WORKER_WEB_PORT": str(port),
            "PACER_WORKER_DATA_DIR": str(data_dir),
            "PACER_REDIS_PUBLISH_ENABLED": "false",
            "PACER_LOG_LEVEL": log_level,
        }
    )
    env.update({f"PACER_{name.upper()}": value for name, value in settings.items()})
    return env


class WorkerProcess:
    """One ``python -m pacer_stream worker`` subprocess writing to ``log``."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.env = env
        self.port = port
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start it; returns the monotonic start time."""
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pacer_stream", "worker", "--no-create-topics"],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()
        return time.monotonic()

    def get(self, path: str) -> tuple[int, bytes]:
        """GET one of its views: (status, body); (0, b"") when it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError:
            return 0, b""

    async def wait_ready(self, timeout: float = 120.0, poll_s: float = 0.02) -> float:
        """Wait until ``/readyz`` answers 200. Returns the wall-clock time (epoch
        seconds, the clock Kafka timestamps use here) of the last check that found it
        not ready: the worker became ready, and started on any backlog, after that, so
        a rate timed from it is never flattered by the polling interval."""
        deadline = time.monotonic() + timeout
        not_ready_at = time.time()
        while self.get("/readyz")[0] != 200:
            not_ready_at = time.time()
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"worker exited ({self.proc.returncode}); see {self.log}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker not ready after {timeout}s; see {self.log}")
            await asyncio.sleep(poll_s)
        return not_ready_at

    def stop(self) -> None:
        """SIGTERM (a graceful stop), then SIGKILL if it does not exit in 30 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def kill(self) -> None:
        """kill -9: no flush, no commit, no goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def rss_mib(self) -> float | None:
        """Its resident memory (Linux ``/proc``), None when unknown."""
        if self.proc is None:
            return None
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
        except OSError:
            return None
        return None

    def cpu_seconds(self) -> float | None:
        """CPU time it has used so far, all threads (:func:`process_cpu_seconds`)."""
        return None if self.proc is None else process_cpu_seconds(self.proc.pid)

    def spend_events_counted(self) -> int | None:
        """Spend events this process has handled, any result (its
        ``pacer_spend_events_total``), None when it does not answer. Why: a phase's
        figures are per event of that phase, so a benchmark checks the worker handled
        those events and no others (records left over from an earlier phase)."""
        status, body = self.get("/metrics")
        if status != 200:
            return None
        total = 0.0
        for family in text_string_to_metric_families(body.decode()):
            if family.name == "pacer_spend_events":
                total += sum(s.value for s in family.samples if s.name.endswith("_total"))
        return int(total)


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds process ``pid`` has used (Linux ``/proc``), None when
    unknown. Why beside the rates: on a machine whose cores the worker shares with the
    broker and the benchmark, its wall-clock rate also counts the time it waited for a
    core; its CPU per event does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: count from after it.
    fields = stat.rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


async def create_bench_topics(
    bootstrap: str,
    *,
    prefix: str,
    app_id: str,
    partitions: int,
    compacted: str,
    compacted_configs: dict[str, str] | None = None,
) -> None:
    """A run's throwaway topics: every pacer topic under ``prefix`` (as the worker would
    create them) plus one compacted topic named ``compacted`` (a changelog the benchmark
    writes or preloads itself)."""
    await create_topics(
        Settings(
            kafka_bootstrap_servers=bootstrap,
            topic_prefix=prefix,
            topic_partitions=partitions,
            app_id=app_id,
        )
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        configs = {"cleanup.policy": "compact", **(compacted_configs or {})}
        await admin.create_topics([NewTopic(compacted, partitions, 1, topic_configs=configs)])
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, prefixes: tuple[str, ...]) -> None:
    """Delete every topic whose name starts with one of ``prefixes`` (best effort)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(prefixes)]
        if doomed:
            with contextlib.suppress(Exception):
                await admin.delete_topics(doomed)
    finally:
        await admin.close()
