"""Forecast training from the worker's timer: snapshot owned campaigns, submit due ones.

Kept apart from ``app.py`` so it can be tested without a faust app. The event loop only
copies each channel's hourly history (a few hundred rows) and hands it to the
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
    many were submitted (the runner skips keys already training)."""
    submitted = 0
    for value in owned:
        submitted += len(runner.submit_all(snapshots_of(value.state, now), now))
    return submitted
