"""The bounded windows hold no storage while empty and keep their rules when used."""

from __future__ import annotations

from pacer_stream.core import serde
from pacer_stream.core.state import CampaignState
from pacer_stream.core.windows import DedupeWindow


def test_an_unused_window_holds_no_queue() -> None:
    window = DedupeWindow()
    assert window.order is None and not window.expiry
    assert not window.seen("a", 0.0)
    window.prune(10.0)
    assert window.order is None


def test_a_window_releases_its_storage_when_it_empties() -> None:
    window = DedupeWindow(window_s=10.0)
    window.add("a", 0.0)
    window.add("b", 5.0)
    assert window.order is not None and list(window.order) == ["a", "b"]
    assert window.seen("b", 12.0) and not window.seen("a", 12.0)
    assert not window.seen("b", 15.0)
    assert window.order is None and window.expiry == {}
    window.add("c", 20.0)  # usable again after being emptied
    assert window.seen("c", 21.0) and len(window) == 1


def test_clear_forgets_every_id_but_keeps_the_counts() -> None:
    window = DedupeWindow(max_entries=2)
    window.track()
    for e in ("a", "b", "c"):
        window.add(e, 0.0)
    assert window.evicted == 1
    window.clear()
    assert len(window) == 0 and window.order is None and window.evicted == 1
    assert window.take_added() == []
    window.add("d", 1.0)
    assert window.take_added() == ["d"]


def test_forgetting_the_last_id_releases_the_queue() -> None:
    window = DedupeWindow()
    window.add("a", 0.0)
    window.forget("a")
    assert window.order is None and not window.seen("a", 0.0)


def test_an_empty_window_round_trips_without_storage() -> None:
    state = CampaignState("c")
    state.dedupe.add("a", 0.0)
    state.dedupe.clear()
    loaded = serde.loads(serde.dumps(state))
    assert loaded.dedupe.order is None and loaded == state
    state.dedupe.add("b", 1.0)
    again = serde.loads(serde.dumps(state))
    assert again.dedupe.order is not None and list(again.dedupe.order) == ["b"]
    assert again == state
