"""Freezing the worker's start-up objects keeps later garbage collectable."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from pacer_stream.streams.heap import freeze_startup_objects


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # the test process keeps collecting everything


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_start_up_objects_are_frozen_and_later_cycles_still_collected(unfrozen: None) -> None:
    before = _Node()
    before.other = before  # alive (referenced below), so frozen
    frozen = freeze_startup_objects()
    assert frozen == gc.get_freeze_count() > 0
    tracked = len(gc.get_objects())
    assert tracked < frozen  # collections now walk only what came later

    freed: list[str] = []
    later = _Node()
    later.other = later  # a cycle created after the freeze

    weakref.finalize(later, freed.append, "later")
    del later
    gc.collect()
    assert freed == ["later"]
    assert before.other is before
