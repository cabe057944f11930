"""One benchmark's figures from several runs: the median of each, and its range.

Why: on a shared machine one run's figure moves 2-3x with whatever else the cores are
doing, so a single run can read as a target met or missed by luck. Each run measures its
ratios side by side (the worker and its peers on the same backlog), and the repetition
then reports the median of every figure, ratios included, so the committed figures are
typical rather than lucky, and the spread beside them says how much to trust them.

The runs' results are JSON-shaped (dicts, lists, numbers, strings, None). Medians are
taken leaf by leaf over the same path in every run: a number's median when every run has
a number there, else None (a figure one run could not measure is not the median of the
others), and any other leaf kept when every run agrees, else None.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any


def median_of(runs: Sequence[Any]) -> Any:
    """The leaf-by-leaf median of ``runs`` (same shape as one run; see module doc)."""
    if not runs:
        raise ValueError("no runs")
    first = runs[0]
    if all(isinstance(r, dict) for r in runs):
        keys = list(dict.fromkeys(k for r in runs for k in r))
        return {k: median_of([r.get(k) for r in runs]) for k in keys}
    if all(isinstance(r, list) for r in runs) and len({len(r) for r in runs}) == 1:
        return [median_of(list(items)) for items in zip(*runs, strict=True)]
    if all(_is_number(r) for r in runs):
        if any(math.isnan(r) for r in runs):
            return math.nan
        value = statistics.median(runs)
        if all(isinstance(r, int) for r in runs) and value == int(value):
            return int(value)
        return round(float(value), 3)
    return first if all(r == first for r in runs) else None


def range_of(runs: Sequence[Any], path: Sequence[str | int]) -> tuple[float, float] | None:
    """(lowest, highest) of the number at ``path`` over the runs, or None when a run has
    none there."""
    values = [_at(r, path) for r in runs]
    numbers = [v for v in values if _is_number(v) and not math.isnan(v)]
    if not numbers or len(numbers) != len(values):
        return None
    return min(numbers), max(numbers)


def _at(value: Any, path: Sequence[str | int]) -> Any:
    for step in path:
        if isinstance(step, int) and isinstance(value, list) and -len(value) <= step < len(value):
            value = value[step]
        elif isinstance(step, str) and isinstance(value, dict):
            value = value.get(step)
        else:
            return None
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
