"""``simulate --bootstrap HOST:PORT``: the same traffic through a *running* worker.

The worker decides with its own clock (the wall clock plus ``PACER_CLOCK_OFFSET_S``),
so a streaming run happens in real time: a small scenario (a few campaigns) over a
window of a few real minutes. Each campaign's traffic is the seeded day's traffic at the
worker's current local minute in the campaign's time zone.

The bid engine is the same as in-process (``sim.pacer``): per minute and channel, one
``can_spend`` request per auction batch through
:class:`~pacer_stream.client.kafka.PacerClient`, and a spend event carrying the
reservation id for each allowed batch (1% of them published twice, the duplicate
fault; the stall, late and runaway faults need a whole day and stay in-process).

Beside the worker, an in-process *mirror* engine receives exactly the same calls, each
decision evaluated at the worker's own ``decided_at``; the run reports how often the
worker's answers and the mirror's agree, the money each authorised, and (when the
worker's web view is reachable) the worker's recorded spend against the unique events
sent: its double counting, which must be 0.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from pacer_stream.core.calendar import zone
from pacer_stream.core.engine import PacingEngine
from pacer_stream.core.state import CampaignState
from pacer_stream.core.types import CampaignConfig, ChannelConfig, ChannelType, SpendEvent
from pacer_stream.sim.faults import plan_faults
from pacer_stream.sim.pacer import STRATEGY
from pacer_stream.sim.scenario import CHUNKS, Scenario
from pacer_stream.sim.traffic import generate

#: Default size of a streaming run (the worker runs in real time).
STREAM_CAMPAIGNS = 3
STREAM_MINUTES = 3
REQUEST_TIMEOUT_S = 5.0


@dataclass(slots=True)
class StreamRun:
    """What one streaming run saw (per seed)."""

    seed: int
    campaigns: list[str]
    requests: int = 0
    agree: int = 0
    worker_allowed: int = 0
    mirror_allowed: int = 0
    worker_authorised_micros: int = 0
    mirror_authorised_micros: int = 0
    sent_unique_micros: int = 0
    duplicates_sent: int = 0
    timeouts: int = 0
    worker_recorded_micros: int | None = None
    mirror_recorded_micros: int = 0
    disagreements: list[dict[str, Any]] = field(default_factory=list)

    @property
    def agreement(self) -> float:
        return self.agree / self.requests if self.requests else 1.0

    def as_dict(self) -> dict[str, Any]:
        recorded = self.worker_recorded_micros
        return {
            "seed": self.seed,
            "campaigns": self.campaigns,
            "requests": self.requests,
            "agreement": self.agreement,
            "worker_allowed": self.worker_allowed,
            "mirror_allowed": self.mirror_allowed,
            "worker_authorised_micros": self.worker_authorised_micros,
            "mirror_authorised_micros": self.mirror_authorised_micros,
            "sent_unique_micros": self.sent_unique_micros,
            "duplicates_sent": self.duplicates_sent,
            "timeouts": self.timeouts,
            "worker_recorded_micros": recorded,
            "mirror_recorded_micros": self.mirror_recorded_micros,
            "double_counted_micros": (
                None if recorded is None else recorded - self.sent_unique_micros
            ),
            "disagreements": self.disagreements[:20],
        }


def _local_minute(ts: float, tz: str) -> int:
    local = datetime.fromtimestamp(ts, zone(tz))
    return local.hour * 60 + local.minute


async def drive(
    bootstrap: str,
    seed: int,
    scenario: Scenario,
    *,
    minutes: int = STREAM_MINUTES,
    campaigns: int = STREAM_CAMPAIGNS,
    topic_prefix: str = "",
    clock_offset_s: float = 0.0,
    web_url: str | None = None,
    run_id: str | None = None,
) -> StreamRun:
    """Drive the worker for ``minutes`` minutes of its clock with seed ``seed``, using
    the ``campaigns`` largest campaigns of the seeded day (most auctions per minute)."""
    from pacer_stream.client.kafka import PacerClient

    traffic = generate(seed, scenario)
    plan = plan_faults(traffic, scenario.faults)
    run_id = run_id or uuid.uuid4().hex[:8]
    chosen = [int(c) for c in np.argsort(-traffic.budget.sum(axis=1), kind="stable")[:campaigns]]
    ids = [f"sim-{run_id}-{seed}-{c:03d}" for c in chosen]
    run = StreamRun(seed, ids)
    engine = PacingEngine()
    mirror: dict[str, CampaignState] = {}

    def now() -> datetime:
        return datetime.now(UTC) + timedelta(seconds=clock_offset_s)

    async with PacerClient(bootstrap, topic_prefix=topic_prefix, clock=now) as client:
        for c, cid in zip(chosen, ids, strict=True):
            cfg = CampaignConfig(
                cid,
                {
                    ch: ChannelConfig(int(traffic.budget[c, h]))
                    for h, ch in enumerate(traffic.channels)
                },
                STRATEGY,
                traffic.zones[c],
            )
            await client.set_config(cfg)
            mirror[cid], _ = engine.configure(None, cfg, now())
        await _wait_configured(client, ids, traffic.channels[0], engine, mirror)
        seq = 0
        for _ in range(minutes):
            await _sleep_to_next_minute(now())
            t0 = now()
            for cid in ids:
                engine.tick(mirror[cid], t0)
            for c, cid in zip(chosen, ids, strict=True):
                m = _local_minute(t0.timestamp(), traffic.zones[c])
                for h, ch in enumerate(traffic.channels):
                    for k in range(CHUNKS):
                        amount = int(traffic.cost[c, h, m, k])
                        if amount <= 0:
                            continue
                        seq += 1
                        rid = f"{cid}/{h}/{m}/{k}/{seq}"
                        try:
                            reply = await client.can_spend(
                                cid, ch, amount, timeout_s=REQUEST_TIMEOUT_S, request_id=rid
                            )
                        except TimeoutError:
                            run.timeouts += 1
                            continue
                        decision, _ = engine.reserve(mirror[cid], ch, amount, rid, reply.decided_at)
                        run.requests += 1
                        same = decision.allowed == reply.allowed
                        run.agree += same
                        if not same:
                            run.disagreements.append(
                                {
                                    "request_id": rid,
                                    "worker": reply.code.value,
                                    "mirror": decision.code.value,
                                }
                            )
                        if decision.allowed:
                            run.mirror_allowed += 1
                            run.mirror_authorised_micros += amount
                        if not reply.allowed:
                            continue
                        run.worker_allowed += 1
                        run.worker_authorised_micros += amount
                        event = SpendEvent(
                            event_id=rid,
                            campaign_id=cid,
                            channel=ch,
                            amount_micros=amount,
                            event_time=reply.decided_at,
                            clicks=int(traffic.clicks[c, h, m, k]),
                            conversions=int(traffic.conversions[c, h, m, k]),
                            reservation_id=reply.reservation_id,
                        )
                        copies = 2 if plan.duplicate[c, h, m, k] else 1
                        for _copy in range(copies):
                            await client.publish_spend(
                                cid,
                                ch,
                                amount,
                                event_id=event.event_id,
                                event_time=event.event_time,
                                clicks=event.clicks,
                                conversions=event.conversions,
                                reservation_id=event.reservation_id,
                            )
                            engine.record_spend(mirror[cid], event, now())
                        run.duplicates_sent += copies - 1
                        run.sent_unique_micros += amount
    for st in mirror.values():
        run.mirror_recorded_micros += sum(ch.spent_total for ch in st.channels.values())
    if web_url:
        run.worker_recorded_micros = await _worker_spent(web_url, ids, run.sent_unique_micros)
    return run


async def _wait_configured(
    client: Any,
    ids: list[str],
    channel: ChannelType,
    engine: PacingEngine,
    mirror: dict[str, CampaignState],
) -> None:
    """Wait until the worker knows every campaign: a 1-micro can-spend probe is answered
    with something other than ``unknown_campaign``. The mirror makes the same
    reservation at the worker's ``decided_at`` (both expire it after the TTL), so the two
    keep identical state."""
    deadline = time.monotonic() + 30.0
    pending = list(ids)
    while pending:
        cid = pending[0]
        rid = f"{cid}/probe/{uuid.uuid4().hex}"
        reply = await client.can_spend(cid, channel, 1, timeout_s=REQUEST_TIMEOUT_S, request_id=rid)
        if reply.code.value != "unknown_campaign":
            engine.reserve(mirror[cid], channel, 1, rid, reply.decided_at)
            pending.pop(0)
            continue
        if time.monotonic() > deadline:
            raise TimeoutError(f"the worker never learned campaign {cid}")
        await asyncio.sleep(0.2)


async def _sleep_to_next_minute(now: datetime) -> None:
    ts = now.timestamp()
    await asyncio.sleep(60.0 - ts % 60.0 + 0.05)


async def _worker_spent(web_url: str, ids: list[str], expected: int) -> int | None:
    """Today's spend the worker holds for the campaigns (web view), waiting up to 30 s
    for in-flight events to be applied; None when the view is not reachable."""
    deadline = time.monotonic() + 30.0
    total: int | None = None
    while True:
        total = 0
        for cid in ids:
            body = await asyncio.to_thread(_get_json, f"{web_url}/campaigns/{cid}")
            if body is None:
                return None
            total += sum(int(ch["spent_micros"]) for ch in body.get("channels", []))
        if total >= expected or time.monotonic() > deadline:
            return total
        await asyncio.sleep(0.5)


def _get_json(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            data: dict[str, Any] = json.loads(resp.read())
            return data
    except (urllib.error.URLError, OSError, ValueError):
        return None


def run_streaming(
    bootstrap: str,
    seeds: list[int],
    scenario: Scenario,
    *,
    console: Any = None,
    minutes: int = STREAM_MINUTES,
) -> dict[str, Any]:
    """The CLI's ``--bootstrap`` mode: a small scenario per seed, one after the other.

    Only the :data:`STREAM_CAMPAIGNS` largest campaigns are driven (real time!); topic
    prefix, clock offset and the worker's web port come from the same settings the
    worker reads (``PACER_*``).
    """
    from pacer_stream.settings import get_settings

    s = get_settings()
    n = min(scenario.campaigns, STREAM_CAMPAIGNS)
    web = f"http://127.0.0.1:{s.worker_web_port}"
    started = time.perf_counter()
    runs: list[StreamRun] = []
    for seed in seeds:
        if console is not None:
            console.print(
                f"seed {seed}: the {n} largest campaigns x {scenario.channels} channels, "
                f"{minutes} real minutes through the worker at {bootstrap}"
            )
        runs.append(
            asyncio.run(
                drive(
                    bootstrap,
                    seed,
                    scenario,
                    minutes=minutes,
                    campaigns=n,
                    topic_prefix=s.topic_prefix,
                    clock_offset_s=s.clock_offset_s,
                    web_url=web,
                )
            )
        )
    return streaming_report(runs, time.perf_counter() - started)


def streaming_report(runs: list[StreamRun], seconds: float) -> dict[str, Any]:
    """``report.json`` of a streaming run: the report's shape for the one metric a short
    window can judge (double counting), plus the worker/mirror comparison."""

    def stat(values: list[float]) -> dict[str, float | None]:
        if not values:
            return {"mean": None, "worst": None}
        return {"mean": sum(values) / len(values), "worst": max(values)}

    dbl = [
        float(r.worker_recorded_micros - r.sent_unique_micros)
        for r in runs
        if r.worker_recorded_micros is not None
    ]
    agreement = [r.agreement for r in runs]
    return {
        "seeds": len(runs),
        "mode": "kafka",
        "strategies": {
            "pacer-stream": {
                "double_counted_micros": stat(dbl),
                "agreement_with_in_process": {
                    "mean": sum(agreement) / len(agreement) if agreement else None,
                    "worst": min(agreement) if agreement else None,
                },
            }
        },
        "runs": [r.as_dict() for r in runs],
        "timing": {"seconds": seconds},
    }
