"""``pacer-stream`` commands of the stream layer, registered by ``pacer_stream.cli``.

``worker``, ``topics create``, ``budget set``, ``can-spend``, ``stop``, ``resume``,
``status`` and ``alerts tail``. Money on the command line is in currency units
(``250.00``), converted exactly to integer micros; everything else comes from the
settings (``PACER_*``). Heavy imports happen inside the commands so ``--help`` is fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()


def _micros(text: str, what: str) -> int:
    from pacer_stream.core.money import to_micros

    try:
        return to_micros(Decimal(text), what=what)
    except (InvalidOperation, ValueError) as exc:
        raise typer.BadParameter(f"{what}: {exc}") from exc


def _units(micros: int) -> str:
    return f"{Decimal(micros) / 1_000_000:,.2f}"


def _threshold_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def register(app: typer.Typer) -> None:
    """Add the stream-layer commands to the ``pacer-stream`` app."""
    topics_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)
    budget_app = typer.Typer(help="Campaign budgets.", no_args_is_help=True)
    alerts_app = typer.Typer(help="Pacing alerts.", no_args_is_help=True)

    @app.command()
    def worker(
        create_topics: bool = typer.Option(
            True, help="Create missing topics before starting (idempotent)."
        ),
    ) -> None:
        """Run the stream worker (agents, timers, web views) until SIGTERM/SIGINT."""
        from pacer_stream.settings import get_settings
        from pacer_stream.streams.admin import create_topics as create

        if create_topics:
            asyncio.run(create(get_settings()))
        from pacer_stream.streams.app import main

        main()

    @topics_app.command("create")
    def topics_create(
        partitions: int = typer.Option(
            0, help="Partitions of every topic (default: PACER_TOPIC_PARTITIONS)."
        ),
    ) -> None:
        """Create every topic of topics.yaml that does not exist; check the others."""
        from pacer_stream.settings import get_settings
        from pacer_stream.streams.admin import create_topics

        outcomes = asyncio.run(create_topics(get_settings(), partitions=partitions or None))
        table = Table(title="topics")
        for col in ("topic", "partitions", "action", "detail"):
            table.add_column(col)
        for o in outcomes:
            style = "red" if o.action == "mismatch" else "green" if o.action == "created" else ""
            table.add_row(o.name, str(o.partitions), o.action, o.detail, style=style)
        console.print(table)
        if any(o.action == "mismatch" for o in outcomes):
            raise typer.Exit(1)

    @budget_app.command("set")
    def budget_set(
        campaign_id: Annotated[str, typer.Argument(help="Campaign id.")],
        channel: Annotated[
            list[str],
            typer.Option(
                "--channel", "-c", help="channel=daily budget in units, e.g. google_ads=250.00"
            ),
        ],
        strategy: str = typer.Option("adaptive_hybrid", help="Pacing strategy."),
        timezone: str = typer.Option("UTC", help="IANA time zone of the campaign."),
        threshold: Annotated[
            list[str] | None,
            typer.Option(
                "--threshold", "-t", help="name=value of a pacing threshold (repeatable)."
            ),
        ] = None,
    ) -> None:
        """Publish a campaign's configuration (daily budgets per channel)."""
        budgets: dict[str, int] = {}
        for item in channel:
            name, sep, amount = item.partition("=")
            if not sep:
                raise typer.BadParameter(f"expected channel=amount, got {item!r}")
            budgets[name.strip()] = _micros(amount.strip(), f"budget of {name}")
        thresholds: dict[str, Any] = {}
        for item in threshold or []:
            name, sep, value = item.partition("=")
            if not sep:
                raise typer.BadParameter(f"expected name=value, got {item!r}")
            thresholds[name.strip()] = _threshold_value(value.strip())

        async def run() -> None:
            from pacer_stream.client.kafka import PacerClient

            async with PacerClient.from_settings() as client:
                await client.set_budget(
                    campaign_id,
                    budgets,
                    strategy=strategy,
                    timezone=timezone,
                    thresholds=thresholds,
                )

        asyncio.run(run())
        console.print(
            f"budget of [bold]{campaign_id}[/]: "
            + ", ".join(f"{c} {_units(m)}" for c, m in budgets.items())
        )

    @app.command("can-spend")
    def can_spend(
        campaign_id: str = typer.Argument(...),
        channel: str = typer.Argument(...),
        amount: str = typer.Argument(..., help="Amount in currency units, e.g. 2.50"),
        timeout: float = typer.Option(2.0, help="Seconds to wait for the worker's reply."),
    ) -> None:
        """Ask the worker whether an amount may be spent now (reserves it if allowed)."""
        micros = _micros(amount, "amount")

        async def run() -> Any:
            from pacer_stream.client.kafka import PacerClient

            async with PacerClient.from_settings() as client:
                return await client.can_spend(campaign_id, channel, micros, timeout_s=timeout)

        try:
            reply = asyncio.run(run())
        except TimeoutError:
            console.print(f"[red]no reply within {timeout} s[/] (is a worker running?)")
            raise typer.Exit(2) from None
        colour = "green" if reply.allowed else "red"
        console.print(
            f"[{colour}]{'ALLOWED' if reply.allowed else 'DENIED'}[/] "
            f"code={reply.code.value} reason={reply.reason!r} "
            f"remaining={_units(reply.remaining_micros)}"
            + (
                f" reservation={reply.reservation_id} until={reply.expires_at}"
                if reply.reservation_id
                else ""
            )
        )
        if not reply.allowed:
            raise typer.Exit(1)

    def _command(campaign_id: str, kind: str, reason: str) -> None:
        async def run() -> str:
            from pacer_stream.client.kafka import PacerClient

            async with PacerClient.from_settings() as client:
                return await client.command(campaign_id, kind, reason=reason)

        command_id = asyncio.run(run())
        console.print(f"{kind} sent for [bold]{campaign_id}[/] (command_id {command_id})")

    @app.command()
    def stop(
        campaign_id: str = typer.Argument(...),
        reason: str = typer.Option("operator emergency stop", help="Why (audited)."),
    ) -> None:
        """Emergency stop: every channel of the campaign is held OPEN until resumed."""
        _command(campaign_id, "emergency_stop", reason)

    @app.command()
    def resume(
        campaign_id: str = typer.Argument(...),
        reason: str = typer.Option("operator resume", help="Why (audited)."),
    ) -> None:
        """End an emergency stop (channels go HALF_OPEN and must prove they are on pace)."""
        _command(campaign_id, "resume", reason)

    @app.command()
    def status(
        campaign_id: str = typer.Argument(...),
        url: str = typer.Option(
            "", help="Worker web address (default http://127.0.0.1:PACER_WORKER_WEB_PORT)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the raw JSON."),
        watch: bool = typer.Option(
            False,
            "--watch",
            "-w",
            help="Keep the view open, refreshed in place: pace, spend curve by hour, "
            "breaker timeline, alerts and can-spend denials (Ctrl-C to quit).",
        ),
        interval: float = typer.Option(5.0, min=0.5, help="Seconds between refreshes (--watch)."),
        iterations: int = typer.Option(
            0, min=0, help="Stop after this many refreshes (--watch; 0 = until Ctrl-C)."
        ),
    ) -> None:
        """Show a campaign's pace, spend, reservations and breakers (asks the worker)."""
        from pacer_stream.settings import get_settings

        s = get_settings()
        base = url or f"http://127.0.0.1:{s.worker_web_port}"
        path_id = urllib.parse.quote(campaign_id, safe="")
        if watch:
            _watch(_request(f"{base}/ui/api/campaigns/{path_id}"), interval, iterations)
            return
        try:
            with urllib.request.urlopen(_request(f"{base}/campaigns/{path_id}"), timeout=5) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            console.print(f"[red]{exc.code}[/] {exc.read().decode(errors='replace')}")
            raise typer.Exit(1) from None
        except urllib.error.URLError as exc:
            console.print(f"[red]worker not reachable at {base}[/]: {exc.reason}")
            raise typer.Exit(2) from None
        if as_json:
            console.print_json(data=body)
            return
        head = f"[bold]{escape(body['campaign_id'])}[/] ({body['timezone']}, {body['strategy']})"
        if body.get("emergency_stopped"):
            head += f" [red]EMERGENCY STOPPED[/]: {body.get('stop_reason', '')}"
        console.print(head + f" at {body['at']}")
        table = Table()
        for col in (
            "channel",
            "budget",
            "spent",
            "reserved",
            "remaining",
            "planned",
            "pace",
            "breaker",
        ):
            table.add_column(col, justify="right" if col not in ("channel", "breaker") else "left")
        for ch in body["channels"]:
            br = ch["breaker"]
            state = br["state"] + (" (forced)" if br.get("forced") else "")
            colour = {"open": "red", "half_open": "yellow"}.get(br["state"], "green")
            table.add_row(
                ch["channel"],
                _units(ch["budget_micros"]),
                _units(ch["spent_micros"]),
                _units(ch["reserved_micros"]),
                _units(ch["remaining_micros"]),
                _units(ch["planned_micros"]),
                f"{ch['pace_ratio']:.2f}",
                f"[{colour}]{state}[/]",
            )
        console.print(table)

    @alerts_app.command("tail")
    def alerts_tail(
        from_beginning: bool = typer.Option(False, help="Start at the oldest retained alert."),
        limit: int = typer.Option(0, help="Stop after this many alerts (0 = never)."),
        timeout: float = typer.Option(0.0, help="Stop after this many idle seconds (0 = never)."),
    ) -> None:
        """Print pacing alerts as they are published."""
        asyncio.run(_tail_alerts(from_beginning, limit, timeout))

    app.add_typer(topics_app, name="topics")
    app.add_typer(budget_app, name="budget")
    app.add_typer(alerts_app, name="alerts")


def _request(url: str) -> urllib.request.Request:
    """A GET of a worker view, with ``Authorization: Bearer`` when
    ``PACER_WORKER_WEB_TOKEN`` is set (the worker then refuses campaign views without)."""
    from pacer_stream.settings import get_settings

    token = get_settings().worker_web_token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return urllib.request.Request(url, headers=headers)


def _watch(request: urllib.request.Request, interval: float, iterations: int) -> None:
    """``status --watch``: the operator page's facts, redrawn in place."""
    from pacer_stream.streams.ui.terminal import watch

    def fetch() -> dict[str, Any]:
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                body: dict[str, Any] = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"HTTP {exc.code}: {exc.read().decode(errors='replace')}") from None
        except urllib.error.URLError as exc:
            raise RuntimeError(f"worker not reachable: {exc.reason}") from None
        return body

    with contextlib.suppress(KeyboardInterrupt):
        watch(fetch, console=console, interval=interval, iterations=iterations)


async def _tail_alerts(from_beginning: bool, limit: int, timeout: float) -> None:
    from aiokafka import AIOKafkaConsumer

    from pacer_stream.connection import kafka_options
    from pacer_stream.errors import InvalidRecord
    from pacer_stream.settings import get_settings
    from pacer_stream.wire import records, topics

    s = get_settings()
    topic = s.topic_prefix + topics.ALERTS
    consumer = AIOKafkaConsumer(
        topic,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
        **kafka_options(s),
    )
    await consumer.start()
    seen = 0
    colours = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan"}
    try:
        idle = 0.0
        while not limit or seen < limit:
            batches = await consumer.getmany(timeout_ms=500)
            if not batches:
                idle += 0.5
                if timeout and idle >= timeout:
                    return
                continue
            idle = 0.0
            for batch in batches.values():
                for msg in batch:
                    try:
                        a = records.decode_as(records.AlertRecord, msg.value)
                    except InvalidRecord as exc:
                        console.print(f"[dim]unreadable alert at offset {msg.offset}: {exc}[/]")
                        continue
                    colour = colours.get(a.severity.value, "")
                    channel = a.channel.value if a.channel else "-"
                    console.print(
                        f"{records.format_time(a.at)} [{colour}]{a.severity.value:>8}[/] "
                        f"{a.alert_type.value:<24} {a.campaign_id}/{channel} "
                        f"pace={a.pace_ratio:.2f} spent={_units(a.current_spend_micros)} "
                        f"({a.budget_consumed_pct:.0%} of budget, "
                        f"{a.time_elapsed_pct:.0%} of day) -- {a.recommended_action}"
                    )
                    seen += 1
                    if limit and seen >= limit:
                        return
    finally:
        await consumer.stop()
