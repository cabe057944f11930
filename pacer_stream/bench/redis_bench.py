"""Redis fast-path benchmark (targets: docs/targets.md): reserve latency and throughput.

Every figure is printed beside its floor measured in the same run, on the same
connection settings: a plain ``INCRBY`` round trip is the cheapest thing a Redis client
can do, so ``reserve`` (one EVALSHA doing the atomic reservation) cannot beat it; the
ratio says what the Lua script costs on top. An overspend check runs 64 concurrent
clients against an allowance half the size of their demand and reports how much more
than the allowance was granted (the target, and the only acceptable answer, is 0).

Each measurement is repeated ``repeats`` times; medians are reported (shared machines
are noisy). Latencies are measured in the bidder's process, so they include the Python
client (redis-py + hiredis + asyncio) -- which is what a Python bid engine pays.

``await run(url)`` returns a JSON-able dict; ``pacer-stream bench`` writes it to
``redis_fastpath.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from redis.exceptions import RedisError

from pacer_stream.adapters import keys
from pacer_stream.adapters.redis_publisher import RedisPublisher
from pacer_stream.adapters.redis_store import RedisStore
from pacer_stream.client.fastpath import FastPathClient
from pacer_stream.core.money import MAX_MICROS
from pacer_stream.core.types import ChannelType, Code

CH = ChannelType.SEARCH
#: Generous per-call timeout: a benchmark measures latency, it should not fail closed.
TIMEOUT_S = 2.0
TARGET_P99_US = 1_000.0


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _lat(samples_ns: list[int]) -> dict[str, float]:
    us = [s / 1_000 for s in samples_ns]
    return {
        "p50_us": round(_pct(us, 0.50), 1),
        "p99_us": round(_pct(us, 0.99), 1),
        "mean_us": round(statistics.fmean(us), 1),
    }


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def _safe_url(url: str) -> str:
    """host:port/db only -- never echo credentials into a results file."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"


async def _server_stats(store: RedisStore) -> dict[str, tuple[int, int]]:
    """(calls, usec) per command from INFO commandstats; empty if not permitted."""
    try:
        stats = await store.redis.info("commandstats")
    except (RedisError, OSError):
        return {}
    return {
        name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
        for name, v in stats.items()
        if isinstance(v, dict) and "calls" in v
    }


def _server_us_per_call(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], command: str
) -> float | None:
    """Server CPU per call of ``command`` between two snapshots (Redis's own clock)."""
    if command not in after:
        return None
    calls = after[command][0] - before.get(command, (0, 0))[0]
    usec = after[command][1] - before.get(command, (0, 0))[1]
    return round(usec / calls, 2) if calls > 0 else None


async def _single_client(
    fp: FastPathClient, incr: RedisStore, cid: str, n: int, tag: str
) -> dict[str, Any]:
    """n sequential reserves (then n settles) and n sequential INCRBYs, interleaved in
    blocks so drift in machine load hits both alike."""
    reserve_ns: list[int] = []
    settle_ns: list[int] = []
    incr_ns: list[int] = []
    incr_key = f"pacer-bench:{{{cid}}}:incr"
    ids: list[str] = []
    block = 100
    for start in range(0, n, block):
        for i in range(start, min(n, start + block)):
            t0 = time.perf_counter_ns()
            r = await fp.reserve(cid, CH, 1, f"{tag}-{i}")
            reserve_ns.append(time.perf_counter_ns() - t0)
            if not r.allowed or r.reservation_id is None:
                raise RuntimeError(f"benchmark reserve denied: {r.code} {r.reason}")
            ids.append(r.reservation_id)
        for _ in range(start, min(n, start + block)):
            t0 = time.perf_counter_ns()
            await incr.redis.incrby(incr_key, 1)
            incr_ns.append(time.perf_counter_ns() - t0)
    for rid in ids:
        t0 = time.perf_counter_ns()
        await fp.settle(rid, 1)
        settle_ns.append(time.perf_counter_ns() - t0)
    await incr.redis.delete(incr_key)
    return {"reserve": _lat(reserve_ns), "settle": _lat(settle_ns), "incrby": _lat(incr_ns)}


async def _concurrent(
    clients: list[FastPathClient], incr: RedisStore, cid: str, per_client: int, tag: str
) -> dict[str, float]:
    """All clients reserve flat out; then the same number of concurrent INCRBYs."""
    latencies: list[int] = []

    async def reserver(c: int) -> None:
        fp = clients[c]
        for i in range(per_client):
            t0 = time.perf_counter_ns()
            r = await fp.reserve(cid, CH, 1, f"{tag}-{c}-{i}")
            latencies.append(time.perf_counter_ns() - t0)
            if not r.allowed:
                raise RuntimeError(f"benchmark reserve denied: {r.code} {r.reason}")

    t0 = time.perf_counter()
    await asyncio.gather(*(reserver(c) for c in range(len(clients))))
    reserve_s = time.perf_counter() - t0

    incr_key = f"pacer-bench:{{{cid}}}:incr"

    async def incrementer() -> None:
        for _ in range(per_client):
            await incr.redis.incrby(incr_key, 1)

    t0 = time.perf_counter()
    await asyncio.gather(*(incrementer() for _ in range(len(clients))))
    incr_s = time.perf_counter() - t0
    await incr.redis.delete(incr_key)
    total = per_client * len(clients)
    lat = _lat(latencies)
    return {
        "reserves_per_s": total / reserve_s,
        "incrby_per_s": total / incr_s,
        "reserve_p50_us_under_load": lat["p50_us"],
        "reserve_p99_us_under_load": lat["p99_us"],
    }


async def _overspend(
    clients: list[FastPathClient], pub: RedisPublisher, cid: str, per_client: int
) -> dict[str, int]:
    """Demand = 2x the allowance, from every client at once; count what was granted."""
    amount = 1_000
    demand = amount * per_client * len(clients)
    allowance = demand // 2
    await pub.publish(cid, CH, allowance, "closed", 120)
    granted = 0
    denied = 0
    errors = 0

    async def bidder(c: int) -> None:
        nonlocal granted, denied, errors
        for i in range(per_client):
            r = await clients[c].reserve(cid, CH, amount, f"o-{c}-{i}")
            if r.allowed:
                granted += amount
            elif r.code is Code.STORE_UNAVAILABLE:
                errors += 1
            else:
                denied += 1

    await asyncio.gather(*(bidder(c) for c in range(len(clients))))
    usage = await pub.usage(cid, CH)
    return {
        "allowance_micros": allowance,
        "demand_micros": demand,
        "granted_micros": granted,
        "overspend_micros": max(0, granted - allowance),
        "remaining_micros": usage.remaining_micros,
        "denied": denied,
        "store_errors": errors,
    }


async def run(
    url: str = "redis://127.0.0.1:6379/0",
    *,
    n: int = 5_000,
    clients: int = 64,
    per_client: int = 200,
    repeats: int = 3,
    **client_kwargs: Any,
) -> dict[str, Any]:
    """Measure the fast path against ``url`` and return the figures (JSON-able).

    ``client_kwargs`` (username, password, ssl_ca_certs ...) go to every client. Keys
    are created under a fresh campaign id and deleted afterwards.
    """
    run_id = uuid.uuid4().hex[:10]
    cids = [f"bench-{run_id}-{k}" for k in ("single", "load", "overspend")]
    pub = RedisPublisher(url, timeout_s=TIMEOUT_S, **client_kwargs)
    single = FastPathClient(url, timeout_s=TIMEOUT_S, pool_size=1, **client_kwargs)
    incr_single = RedisStore(url, timeout_s=TIMEOUT_S, pool_size=1, **client_kwargs)
    many = [
        FastPathClient(url, timeout_s=TIMEOUT_S, pool_size=1, **client_kwargs)
        for _ in range(clients)
    ]
    incr_many = RedisStore(url, timeout_s=TIMEOUT_S, pool_size=clients, **client_kwargs)
    try:
        info = await pub.store.redis.info("server")
        for cid in cids[:2]:
            await pub.publish(cid, CH, MAX_MICROS, "closed", 600, reservation_ttl_s=600)
        # Warm-up: connections open, scripts cached, code paths hot.
        await _single_client(single, incr_single, cids[0], min(n, 500), "warm")
        stats_before = await _server_stats(incr_single)
        singles = [
            await _single_client(single, incr_single, cids[0], n, f"s{r}") for r in range(repeats)
        ]
        stats_after = await _server_stats(incr_single)
        loads = [
            await _concurrent(many, incr_many, cids[1], per_client, f"c{r}") for r in range(repeats)
        ]
        over = await _overspend(many, pub, cids[2], per_client)
    finally:
        bench_keys = [k for cid in cids for k in keys.channel_keys(cid, CH).all()]
        with contextlib.suppress(RedisError, OSError):
            await pub.store.redis.delete(*bench_keys)
        await pub.aclose()
        await incr_single.aclose()
        await incr_many.aclose()
        for fp in (single, *many):
            await fp.aclose()

    def med(op: str, field: str) -> float:
        return _median([s[op][field] for s in singles])

    reserve_p50 = med("reserve", "p50_us")
    reserve_p99 = med("reserve", "p99_us")
    incr_p50 = med("incrby", "p50_us")
    incr_p99 = med("incrby", "p99_us")
    reserves_per_s = statistics.median(x["reserves_per_s"] for x in loads)
    incr_per_s = statistics.median(x["incrby_per_s"] for x in loads)
    return {
        "benchmark": "redis_fastpath",
        "redis": {"url": _safe_url(url), "version": info.get("redis_version")},
        "parameters": {
            "n_single": n,
            "clients": clients,
            "reserves_per_client": per_client,
            "repeats": repeats,
            "timeout_s": TIMEOUT_S,
        },
        "single_client": {
            "reserve_p50_us": reserve_p50,
            "reserve_p99_us": reserve_p99,
            "reserve_mean_us": med("reserve", "mean_us"),
            "settle_p50_us": med("settle", "p50_us"),
            "settle_p99_us": med("settle", "p99_us"),
            "baseline_incrby_p50_us": incr_p50,
            "baseline_incrby_p99_us": incr_p99,
            "reserve_over_incrby_p50": round(reserve_p50 / incr_p50, 2) if incr_p50 else None,
            # Server CPU per call (reserve and settle are EVALSHA; INCRBY is the floor).
            "server_us_per_evalsha": _server_us_per_call(stats_before, stats_after, "evalsha"),
            "server_us_per_incrby": _server_us_per_call(stats_before, stats_after, "incrby"),
        },
        "concurrent": {
            "clients": clients,
            "reserves_per_s": round(reserves_per_s),
            "baseline_incrby_per_s": round(incr_per_s),
            "reserve_share_of_incrby": round(reserves_per_s / incr_per_s, 2),
            "reserve_p50_us_under_load": _median([x["reserve_p50_us_under_load"] for x in loads]),
            "reserve_p99_us_under_load": _median([x["reserve_p99_us_under_load"] for x in loads]),
        },
        "overspend": over,
        "targets": {"reserve_p99_us": TARGET_P99_US, "overspend_micros": 0},
        "meets_targets": reserve_p99 <= TARGET_P99_US and over["overspend_micros"] == 0,
        "repetitions": {"single_client": singles, "concurrent": loads},
    }
