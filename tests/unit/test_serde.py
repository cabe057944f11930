"""Round trip of the campaign state through ``pacer_stream.core.serde``.

The worker's table stores the serialised state; after a restart the recovered object
must behave exactly like the one that was written. The property test drives a state
through random engine operations (configure, spend incl. duplicates and late events,
reservations, commands, reallocation, ticks, day roll-overs), round-trips it, then
applies the *same* further operations to the original and the copy: every decision,
every output and the final state must be identical.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pacer_stream.core import serde
from pacer_stream.core.allocation.base import StrategyResult
from pacer_stream.core.engine import PacingEngine
from pacer_stream.core.state import Answer, AnswerStatus, CampaignState, Unreported
from pacer_stream.core.types import (
    CampaignConfig,
    ChannelConfig,
    ChannelType,
    CircuitBreakerState,
    PacingStrategy,
    SpendEvent,
    Thresholds,
)
from pacer_stream.errors import PacerError

ENGINE = PacingEngine()
START = datetime(2026, 3, 7, 9, 30, tzinfo=UTC)  # a DST week-end in America/New_York
CHANNELS = (ChannelType.GOOGLE_ADS, ChannelType.FACEBOOK_ADS, ChannelType.DISPLAY)

Op = tuple[Any, ...]


def _config(
    budgets: dict[ChannelType, int], strategy: PacingStrategy, tz: str, cooldown: int
) -> CampaignConfig:
    return CampaignConfig(
        campaign_id="camp-1",
        channels={c: ChannelConfig(b) for c, b in budgets.items()},
        strategy=strategy,
        timezone=tz,
        thresholds=Thresholds(breaker_cooldown_s=cooldown, reservation_ttl_s=90),
    )


_spend = st.tuples(
    st.just("spend"),
    st.integers(0, 400),  # event id (small range: duplicates happen)
    st.sampled_from(CHANNELS),
    st.integers(0, 99).flatmap(
        lambda n: st.integers(0, 3_000_000) if n < 80 else st.integers(0, 150_000_000)
    ),
    # event time relative to now: mostly current, some late (earlier hours and days)
    st.integers(0, 99).flatmap(
        lambda n: st.integers(-600, 60) if n < 80 else st.integers(-3 * 86400, 200)
    ),
    st.integers(0, 30),
    st.integers(0, 5),
    st.booleans(),
)
_reserve = st.tuples(
    st.just("reserve"), st.integers(0, 30), st.sampled_from(CHANNELS), st.integers(1, 5_000_000)
)
_advance = st.tuples(st.just("advance"), st.integers(1, 7200))
_rare = st.one_of(
    st.tuples(
        st.just("configure"),
        st.dictionaries(
            st.sampled_from(CHANNELS),
            st.integers(1, 5_000).map(lambda u: u * 1_000_000),
            min_size=1,
        ),
        st.sampled_from(list(PacingStrategy)),
        st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata"]),
        st.integers(1, 600),
    ),
    st.tuples(st.just("release"), st.integers(0, 30), st.sampled_from(CHANNELS)),
    st.tuples(st.just("advance_day"), st.integers(1, 2)),
    st.tuples(st.just("stop"), st.text(max_size=8)),
    st.tuples(st.just("resume")),
    st.tuples(
        st.just("force"), st.sampled_from(CHANNELS), st.sampled_from(list(CircuitBreakerState))
    ),
    st.tuples(st.just("reallocate")),
    st.tuples(st.just("tick")),
)
#: Spends, reservations and small clock steps dominate, as in production.
ops = st.integers(0, 99).flatmap(
    lambda n: _spend if n < 45 else _reserve if n < 65 else _advance if n < 85 else _rare
)


class Driver:
    """Applies ops to a state and records everything observable."""

    def __init__(self, state: CampaignState | None, now: datetime) -> None:
        self.state = state
        self.now = now
        self.seen: list[object] = []

    def apply(self, op: Op) -> None:
        kind = op[0]
        try:
            self._apply(kind, op)
        except PacerError as exc:  # invalid times etc. are part of the behaviour
            self.seen.append(("error", type(exc).__name__, exc.code))

    def _apply(self, kind: str, op: Op) -> None:
        e = ENGINE
        if kind == "advance":
            self.now += timedelta(seconds=op[1])
            return
        if kind == "advance_day":
            self.now += timedelta(days=op[1])
            return
        if kind == "configure":
            self.state, out = e.configure(self.state, _config(op[1], op[2], op[3], op[4]), self.now)
            self.seen.append(out)
            return
        state = self.state
        if state is None:
            return
        if kind == "spend":
            _, eid, ch, amount, rel, clicks, conv, with_res = op
            event = SpendEvent(
                event_id=f"ev-{eid}",
                campaign_id=state.campaign_id,
                channel=ch,
                amount_micros=amount,
                event_time=self.now + timedelta(seconds=rel),
                clicks=clicks,
                conversions=min(conv, clicks),
                impressions=clicks * 10,
                reservation_id=f"res-r{eid % 30}" if with_res else None,
            )
            self.seen.append(e.record_spend(state, event, self.now))
        elif kind == "reserve":
            self.seen.append(e.reserve(state, op[2], op[3], f"r{op[1]}", self.now))
        elif kind == "release":
            self.seen.append(e.release(state, op[2], f"res-r{op[1]}", self.now))
        elif kind == "stop":
            self.seen.append(e.emergency_stop(state, op[1], self.now))
        elif kind == "resume":
            self.seen.append(e.resume(state, self.now))
        elif kind == "force":
            self.seen.append(e.force_breaker(state, op[1], op[2], self.now))
        elif kind == "reallocate":
            self.seen.append(e.reallocate(state, self.now))
        elif kind == "tick":
            self.seen.append(e.tick(state, self.now))
        for ch in CHANNELS:
            self.seen.append(e.decide(state, ch, 1_000_000, self.now))


def _roundtrip(state: CampaignState) -> CampaignState:
    data = serde.dumps(state)
    copy = serde.loads(data)
    assert serde.dumps(copy) == data  # stable encoding
    return copy


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    before=st.lists(ops, min_size=10, max_size=80),
    after=st.lists(ops, min_size=5, max_size=30),
)
def test_roundtrip_is_behaviourally_exact(before: list[Op], after: list[Op]) -> None:
    first = Driver(None, START)
    first.apply(
        (
            "configure",
            {c: 500 * 1_000_000 for c in CHANNELS},
            PacingStrategy.EVEN_DISTRIBUTION,
            "UTC",
            300,
        )
    )
    for op in before:
        first.apply(op)
    assert first.state is not None
    copy = _roundtrip(first.state)
    assert copy == first.state

    second = Driver(copy, first.now)
    first.seen.clear()
    for op in after:
        first.apply(op)
        second.apply(op)
    assert second.seen == first.seen
    assert second.state == first.state
    assert serde.dumps(second.state) == serde.dumps(first.state)  # type: ignore[arg-type]


def _busy_state() -> CampaignState:
    d = Driver(None, START)
    d.apply(
        (
            "configure",
            {c: 1_000 * 1_000_000 for c in CHANNELS},
            PacingStrategy.ADAPTIVE_HYBRID,
            "America/New_York",
            60,
        )
    )
    for i in range(200):
        d.apply(("spend", i, CHANNELS[i % 3], 2_000_000 + i, -((i * 600) % 86400), 5, 1, False))
        if i % 7 == 0:
            d.apply(("reserve", i, CHANNELS[i % 3], 1_000_000))
        d.apply(("advance", 30))
    d.apply(("force", CHANNELS[1], CircuitBreakerState.OPEN))
    assert d.state is not None
    return d.state


def test_busy_state_roundtrip_and_size() -> None:
    state = _busy_state()
    data = serde.dumps(state)
    copy = serde.loads(data)
    assert copy == state
    assert copy.channels[CHANNELS[1]].breaker.state is CircuitBreakerState.OPEN
    assert len(copy.dedupe) == 200
    assert copy.offsets == state.offsets
    # compact: a few KiB for three channels with a day of plan, history and 200 ids
    assert len(data) < 40_000


def test_offsets_and_answered_survive() -> None:
    state = _busy_state()
    state.offsets["pacer.spend.v1"] = 12345
    state.answered["odd"] = Answer(CHANNELS[0], 7, "custom-id", 1.5e9, AnswerStatus.SETTLED)
    state.answered["q"] = Answer(CHANNELS[1], 9, "res-q", 1.6e9)
    copy = serde.loads(serde.dumps(state))
    assert copy.offsets == {"pacer.spend.v1": 12345}
    assert list(copy.answered.items()) == list(state.answered.items())


def test_answers_in_the_older_format_are_forgotten_not_trusted() -> None:
    """Older values kept request id -> reservation id only; without channel and amount
    a retry could not be checked, so those answers load as none (a retry of such a
    request is then decided afresh by every rule)."""
    state = _busy_state()
    data = serde.to_dict(state)
    data["a"] = {"k": ["q1", "q2"], "x": {"q2": "custom"}}
    assert serde.from_dict(data).answered == {}


def test_unreported_reservations_keep_their_creation_time() -> None:
    state = _busy_state()
    ch = state.channels[CHANNELS[0]]
    ch.unreported = {"res-a": Unreported(5, 1.7e9, 1.69e9)}
    ch.unreported_total = 5
    copy = serde.loads(serde.dumps(state)).channels[CHANNELS[0]]
    assert copy.unreported == {"res-a": Unreported(5, 1.7e9, 1.69e9)}
    assert copy.unreported_total == 5
    older = serde.to_dict(state)
    older["ch"][0]["ur"] = [["res-a", 5, 1.7e9]]  # written before creation times were kept
    assert serde.from_dict(older).channels[CHANNELS[0]].unreported["res-a"].created_at == 0.0


def test_non_finite_strategy_values_roundtrip() -> None:
    state = _busy_state()
    ch = state.channels[CHANNELS[0]]
    assert ch.result is not None
    r = ch.result
    ch.result = StrategyResult(
        r.weights,
        r.multipliers,
        (math.nan, math.inf, *r.predicted_conversion_rate[2:]),
        r.predicted_cost_per_click,
        r.confidence,
        r.model_version,
    )
    copy = serde.loads(serde.dumps(state))
    got = copy.channels[CHANNELS[0]].result
    assert got is not None
    assert math.isnan(got.predicted_conversion_rate[0])
    assert got.predicted_conversion_rate[1] == math.inf


def test_thresholds_store_only_overrides() -> None:
    state = _busy_state()
    data = orjson.loads(serde.dumps(state))
    assert data["t"] == {"breaker_cooldown_s": 60, "reservation_ttl_s": 90}
    assert {f.name for f in fields(Thresholds)} >= set(data["t"])


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(v=2),
        lambda d: d.pop("ch"),
        lambda d: d.update(t={"no_such_threshold": 1}),
        lambda d: d["ch"][0].update(c="carrier_pigeon"),
        lambda d: d["ch"][0].update(bb="100"),
        lambda d: d["d"].update(e=[]),
    ],
)
def test_malformed_input_raises_serde_error(mutate: Callable[[dict[str, Any]], None]) -> None:
    data = orjson.loads(serde.dumps(_busy_state()))
    mutate(data)
    with pytest.raises(serde.SerdeError):
        serde.from_dict(data)


def test_not_json_raises_serde_error() -> None:
    with pytest.raises(serde.SerdeError):
        serde.loads(b"{nope")
    with pytest.raises(serde.SerdeError):
        serde.loads(b"[1, 2]")


def test_values_written_by_an_older_worker_still_load() -> None:
    """A changelog outlives a deploy: the early history layout and state fields added
    later (absent windows) must still load, as empty windows."""
    state = _busy_state()
    data = orjson.loads(serde.dumps(state))
    for ch in data["ch"]:
        horizon, newest, hours, buckets = ch["h"]
        ch["h"] = [horizon, newest, [[h, *b] for h, b in zip(hours, buckets, strict=True)]]
        for key in ("una", "unm", "ut"):
            ch.pop(key, None)
    old = serde.from_dict(data)
    for channel, ch in old.channels.items():
        assert ch.history == state.channels[channel].history
        assert ch.unmet.total(0.0, 900) == 0 and not any(ch.unmet.amounts)
        assert not ch.unauthorised_times


def test_report_lags_and_unmet_demand_by_hour_roundtrip_and_are_optional() -> None:
    state = _busy_state()
    ch = state.channels[CHANNELS[0]]
    ch.own_report_lags().extend([1.5, 300.0, 42.0])
    ch.own_unmet_hours().add(490_000, 7_000_000)
    ch.own_unmet_hours().add(490_001, 3)
    copy = serde.loads(serde.dumps(state)).channels[CHANNELS[0]]
    assert list(copy.report_lags) == [1.5, 300.0, 42.0]
    assert copy.unmet_hours.amounts == {490_000: 7_000_000, 490_001: 3}
    older = serde.to_dict(state)
    for c in older["ch"]:
        c.pop("lag")
        c.pop("umh")
    old = serde.from_dict(older).channels[CHANNELS[0]]
    assert not old.report_lags and old.unmet_hours.amounts == {}
    broken = serde.to_dict(state)
    broken["ch"][0]["umh"] = [[1, 2], [3]]
    with pytest.raises(serde.SerdeError):
        serde.from_dict(broken)
