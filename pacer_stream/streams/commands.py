"""``pacer-stream`` commands of the stream layer (registered by ``pacer_stream.cli``)."""

from __future__ import annotations

import asyncio

import typer


def register(app: typer.Typer) -> None:
    topics_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)

    @app.command()
    def worker() -> None:
        """Run the stream worker (agents, timers, web views) until stopped."""
        from pacer_stream.settings import get_settings
        from pacer_stream.streams.admin import create_topics

        asyncio.run(create_topics(get_settings()))
        from pacer_stream.streams.app import main

        main()

    @topics_app.command("create")
    def topics_create() -> None:
        """Create every topic of topics.yaml that does not exist yet."""
        from pacer_stream.settings import get_settings
        from pacer_stream.streams.admin import create_topics

        for o in asyncio.run(create_topics(get_settings())):
            print(o)

    app.add_typer(topics_app, name="topics")
