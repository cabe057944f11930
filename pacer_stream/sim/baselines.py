"""The comparison: simple controllers on the same traffic and faults, and the oracle.

These are *not* pacer-stream (which only ever runs through the core engine, see
``sim.pacer``); they are the yardsticks of docs/targets.md, each a few lines, vectorised
over every campaign/channel at once so a day costs a fraction of a second.

What every gate shares with pacer-stream's bid engine: it sees the minute's auction
batches in arrival order and takes or skips each; it learns what was spent from the
same spend-event stream (same latency, duplicates, late platforms, stall); amounts it
authorised count as in flight until reported or 60 s old (the reservation TTL); it does
nothing during the stall. What it does not have: idempotency (it sums every event it
receives, as the original Budget Pacer did) and reallocation (the operator's static
split). Definitions (``b`` = channel budget, ``t`` = minute of the local day):

* ``asap``: take everything while spent + in flight + batch <= b.
* ``even-gate``: cumulative cap b x (t + 1) / 1440.
* ``traffic-gate``: cumulative cap b x F(t + 1), F = the forecast share of the day's
  traffic by then (the traffic model's expected curve without bursts: what history
  would teach).
* ``original-rules``: the original Budget Pacer: b / 24 per local hour, available from
  the start of the hour, 50% of it in the first 4 hours (held back budget is lost),
  at most 15% of b per hour, no rollover, and a circuit breaker that opens when spend
  reaches 90% of b and blocks the channel for the rest of the day.
* ``throttle``: LinkedIn-style probabilistic throttling: each batch passes with
  probability p; every minute p is multiplied by 0.9 if spend is ahead of the plan
  b x F(t) and by 1.1 (at most 1) otherwise; p starts at the forecast ratio of budget
  to offered spend; hard daily cap b.
* ``oracle``: knows the whole day's traffic (fault-free): per campaign, takes batches in
  order of expected conversions per unit of cost until the campaign's total budget is
  used, across channels and hours. It is an upper bound on what any online controller
  can expect, not a controller.

A runaway bidder ignores every gate; of these, only ``original-rules`` has a kill switch
(its 90% breaker). The others let it run for the whole incident.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pacer_stream.sim.faults import FaultPlan
from pacer_stream.sim.scenario import CHUNKS, MINUTES
from pacer_stream.sim.trace import RunawayOutcome, Trace, empty_trace
from pacer_stream.sim.traffic import Traffic

GATES = ("asap", "even-gate", "traffic-gate", "original-rules", "throttle")
BATCH_S = 60.0 / CHUNKS
TTL_S = 60.0
#: Original Budget Pacer rules.
ORIGINAL_FRONTLOAD_HOURS = 4
ORIGINAL_FRONTLOAD_FACTOR = 0.5
ORIGINAL_MAX_HOUR = 0.15
ORIGINAL_BREAKER = 0.90
#: Throttle controller.
THROTTLE_STEP = 0.10
THROTTLE_FLOOR = 1e-3
#: Visible-minute slack beyond the day for late and duplicated events.
_TAIL = 20


def original_hourly(budget: np.ndarray) -> np.ndarray:
    """Hourly allocation of the original rules [N, 24] (what is not allowed is lost)."""
    per_hour = budget[:, None] / 24.0 * np.ones((1, 24))
    per_hour[:, :ORIGINAL_FRONTLOAD_HOURS] *= ORIGINAL_FRONTLOAD_FACTOR
    return np.minimum(per_hour, budget[:, None] * ORIGINAL_MAX_HOUR)


def run_gate(name: str, traffic: Traffic, plan: FaultPlan) -> Trace:
    """Run one gate baseline for every campaign/channel of the day."""
    if name not in GATES:
        raise ValueError(f"unknown baseline {name!r}")
    n_c, n_h = traffic.n_campaigns, traffic.n_channels
    n = n_c * n_h
    b = traffic.budget.reshape(n).astype(np.float64)
    cost = np.ascontiguousarray(traffic.cost.reshape(n, MINUTES, CHUNKS).transpose(1, 2, 0))
    uniform = np.ascontiguousarray(traffic.uniform.reshape(n, MINUTES, CHUNKS).transpose(1, 2, 0))
    fc = traffic.forecast_cum.reshape(n, MINUTES + 1)
    latency = traffic.scenario.latency_s
    delay = np.where(plan.late.reshape(n), 60.0 * plan.faults.late_minutes, 0.0)
    camp = np.repeat(np.arange(n_c), n_h)
    stall_s = plan.stall_start[camp]
    stall_e = plan.stall_end[camp]
    dup = plan.duplicate.reshape(n, MINUTES, CHUNKS).transpose(1, 2, 0)
    dup_delay = plan.duplicate_delay.reshape(n, MINUTES, CHUNKS).transpose(1, 2, 0)
    hourly = original_hourly(b)
    idx = np.arange(n)

    def visible(sent: np.ndarray) -> np.ndarray:
        at = np.where((sent >= stall_s) & (sent < stall_e), stall_e, sent)
        return np.ceil(at / 60.0).astype(np.int64)

    arrivals = np.zeros((MINUTES + _TAIL, n))
    same_hour = np.zeros((MINUTES + _TAIL, n))
    counted = np.zeros(n)
    hour_spent = np.zeros(n)
    true_spent = np.zeros(n)
    broken = np.zeros(n, dtype=bool)
    # The throttle starts at the forecast ratio of budget to offered spend.
    p = np.minimum(1.0, 1.0 / traffic.offered_ratio.reshape(n))
    taken = np.zeros((MINUTES, CHUNKS, n), dtype=bool)
    able = np.ones((MINUTES, n), dtype=bool)
    spend_min = np.zeros((MINUTES, n))
    stall_min = np.zeros((MINUTES, n), dtype=bool)
    for c in range(n_c):
        for m in plan.stall_minutes(c):
            stall_min[m, c * n_h : (c + 1) * n_h] = True
    runaway_mask = np.zeros((MINUTES, n), dtype=bool)
    for r in plan.runaways:
        runaway_mask[r.start_minute : r.end_minute, r.campaign * n_h + r.channel] = True
    by_minute: dict[int, list] = {}  # type: ignore[type-arg]
    for r in plan.runaways:
        for m in range(r.start_minute, r.end_minute):
            by_minute.setdefault(m, []).append(r)
    outcomes: dict[int, RunawayOutcome] = {}
    runaway_spend = np.zeros((MINUTES, n))
    runaway_conv = np.zeros(n)
    recorded = 0.0

    for m in range(MINUTES):
        counted += arrivals[m]
        if m % 60 == 0:
            hour_spent[:] = 0.0
        hour_spent += same_hour[m]
        if name == "original-rules":
            broken |= counted >= ORIGINAL_BREAKER * b
        able[m] = (b - true_spent > 0) & ~broken
        active = ~stall_min[m] & ~runaway_mask[m] & ~broken
        if name == "even-gate":
            limit = b * (m + 1) / MINUTES
        elif name == "traffic-gate":
            limit = b * fc[:, m + 1]
        else:
            limit = b
        now_taken = np.zeros(n)
        cap_h = hourly[:, m // 60]
        for k in range(CHUNKS):
            x = cost[m, k]
            ok = active & (x > 0) & (counted + now_taken + x <= limit)
            if name == "original-rules":
                ok &= hour_spent + now_taken + x <= cap_h
            elif name == "throttle":
                ok &= uniform[m, k] < p
            taken[m, k] = ok
            amt = np.where(ok, x, 0).astype(np.float64)
            now_taken += amt
            sent = 60.0 * m + (k + 0.5) * BATCH_S + latency + delay
            _deliver(arrivals, same_hour, visible(sent), amt, idx, m)
            dmask = ok & dup[m, k]
            if dmask.any():
                _deliver(arrivals, same_hour, visible(sent + dup_delay[m, k]), amt * dmask, idx, m)
                recorded += float((amt * dmask).sum())
        spend_min[m] = now_taken
        true_spent += now_taken
        if name == "throttle":
            ahead = counted + now_taken > b * fc[:, m + 1]
            p = np.where(ahead, p * (1 - THROTTLE_STEP), np.minimum(1.0, p * (1 + THROTTLE_STEP)))
            p = np.maximum(p, THROTTLE_FLOOR)
        for r in by_minute.get(m, ()):
            j = r.campaign * n_h + r.channel
            out = outcomes.get(j)
            if out is None:
                out = RunawayOutcome(
                    r.campaign,
                    r.channel,
                    r.start_minute,
                    float(r.minutes),
                    0,
                    False,
                    r.late,
                    latency + plan.delay_s(r.campaign, r.channel),
                )
                outcomes[j] = out
            seen = float(counted[j])
            pending: list[tuple[float, float]] = []
            per_minute = len(r.times) // r.minutes
            lo = (m - r.start_minute) * per_minute
            for i in range(lo, lo + per_minute):
                t = float(r.times[i])
                still = []
                for vis_t, amount in pending:
                    if vis_t <= t:
                        seen += amount
                    else:
                        still.append((vis_t, amount))
                pending = still
                if name == "original-rules" and seen >= ORIGINAL_BREAKER * b[j]:
                    broken[j] = True
                if broken[j]:
                    out.stop(t)
                    continue
                amount = float(r.cost[i])
                if amount <= 0:
                    continue
                out.spent(t, int(amount))
                runaway_spend[m, j] += amount
                runaway_conv[j] += float(r.conversions[i])
                true_spent[j] += amount
                sent_t = t + out.report_delay_s
                pending.append((sent_t, amount))
                copies = [sent_t]
                if r.duplicate[i]:
                    copies.append(sent_t + float(r.duplicate_delay[i]))
                    pending.append((sent_t + float(r.duplicate_delay[i]), amount))
                    recorded += amount
                for s in copies:
                    v = int(np.ceil(s / 60.0))
                    arrivals[v, j] += amount
                    if v // 60 == m // 60:
                        same_hour[v, j] += amount

    trace = empty_trace(name, n_c, n_h, MINUTES, traffic.budget)
    spend_all = spend_min + runaway_spend
    trace.spend = np.round(spend_all.T.reshape(n_c, n_h, MINUTES)).astype(np.int64)
    conv = traffic.conversions.reshape(n, MINUTES, CHUNKS).transpose(1, 2, 0)
    trace.conversions = (
        ((conv * taken).sum(axis=(0, 1)) + runaway_conv).reshape(n_c, n_h).astype(np.int64)
    )
    trace.able = able.T.reshape(n_c, n_h, MINUTES)
    trace.plan = _gate_plan(name, traffic, b, fc, hourly).reshape(n_c, n_h, MINUTES + 1).sum(axis=1)
    unique = float(spend_all.sum())
    trace.unique_micros = round(unique)
    trace.recorded_micros = round(unique + recorded)
    x_taken = np.where(taken, cost, 0).max(axis=(0, 1))
    trace.max_event = x_taken.reshape(n_c, n_h).astype(np.int64)
    for r in plan.runaways:
        j = r.campaign * n_h + r.channel
        trace.max_event[r.campaign, r.channel] = max(
            int(trace.max_event[r.campaign, r.channel]), int(r.cost.max(initial=0))
        )
    trace.runaways = list(outcomes.values())
    return trace


def _deliver(
    arrivals: np.ndarray,
    same_hour: np.ndarray,
    vis: np.ndarray,
    amount: np.ndarray,
    idx: np.ndarray,
    m: int,
) -> None:
    """Book each channel's event at the minute it becomes visible (indices are distinct
    per call, so fancy-index add is exact)."""
    vis = np.minimum(vis, arrivals.shape[0] - 1)
    arrivals[vis, idx] += amount
    same = (vis // 60) == (m // 60)
    same_hour[vis, idx] += amount * same


def _gate_plan(
    name: str, traffic: Traffic, b: np.ndarray, fc: np.ndarray, hourly: np.ndarray
) -> np.ndarray:
    """The cumulative plan each gate follows [N, M + 1] (tracking error reference);
    ``asap`` has none and is measured against the even line."""
    t = np.arange(MINUTES + 1) / MINUTES
    if name in ("traffic-gate", "throttle"):
        return b[:, None] * fc
    if name == "original-rules":
        per_min = np.repeat(hourly / 60.0, 60, axis=1)
        return np.concatenate([np.zeros((len(b), 1)), np.cumsum(per_min, axis=1)], axis=1)
    return b[:, None] * t[None, :]


def buy_best(cost: np.ndarray, value: np.ndarray, budget: int, channels: int) -> np.ndarray:
    """The batches an oracle buys: in order of ``value`` (highest first, ties in arrival
    order; read only where a batch costs something) while ``budget`` lasts, as a
    [channels, MINUTES, CHUNKS] mask over the flattened ``cost``."""
    live = np.flatnonzero(cost > 0)
    order = live[np.argsort(-value[live], kind="stable")]
    take = order[np.cumsum(cost[order]) <= budget]
    chosen = np.zeros(cost.shape, dtype=bool)
    chosen[take] = True
    return chosen.reshape(channels, MINUTES, CHUNKS)


#: What an oracle ranks a campaign's batches by: (traffic, campaign, channels) -> a value
#: per batch of those channels, flattened as ``traffic.cost[campaign, channels]`` is.
BatchValue = Callable[[Traffic, int, list[int]], np.ndarray]


def expected_value(traffic: Traffic, c: int, channels: list[int]) -> np.ndarray:
    """Each batch's own expected conversions per unit of its cost (0 where it costs
    nothing): what the free oracle knows of every batch with hindsight."""
    cost = traffic.cost[c, channels].reshape(-1)
    exp = traffic.expected_conversions[c, channels].reshape(-1)
    return np.divide(exp, cost, out=np.zeros(cost.shape), where=cost > 0)


def run_oracle(
    traffic: Traffic,
    *,
    per_channel: bool = False,
    budgets: np.ndarray | None = None,
    value: BatchValue = expected_value,
) -> Trace:
    """Best expected conversions per unit of cost under the budget, with hindsight of
    the day's traffic. ``per_channel`` keeps the operator's static split (used for the
    oracle's own reallocation gain), or with ``budgets`` ([campaign, channel] micros)
    another split: what a pacer's own channel spend could have bought. ``value``
    ranks the batches by something else than their own expected value (what a learner
    could know of them, ``scripts/oracle_gap.py``)."""
    n_c, n_h = traffic.n_campaigns, traffic.n_channels
    limits = traffic.budget if budgets is None else budgets
    trace = empty_trace("oracle", n_c, n_h, MINUTES, traffic.budget)
    for c in range(n_c):
        groups = [(h,) for h in range(n_h)] if per_channel else [tuple(range(n_h))]
        for hs in groups:
            sel = list(hs)
            cost = traffic.cost[c, sel].reshape(-1)
            real = traffic.conversions[c, sel].reshape(-1)
            budget = int(limits[c, sel].sum())
            shaped = buy_best(cost, value(traffic, c, sel), budget, len(sel))
            c_cost = cost.reshape(len(sel), MINUTES, CHUNKS)
            trace.spend[c, sel] = (c_cost * shaped).sum(axis=2)
            trace.conversions[c, sel] = (real.reshape(len(sel), MINUTES, CHUNKS) * shaped).sum(
                axis=(1, 2)
            )
            trace.max_event[c, sel] = np.where(shaped, c_cost, 0).max(axis=(1, 2))
        trace.plan[c] = traffic.budget[c].sum() * np.arange(MINUTES + 1) / MINUTES
    # The oracle moves budget freely: its channel budgets are what it spent there, with
    # any unspent remainder left on the first channel (campaign totals unchanged).
    spent = trace.spend.sum(axis=2)
    trace.budget = spent.copy()
    trace.budget[:, 0] += traffic.budget.sum(axis=1) - spent.sum(axis=1)
    if per_channel:
        trace.budget = traffic.budget.copy()
    cum = np.cumsum(trace.spend, axis=2)
    trace.able = (trace.budget[:, :, None] - cum) > 0
    trace.able = np.concatenate([np.ones((n_c, n_h, 1), bool), trace.able[:, :, :-1]], axis=2)
    total = int(trace.spend.sum())
    trace.unique_micros = trace.recorded_micros = total
    return trace
