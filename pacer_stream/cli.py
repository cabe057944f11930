"""The ``pacer-stream`` command. Each area registers its own sub-commands:

* ``simulate``                      -> ``pacer_stream.sim.command``
* ``worker``, ``topics create``, ``budget set``, ``can-spend``, ``stop``, ``resume``,
  ``status``, ``alerts tail``       -> ``pacer_stream.streams.commands``
* ``bench``                         -> ``pacer_stream.bench.command``
* ``forecast-eval``                 -> ``pacer_stream.forecast_eval``
* ``schemas export``                -> ``pacer_stream.wire.command``

Heavy imports (faust, matplotlib, scikit-learn) happen inside the commands, so
``pacer-stream --help`` stays fast.
"""

from __future__ import annotations

import typer

from pacer_stream.bench.command import register as register_bench
from pacer_stream.sim.command import register as register_simulate
from pacer_stream.streams.commands import register as register_streams
from pacer_stream.wire.command import register as register_schemas

app = typer.Typer(
    name="pacer-stream",
    help="Event-driven advertising budget pacer.",
    no_args_is_help=True,
    add_completion=False,
)
register_simulate(app)
register_streams(app)
register_bench(app)
register_schemas(app)


@app.command("forecast-eval")
def forecast_eval(
    days: int = typer.Option(14, help="simulated days (>= 14 shows weekly seasonality)"),
    seeds: int = typer.Option(3, help="seeds to average over"),
    out: str = typer.Option("out/forecast", help="folder for forecast_report.json"),
) -> None:
    """Compare PREDICTIVE_ML and ADAPTIVE_HYBRID with EVEN and HISTORICAL_PATTERN over a
    multi-day market, and each forecast model with seasonal-naive baselines."""
    from pacer_stream import forecast_eval as fe

    fe.run(days, seeds, out)


def main() -> None:
    app()
