"""``pacer-stream bench``: every benchmark, each beside its baseline from the same run.

Benchmarks report figures; they never pass or fail. Results go to one JSON file per
benchmark in ``--out`` and a table on the terminal.
"""

from __future__ import annotations

import asyncio
import json
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer


def _write(out: Path, name: str, result: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "measured_at": datetime.now(UTC).isoformat(),
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        **result,
    }
    (out / f"{name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


def bench(
    out: Annotated[Path, typer.Option(help="folder for one JSON per benchmark")] = Path(
        "bench/results"
    ),
    only: Annotated[
        list[str] | None,
        typer.Option(
            help="run only these: core, memory, redis, stream, wire; "
            "restart (kill -9 restart time per table store) runs only when named"
        ),
    ] = None,
    memory_states: Annotated[int, typer.Option(help="campaign/channels held for RSS")] = 100_000,
    redis_url: Annotated[str | None, typer.Option(help="Redis for the fast-path bench")] = None,
    bootstrap: Annotated[str | None, typer.Option(help="Kafka for the stream bench")] = None,
    restart_states: Annotated[
        int, typer.Option(help="campaign/channels in state for the restart bench")
    ] = 100_000,
    stream_runs: Annotated[
        int,
        typer.Option(
            min=1,
            help="repetitions of the stream bench; it reports each figure's median "
            "and range over them",
        ),
    ] = 3,
) -> None:
    """Run every benchmark beside its same-run baseline and write the figures
    (targets: docs/targets.md)."""
    from rich.console import Console
    from rich.table import Table

    from pacer_stream.bench import core_bench
    from pacer_stream.settings import get_settings

    console = Console()
    chosen = set(only or ["core", "memory", "redis", "stream", "wire"])
    settings = get_settings()
    if "core" in chosen:
        res = core_bench.bench_decisions()
        _write(out, "core_decisions", res)
        table = Table(
            title="core decisions (pacer-stream vs original-style history scan; "
            f"rates: best of {res['best_of']} loops)"
        )
        for col in (
            "history",
            "decide/s",
            "p50 us",
            "p99 us",
            "reserve/s",
            "record/s",
            "rec p99 us",
            "scan p50 us",
            "scan/s",
        ):
            table.add_column(col, justify="right")
        for r in res["rows"]:
            table.add_row(
                f"{r['history']:,}",
                f"{r['decide_per_s']:,.0f}",
                f"{r['decide_p50_us']:.1f}",
                f"{r['decide_p99_us']:.1f}",
                f"{r['reserve_per_s']:,.0f}",
                f"{r['record_per_s']:,.0f}",
                f"{r['record_p99_us']:.1f}",
                f"{r['baseline_scan_p50_us']:.0f}",
                f"{r['baseline_per_s']:,.0f}",
            )
        console.print(table)
    if "memory" in chosen:
        res = core_bench.bench_memory(memory_states)
        _write(out, "memory", res)
        console.print(
            f"memory: {res['bytes_per_campaign_channel']:,.0f} B per campaign/channel "
            f"(target 2,048; "
            f"{res['bytes_per_campaign_channel_without_dedupe_window']:,.0f} B without the "
            f"emptied dedupe window), {res['bytes_per_dedupe_id']:,.0f} B per dedupe id, "
            f"RSS +{res['rss_growth_bytes'] / 2**20:,.0f} MiB for {res['states_held']:,} states"
        )
    if "redis" in chosen:
        from pacer_stream.bench import redis_bench

        res = asyncio.run(redis_bench.run(redis_url or settings.redis_url))
        _write(out, "redis_fastpath", res)
        console.print_json(json.dumps(res, default=str))
    if "stream" in chosen:
        from pacer_stream.bench import stream_bench

        res = asyncio.run(
            stream_bench.run(bootstrap or settings.kafka_bootstrap_servers, runs=stream_runs)
        )
        _write(out, "stream", res)
        stream_bench.show(res, console.print)
    if "restart" in chosen:
        from pacer_stream.bench import restart_bench

        res = asyncio.run(
            restart_bench.run(
                bootstrap or settings.kafka_bootstrap_servers, n_states=restart_states
            )
        )
        _write(out, "restart", res)
        restart_bench.show(res, console.print)
    if "wire" in chosen:
        from pacer_stream.bench import wire_bench

        res = wire_bench.run()
        _write(out, "wire_decode", res)
        wire_bench.show(res, console.print)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
