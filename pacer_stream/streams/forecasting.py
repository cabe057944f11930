"""Forecast training from the worker's timer: snapshot owned campaigns, submit due ones.

Kept apart from ``app.py`` so it can be tested without a faust app. The event loop only
copies the hourly history of each channel whose model may be due and hands it to the
:class:`~pacer_stream.adapters.forecast_runner.ForecastRunner`, which trains in its executor and
swaps the model in; nothing here waits for a training.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pacer_stream.adapters.forecast_runner import ForecastRunner
from pacer_stream.core.forecast.service import snapshots_of
from pacer_stream.streams.stored import Stored


def submit_trainings(runner: ForecastRunner, owned: Iterable[Stored], now: datetime) -> int:
    """Submit a training for every owned campaign/channel whose model is due; returns how
    many were submitted (the runner skips keys already training). A channel's history
    is copied only when its model may be due (:meth:`ForecastRunner.may_be_due`): most
    models are fresh at most runs, and a copy costs milliseconds with weeks of history."""
    submitted = 0
    for value in owned:
        snaps = snapshots_of(value.state, now, wanted=runner.may_be_due)
        submitted += len(runner.submit_all(snaps, now))
    return submitted
