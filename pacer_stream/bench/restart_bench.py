"""Restart bench: how long a worker killed with kill -9 takes to be ready again, per table
store, with ``n_states`` campaign/channels in its state.

Why this exists: with the memory store a restarted worker re-reads its whole changelog
(every campaign's latest value) before it answers; with the RocksDB store it opens its
databases and reads only the changelog written after the offset they recorded
(:mod:`pacer_stream.streams.table_store`). The figure decides which store to run and
what a deploy or a crash costs.

What is measured, on throwaway topics of the given broker, for each store in turn:

1. The state is preloaded *through the changelog*: ``n_states`` campaigns with one
   channel each, configured for today (a day's plan, no events), written to the
   ``campaigns`` changelog topic as the worker itself writes them (same codec, the
   partition the campaign's input records go to).
2. A worker (``python -m pacer_stream worker``) starts on an empty data directory and
   reads that changelog until ``/readyz`` answers 200 (*first start*).
3. It is killed with SIGKILL; a new worker starts on the same data directory, same group
   (*restart*). Reported: seconds from the new process's start to ``/readyz`` 200, and
   the changelog read alone (faust's recovery log lines: from "Highwater for active
   changelog partitions" to "Recovery complete"). The restart includes the broker's wait
   for the killed member's session to expire (``broker_session_timeout``, 10 s), the
   same for both stores.

Nothing here passes or fails: figures only (``pacer-stream bench --only restart``).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from pacer_stream.bench.worker_process import (
    WorkerProcess,
    create_bench_topics,
    delete_topics,
    free_port,
    worker_env,
)
from pacer_stream.core.engine import PacingEngine
from pacer_stream.core.types import CampaignConfig, ChannelConfig, ChannelType, PacingStrategy
from pacer_stream.streams import stored as stored_codec
from pacer_stream.streams.faust_app import MAX_VALUE_BYTES
from pacer_stream.streams.stored import Stored

PARTITIONS = 8
#: A placeholder campaign id, replaced per record in the template bytes.
_CID = "cid-placeholder"


def _templates(now: datetime, partitions: int) -> dict[int, bytes]:
    """One encoded table value per partition for a campaign configured today; the
    campaign id inside is :data:`_CID`, swapped per record (encoding 100,000 states one
    by one would measure the preload, not the restart)."""
    config = CampaignConfig(
        _CID,
        {ChannelType.GOOGLE_ADS: ChannelConfig(1_000 * 1_000_000)},
        PacingStrategy.EVEN_DISTRIBUTION,
    )
    state, _ = PacingEngine().configure(None, config, now)
    return {p: stored_codec.dumps(Stored(state, partition=p)) for p in range(partitions)}


async def _preload(
    bootstrap: str, changelog: str, n_states: int, partitions: int, run_id: str
) -> dict[str, Any]:
    """Write ``n_states`` campaign values to the changelog; returns their sizes."""
    templates = _templates(datetime.now(UTC), partitions)
    partitioner = DefaultPartitioner()
    all_partitions = list(range(partitions))
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        max_batch_size=512 * 1024,
        max_request_size=MAX_VALUE_BYTES,
        linger_ms=20,
        compression_type=None,
    )
    await producer.start()
    total = 0
    try:
        pending = []
        for i in range(n_states):
            key = f"rs-{run_id}-{i:07d}".encode()
            partition = partitioner(key, all_partitions, all_partitions)
            value = templates[partition].replace(_CID.encode(), key)
            total += len(value)
            pending.append(await producer.send(changelog, value, key=key, partition=partition))
            if len(pending) >= 5_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return {"states": n_states, "value_bytes": len(templates[0]), "changelog_bytes": total}


_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


def _recovery_read_s(log: Path, after: int) -> float | None:
    """Seconds of the last changelog read in ``log`` past byte ``after``: from faust's
    "Highwater for active changelog partitions" line to its "Recovery complete" line."""
    text = log.read_bytes()[after:].decode(errors="replace")
    start = end = None
    for line in text.splitlines():
        m = _STAMP.match(line)
        if m is None:
            continue
        stamp = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if "Highwater for active changelog partitions" in line:
            start = stamp
        elif "Recovery complete" in line and start is not None:
            end = stamp
    return None if start is None or end is None else round(end - start, 2)


async def _one_store(
    bootstrap: str, store: str, n_states: int, tmp: Path, timeout_s: float
) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    prefix = f"bench-rs-{run_id}."
    app_id = f"pacer-bench-rs-{run_id}"
    changelog = f"{app_id}-campaigns-changelog"
    await create_bench_topics(
        bootstrap,
        prefix=prefix,
        app_id=app_id,
        partitions=PARTITIONS,
        compacted=changelog,
        compacted_configs={"max.message.bytes": str(MAX_VALUE_BYTES)},
    )
    try:
        started = time.monotonic()
        loaded = await _preload(bootstrap, changelog, n_states, PARTITIONS, run_id)
        loaded["preload_s"] = round(time.monotonic() - started, 1)
        data_dir = tmp / f"worker-data-{store}"
        log = tmp / f"worker-{store}.log"
        port = free_port()
        env = worker_env(
            bootstrap=bootstrap,
            prefix=prefix,
            app_id=app_id,
            partitions=PARTITIONS,
            port=port,
            data_dir=data_dir,
            log_level="INFO",  # the changelog-read time comes from the worker's log
            table_store=store,
        )
        first = WorkerProcess(env, port, log)
        t0 = first.start()
        await first.wait_ready(timeout=timeout_s)
        first_s = time.monotonic() - t0
        first_read = _recovery_read_s(log, 0)
        rss_first = first.rss_mib()
        first.kill()

        mark = log.stat().st_size
        second = WorkerProcess(env, port, log)
        t1 = second.start()
        try:
            await second.wait_ready(timeout=timeout_s)
            restart_s = time.monotonic() - t1
            restart_read = _recovery_read_s(log, mark)
            rss_restart = second.rss_mib()
        finally:
            second.kill()
        return {
            "store": store,
            **loaded,
            "first_start_ready_s": round(first_s, 1),
            "first_start_changelog_read_s": first_read,
            "restart_ready_s": round(restart_s, 1),
            "restart_changelog_read_s": restart_read,
            "rss_mib_first": rss_first,
            "rss_mib_restart": rss_restart,
            "data_dir_mib": round(_du(data_dir) / 2**20, 1),
        }
    finally:
        await delete_topics(bootstrap, (prefix, app_id))


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


async def run(
    bootstrap: str,
    *,
    n_states: int = 100_000,
    stores: tuple[str, ...] = ("rocksdb", "memory"),
    timeout_s: float = 900.0,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Measure both stores one after the other (never side by side: same machine)."""
    tmp = Path(workdir or tempfile.mkdtemp(prefix="pacer-restart-bench-"))
    try:
        rows = [await _one_store(bootstrap, s, n_states, tmp, timeout_s) for s in stores]
    finally:
        if workdir is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return {"partitions": PARTITIONS, "rows": rows}


def show(res: dict[str, Any], print_: Any) -> None:
    """The figures as a terminal table."""
    from rich.table import Table

    table = Table(title=f"restart after kill -9 ({res['partitions']} partitions)")
    for col in (
        "store",
        "states",
        "changelog MiB",
        "first start s",
        "restart s",
        "changelog read s",
        "RSS MiB",
        "data dir MiB",
    ):
        table.add_column(col, justify="right")
    for r in res["rows"]:
        table.add_row(
            r["store"],
            f"{r['states']:,}",
            f"{r['changelog_bytes'] / 2**20:,.0f}",
            f"{r['first_start_ready_s']:.1f}",
            f"{r['restart_ready_s']:.1f}",
            str(r["restart_changelog_read_s"]),
            str(r["rss_mib_restart"]),
            f"{r['data_dir_mib']:,.0f}",
        )
    print_(table)


def main() -> None:  # pragma: no cover - manual use
    import json
    import os
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    bootstrap = os.environ.get("PACER_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    print(json.dumps(asyncio.run(run(bootstrap, n_states=n)), indent=2))


if __name__ == "__main__":  # pragma: no cover
    main()
