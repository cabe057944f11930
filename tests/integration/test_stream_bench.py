"""``pacer-stream bench --only stream`` end to end on the real broker, at a small size:
two runs, each on its own topics and worker processes, reported as the median of each
figure with every run kept. The figures themselves are a benchmark's; what is checked is
that each run measured every phase on every record it sent, and how the runs combine."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pacer_stream.bench import stream_bench
from pacer_stream.settings import Settings

pytestmark = pytest.mark.integration

BOOTSTRAP = Settings().kafka_bootstrap_servers


def test_two_small_runs_are_each_complete_and_reported_as_their_median(
    tmp_path: Path,
) -> None:
    res = asyncio.run(
        stream_bench.run(
            BOOTSTRAP,
            n_events=400,
            n_campaigns=8,
            partitions=2,
            live_rate=100.0,
            live_seconds=1.0,
            request_rates=(50.0,),
            request_seconds=1.0,
            mixed_rates=(50.0, 100.0),
            floor_rates=(50.0,),
            batch_events=2_000,
            batch_live_rate=400.0,
            workdir=tmp_path,
            runs=2,
        )
    )
    assert res["runs"] == 2 and len(res["per_run"]) == 2
    for run in res["per_run"]:
        # Every live record was read back as applied (the lag is over all of them) ...
        assert run["faust_worker"]["lag"]["n"] == 100
        assert run["plain_loop"]["lag"]["n"] == 100
        assert run["faust_worker_batched"]["events"] == 2_000
        # Each backlog's figures are over its own events only: the worker handled
        # exactly those (the plain loop's records were applied before the batched one).
        assert run["faust_worker"]["events_handled"] == 400
        assert run["faust_worker_batched"]["events_handled"] == 2_000
        assert run["faust_worker"]["events_per_s"] > 0
        assert run["faust_worker_batched"]["events_per_s"] > 0
        assert 0 < run["faust_worker"]["changelog_bytes_per_event"] <= 200
        assert run["faust_worker"]["cpu_us_per_event"] > 0
        assert run["faust_worker_batched"]["cpu_us_per_event"] > 0
        # ... and every request was answered or counted as timed out.
        trip = run["can_spend_round_trip"][0]
        assert trip["requests"] == 50
        assert sum(trip["codes"].values()) + trip["timeouts"] == 50
        mixed = run["can_spend_with_spend"]
        assert mixed["requests"] == 50 and mixed["spend_rate_per_s"] == 100.0
        assert sum(mixed["codes"].values()) + mixed["timeouts"] == 50
        assert run["peers"]["faust"]["events_per_s"] > 0
        # The echo servers answered every request the client timed.
        for kind in ("faust-echo", "plain-echo"):
            (floor,) = run["can_spend_floor"][kind]
            assert floor["requests"] == 50 and floor["timeouts"] == 0
            assert floor["codes"] == {"ok": 50}
    rates = sorted(r["faust_worker"]["events_per_s"] for r in res["per_run"])
    assert res["faust_worker"]["events_per_s"] == round(sum(rates) / 2, 3)
    ratios = sorted(r["faust_vs_trivial_agent"] for r in res["per_run"])
    assert res["faust_vs_trivial_agent"] == round(sum(ratios) / 2, 3)
    # Each run wrote its worker's files under its own folder.
    assert {p.name for p in tmp_path.iterdir()} == {"run-0", "run-1"}
