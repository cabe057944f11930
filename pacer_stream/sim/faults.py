"""What goes wrong during the day, drawn from the seed's own fault stream.

* **Runaway bidder**: on one channel of ``runaway_share`` of the campaigns, for 15
  minutes, the bid engine sends 20x its usual requests at 3x the usual cost per click
  and does not wait for authorisation: its spend events arrive regardless. The only
  thing that stops it is the kill switch it follows (pacer-stream's breaker state, or a
  baseline's own block). When the incident ends the bidder is fixed and asks again.
* **Duplicates**: ``duplicate_share`` of all spend events are delivered a second time,
  1-120 s after the first copy, with the same event id (producer retry).
* **Stall**: at 10:00 UTC the controller stops for 2 minutes: nothing is decided
  (a bid engine asking a stalled service times out and does not bid), events queue up
  and are applied when it comes back.
* **Late reporting**: ``late_share`` of campaign/channels sit on a platform that reports
  every spend event 5 minutes late.

Each fault is placed so its effect can be attributed: a runaway never starts on a
late-reporting channel or within 20 minutes of the stall. Fault draws use their own
random stream, so switching a fault off never changes the traffic.

* **Runaway on a late platform**: as many incidents again (at least one when a late
  channel exists), each on a late-reporting channel of a campaign no other runaway
  touches. The engine sees such a bidder only when its first event is reported, 5
  minutes late, so these incidents are measured apart (``runaway_late_*``: detection
  from the first unauthorised spend, against the reporting delay + 1 minute). They are
  drawn from a stream of their own: the prompt incidents, duplicates and late flags of
  a seed are the same with or without them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np

from pacer_stream.sim.scenario import CHUNKS, MINUTES, Faults
from pacer_stream.sim.traffic import MICROS, Traffic, rngs

#: Runaway incidents start between 09:00 and 18:00 local time.
RUNAWAY_WINDOW = (9 * 60, 18 * 60)
#: Keep a runaway at least this far (minutes) from the stall.
STALL_GAP = 20
DUPLICATE_DELAY_S = (1.0, 120.0)


@dataclass(frozen=True, slots=True)
class Runaway:
    """One runaway incident and the events its bidder would send if never stopped."""

    campaign: int
    channel: int
    start_minute: int
    minutes: int
    #: Seconds from the campaign's local midnight, ascending.
    times: np.ndarray
    cost: np.ndarray
    clicks: np.ndarray
    conversions: np.ndarray
    #: Whether each event is also delivered a second time, and how much later.
    duplicate: np.ndarray
    duplicate_delay: np.ndarray
    #: On a late-reporting channel (its events reach the engine ``late_minutes`` late).
    late: bool = False

    @property
    def end_minute(self) -> int:
        return self.start_minute + self.minutes


@dataclass(frozen=True, slots=True)
class FaultPlan:
    faults: Faults
    runaways: tuple[Runaway, ...]
    #: [C, H, M, K]: the batch's spend event is delivered twice.
    duplicate: np.ndarray
    #: [C, H, M, K]: seconds between the first and the second copy.
    duplicate_delay: np.ndarray
    #: [C, H]: this channel's platform reports late.
    late: np.ndarray
    #: [C]: stall interval in seconds from local midnight (start == end: no stall).
    stall_start: np.ndarray
    stall_end: np.ndarray

    def late_runaway_campaigns(self) -> frozenset[int]:
        """Campaigns with a runaway on a late-reporting channel (judged apart)."""
        return frozenset(r.campaign for r in self.runaways if r.late)

    def runaway_at(self, campaign: int) -> list[Runaway]:
        return [r for r in self.runaways if r.campaign == campaign]

    def delay_s(self, campaign: int, channel: int) -> float:
        return 60.0 * self.faults.late_minutes if self.late[campaign, channel] else 0.0

    def stall_minutes(self, campaign: int) -> range:
        """Decision minutes that fall inside the stall (nothing is decided then)."""
        s, e = float(self.stall_start[campaign]), float(self.stall_end[campaign])
        if e <= s:
            return range(0)
        first = int(np.ceil(s / 60.0))
        last = int(np.ceil(e / 60.0))  # first minute after the stall
        return range(first, last)

    def deliver_at(self, campaign: int, t: float) -> float:
        """When an event sent at ``t`` (s from local midnight) is applied: at the end of
        the stall if it would arrive during it."""
        s, e = float(self.stall_start[campaign]), float(self.stall_end[campaign])
        if s <= t < e:
            return e
        return t


def plan_faults(traffic: Traffic, faults: Faults) -> FaultPlan:
    """Draw the day's faults for ``traffic`` (deterministic per seed)."""
    _, rng, _ = rngs(traffic.seed, traffic.day)
    n_c, n_h = traffic.n_campaigns, traffic.n_channels
    duplicate = rng.random((n_c, n_h, MINUTES, CHUNKS)) < faults.duplicate_share
    duplicate_delay = rng.uniform(*DUPLICATE_DELAY_S, (n_c, n_h, MINUTES, CHUNKS))
    late = rng.random((n_c, n_h)) < faults.late_share
    stall_at = (
        _utc_stall(traffic.scenario.date_of(traffic.day), faults.stall_utc_hour) - traffic.day_start
    )
    stall_start = stall_at
    stall_end = stall_at + 60.0 * faults.stall_minutes
    runaways = _runaways(traffic, faults, rng, late, stall_start)
    if faults.late:
        runaways += _late_runaways(traffic, faults, late, stall_start, runaways)
    if not faults.duplicates:
        duplicate = np.zeros_like(duplicate)
    if not faults.late:
        late = np.zeros_like(late)
    if not faults.stall:
        stall_end = stall_start.copy()
    return FaultPlan(
        faults=faults,
        runaways=tuple(runaways) if faults.runaway else (),
        duplicate=duplicate,
        duplicate_delay=duplicate_delay,
        late=late,
        stall_start=stall_start,
        stall_end=stall_end,
    )


def _utc_stall(d: date, hour: int) -> float:
    return datetime(d.year, d.month, d.day, hour, tzinfo=UTC).timestamp()


def _runaways(
    traffic: Traffic,
    faults: Faults,
    rng: np.random.Generator,
    late: np.ndarray,
    stall_start: np.ndarray,
) -> list[Runaway]:
    """Incidents are drawn whether or not the fault is on (keeps later draws stable)."""
    n_c = traffic.n_campaigns
    count = max(1, round(n_c * faults.runaway_share))
    chosen = rng.choice(n_c, size=min(count, n_c), replace=False)
    out: list[Runaway] = []
    for c in sorted(int(x) for x in chosen):
        ok = [h for h in range(traffic.n_channels) if not late[c, h]]
        h = int(rng.choice(ok)) if ok else 0
        stall_m = stall_start[c] / 60.0
        for _ in range(100):
            start = int(rng.integers(RUNAWAY_WINDOW[0], RUNAWAY_WINDOW[1] - faults.runaway_minutes))
            if start + faults.runaway_minutes + STALL_GAP <= stall_m or start >= stall_m + (
                faults.stall_minutes + STALL_GAP
            ):
                break
        out.append(_incident(traffic, faults, rng, c, h, start))
    return out


def _late_runaways(
    traffic: Traffic,
    faults: Faults,
    late: np.ndarray,
    stall_start: np.ndarray,
    prompt: list[Runaway],
) -> list[Runaway]:
    """Runaways on late-reporting channels, from their own random stream (the 4th child
    of the day's seed sequence; ``traffic.rngs`` uses the first three)."""
    ss = np.random.SeedSequence(traffic.seed if traffic.day == 0 else [traffic.seed, traffic.day])
    rng = np.random.default_rng(ss.spawn(4)[3])
    taken = {r.campaign for r in prompt}
    candidates = [c for c in range(traffic.n_campaigns) if c not in taken and late[c].any()]
    if not candidates:
        return []
    count = min(len(candidates), max(1, round(traffic.n_campaigns * faults.runaway_share)))
    chosen = rng.choice(len(candidates), size=count, replace=False)
    out: list[Runaway] = []
    for c in sorted(candidates[int(i)] for i in chosen):
        h = int(rng.choice([h for h in range(traffic.n_channels) if late[c, h]]))
        start = _start_minute(faults, rng, stall_start[c] / 60.0)
        out.append(_incident(traffic, faults, rng, c, h, start, late=True))
    return out


def _start_minute(faults: Faults, rng: np.random.Generator, stall_m: float) -> int:
    start = RUNAWAY_WINDOW[0]
    for _ in range(100):
        start = int(rng.integers(RUNAWAY_WINDOW[0], RUNAWAY_WINDOW[1] - faults.runaway_minutes))
        if start + faults.runaway_minutes + STALL_GAP <= stall_m or start >= stall_m + (
            faults.stall_minutes + STALL_GAP
        ):
            break
    return start


def _incident(
    traffic: Traffic,
    faults: Faults,
    rng: np.random.Generator,
    c: int,
    h: int,
    start: int,
    *,
    late: bool = False,
) -> Runaway:
    """The runaway's events: ``runaway_rate`` x the usual number of batches per minute,
    each batch as large as a usual one, at ``runaway_cost`` x the cost per click."""
    per_minute = round(CHUNKS * faults.runaway_rate)
    minutes = faults.runaway_minutes
    n = per_minute * minutes
    idx = np.arange(n)
    minute = start + idx // per_minute
    times = minute * 60.0 + ((idx % per_minute) + 0.5) * 60.0 / per_minute
    lam = traffic.clicks_rate[c, h, minute] / CHUNKS
    clicks = rng.poisson(lam).astype(np.int64)
    noise = rng.lognormal(0.0, 0.15, n)
    cost = np.round(clicks * traffic.cpc[c, h] * faults.runaway_cost * noise * MICROS).astype(
        np.int64
    )
    conv = rng.poisson(clicks * traffic.cvr[c, h] * traffic.quality[c, h, minute]).astype(np.int64)
    dup = rng.random(n) < faults.duplicate_share
    dup_delay = rng.uniform(*DUPLICATE_DELAY_S, n)
    if not faults.duplicates:
        dup[:] = False
    return Runaway(c, h, start, minutes, times, cost, clicks, conv, dup, dup_delay, late)
