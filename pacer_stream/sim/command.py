"""``pacer-stream simulate``: the pacing-quality report (targets: docs/targets.md).

Imported by ``pacer_stream.cli`` at start-up, so this module only imports typer at the
top; numpy, the engine, rich and matplotlib are imported inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def simulate(
    seeds: Annotated[int, typer.Option(min=1, help="number of seeds (README: 20)")] = 3,
    days: Annotated[
        int,
        typer.Option(
            min=1,
            help="consecutive local days per seed (engine state, history and forecasts "
            "carry over; a multi-day run crosses a DST switch)",
        ),
    ] = 1,
    warmup_days: Annotated[
        int, typer.Option(min=0, help="first days that only build history (not reported)")
    ] = 0,
    out: Annotated[Path, typer.Option(help="folder for report.json and charts")] = Path("out/sim"),
    campaigns: Annotated[int, typer.Option(min=1, help="campaigns per day")] = 100,
    channels: Annotated[int, typer.Option(min=1, max=8, help="channels per campaign")] = 3,
    faults: Annotated[bool, typer.Option(help="inject every fault scenario")] = True,
    runaway: Annotated[bool | None, typer.Option(help="runaway bidder (default: --faults)")] = None,
    duplicates: Annotated[
        bool | None, typer.Option(help="1% duplicated spend events (default: --faults)")
    ] = None,
    stall: Annotated[
        bool | None, typer.Option(help="2-minute processing stall (default: --faults)")
    ] = None,
    late: Annotated[
        bool | None, typer.Option(help="spend events 5 minutes late (default: --faults)")
    ] = None,
    bootstrap: Annotated[
        str | None,
        typer.Option(help="HOST:PORT of Kafka: drive a running worker instead (small scenario)"),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="processes (tasks run in parallel)")] = 2,
    seed_base: Annotated[int, typer.Option(help="first seed (seeds are consecutive)")] = 0,
    stream_minutes: Annotated[
        int, typer.Option(min=1, help="with --bootstrap: real minutes per seed")
    ] = 3,
    multiplier: Annotated[
        bool,
        typer.Option(
            help="also run pacer-stream with a bid engine that applies the pacing "
            "multiplier (extra row pacer-stream-multiplier)"
        ),
    ] = False,
    collapse: Annotated[
        bool,
        typer.Option(
            help="also run the conversion-collapse scenario (one channel at 10%% of its "
            "conversion rate from 12:00, with and without a performance floor)"
        ),
    ] = False,
) -> None:
    """Simulate seeded campaigns over one or more local days; compare the product's
    strategies with the baselines and two oracles."""
    import time

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from pacer_stream.sim.charts import draw
    from pacer_stream.sim.report import check_targets, render, render_streaming, write_json
    from pacer_stream.sim.runner import TaskResult, run_seeds, tasks_for
    from pacer_stream.sim.scenario import Collapse, Faults, Scenario

    if warmup_days >= days:
        raise typer.BadParameter("must be smaller than --days", param_hint="--warmup-days")
    if bootstrap is not None and days > 1:
        raise typer.BadParameter("drives one day through a worker", param_hint="--bootstrap")

    def pick(flag: bool | None) -> bool:
        return faults if flag is None else flag

    chosen = Faults(
        runaway=pick(runaway), duplicates=pick(duplicates), stall=pick(stall), late=pick(late)
    )
    scenario = Scenario(
        campaigns=campaigns,
        channels=channels,
        faults=chosen,
        multiplier=multiplier,
        collapse=Collapse() if collapse else None,
        days=days,
        warmup_days=warmup_days,
    )
    seed_list = list(range(seed_base, seed_base + seeds))
    console = Console()
    started = time.perf_counter()
    if bootstrap is not None:
        from pacer_stream.sim.kafka import run_streaming

        report = run_streaming(
            bootstrap, seed_list, scenario, console=console, minutes=stream_minutes
        )
    else:
        n_tasks = len(tasks_for(seed_list, scenario))
        with Progress(
            TextColumn("[bold]simulating[/bold] {task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} tasks"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            bar = progress.add_task(
                f"{seeds} seed(s) x {campaigns} campaigns x {channels} channels", total=n_tasks
            )

            def done(r: TaskResult) -> None:
                progress.advance(bar)

            report = run_seeds(seed_list, scenario, workers=workers, on_done=done)
    if report.get("mode") == "kafka":
        path = write_json(report, out)
        console.print(render_streaming(report))
        console.print(f"wrote {path}")
        console.print(f"finished in {time.perf_counter() - started:.1f} s")
        return
    report["targets"] = check_targets(report, chosen.any)
    path = write_json(report, out)
    pictures = draw(report.get("_charts", {}), out)
    console.print(render(report))
    console.print(f"wrote {path}")
    for p in pictures:
        console.print(f"wrote {p}")
    console.print(f"finished in {time.perf_counter() - started:.1f} s")


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
