"""The ``pacer-stream`` command. Each area registers its own sub-commands:

* ``simulate``                      -> ``pacer_stream.sim.command``
* ``worker``, ``topics create``, ``budget set``, ``can-spend``, ``stop``, ``resume``,
  ``status``, ``alerts tail``       -> ``pacer_stream.streams.commands``
* ``bench``                         -> ``pacer_stream.bench.command``
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


def main() -> None:
    app()
