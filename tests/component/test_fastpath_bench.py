"""The fast-path benchmark is importable, runs, and reports zero overspend."""

from __future__ import annotations

import json

import pytest

from pacer_stream.bench import redis_bench

pytestmark = pytest.mark.redis


async def test_bench_runs_small_and_returns_json(redis_url: str) -> None:
    res = await redis_bench.run(redis_url, n=200, clients=8, per_client=20, repeats=1)
    json.dumps(res)  # JSON-able as promised
    assert res["benchmark"] == "redis_fastpath"
    single = res["single_client"]
    assert single["reserve_p50_us"] > 0 and single["baseline_incrby_p50_us"] > 0
    assert res["concurrent"]["reserves_per_s"] > 0
    assert res["overspend"]["overspend_micros"] == 0
    assert res["overspend"]["granted_micros"] == res["overspend"]["allowance_micros"]
    assert "@" not in res["redis"]["url"]
