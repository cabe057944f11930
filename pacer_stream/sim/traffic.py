"""The seeded, minute-level traffic of one day: what every strategy is offered.

Model (all draws from one ``numpy.random.Generator`` per seed, so the same seed gives
byte-identical traffic, and every strategy sees exactly the same opportunities):

* Campaign budgets are log-normal (median 1,000 units/day), split over the channels by a
  Dirichlet(3) draw: an operator's static split, not one tuned to traffic.
* Each channel has a cost per click (a per-channel level times a campaign factor) and a
  conversion rate chosen so the channels' costs per acquisition are 1 : 1.5 : 3 (in a
  random order per campaign, jittered 10%).
* Clicks arrive as a Poisson process per minute with a diurnal curve in the campaign's
  local time (evening peak / night trough = 4 : 1), shifted per channel, plus random
  bursts (2-5x for 10-40 minutes, converting at 0.7x: burst traffic is lower quality).
  Conversion quality follows a per campaign/channel pattern by local hour of day (a
  peak hour, +-``HOUR_AMPLITUDE``) and by weekday (weekend level), which a learner can
  find in the history and which drifts slowly (the peak moves ``DRIFT_H_PER_DAY`` hours a
  day: about an hour over a week), times hourly noise (log-normal, sigma
  ``HOUR_NOISE``). Campaign parameters are the same every day of a seed; the day's
  traffic, bursts and noise are drawn per day.
* A DST day has 23 (or 25) local hours: minutes past the local day's end carry no
  auctions (every strategy sees the same, shorter day).
* Over the day the traffic offers 1.5-3x each channel's budget (uniform per channel), so
  pacing has real choices to make.
* A minute's auctions come in ``CHUNKS`` batches (the unit a bid engine asks for and a
  platform reports). Each batch has its clicks, cost (clicks x CPC, +-15% noise),
  expected conversions and realised conversions (Poisson), drawn once and shared by
  every strategy (common random numbers: differences between strategies are theirs,
  not the dice's).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np

from pacer_stream.core.calendar import zone
from pacer_stream.core.types import ChannelType
from pacer_stream.sim.scenario import CHANNELS, CHUNKS, MINUTES, ZONES, Scenario

MICROS = 1_000_000

#: Relative traffic by local hour of day (value at the middle of the hour): a night
#: trough at 04:00, a working-day plateau and an evening peak at 20:00; peak/trough = 4.
DIURNAL: tuple[float, ...] = (
    0.55, 0.42, 0.33, 0.28, 0.26, 0.29, 0.40, 0.58, 0.76, 0.88, 0.94, 0.98,
    1.00, 0.97, 0.93, 0.92, 0.94, 0.97, 1.00, 1.02, 1.04, 0.98, 0.85, 0.70,
)  # fmt: skip

#: Phase shift of each channel's curve in hours (search leads, social/video lag).
PHASE_SHIFT_H: dict[ChannelType, float] = {
    ChannelType.GOOGLE_ADS: 0.0,
    ChannelType.FACEBOOK_ADS: 1.0,
    ChannelType.TIKTOK_ADS: 2.0,
    ChannelType.DISPLAY: -1.0,
    ChannelType.NATIVE: 0.5,
    ChannelType.VIDEO: 1.5,
    ChannelType.SEARCH: -0.5,
    ChannelType.SHOPPING: -1.5,
}

#: Typical cost per click by channel (currency units).
BASE_CPC: dict[ChannelType, float] = {
    ChannelType.GOOGLE_ADS: 1.2,
    ChannelType.FACEBOOK_ADS: 0.8,
    ChannelType.TIKTOK_ADS: 0.5,
    ChannelType.DISPLAY: 0.4,
    ChannelType.NATIVE: 0.6,
    ChannelType.VIDEO: 0.9,
    ChannelType.SEARCH: 1.5,
    ChannelType.SHOPPING: 1.0,
}

#: Cost-per-acquisition ratios of a campaign's channels (docs/targets.md: about 1 : 1.5 : 3).
CPA_RATIOS: tuple[float, ...] = (1.0, 1.5, 3.0)

BURST_QUALITY = 0.7
#: Learnable conversion pattern: log-amplitude of the hour-of-day cosine (peak/trough
#: = e^(2 x 0.35) = 2), weekend level range, drift of the peak hour per day, noise.
HOUR_AMPLITUDE = 0.35
WEEKEND_LEVEL = (0.7, 1.3)
DRIFT_H_PER_DAY = 0.15
HOUR_NOISE = 0.08


@dataclass(frozen=True, slots=True)
class Traffic:
    """One seeded day. Arrays are indexed [campaign, channel, minute, chunk]."""

    seed: int
    scenario: Scenario
    #: Day index within the seed's run (0 = first day) and its local date.
    day: int
    channels: tuple[ChannelType, ...]
    zones: tuple[str, ...]
    #: Epoch seconds of each campaign's local midnight.
    day_start: np.ndarray
    #: Minutes in each campaign's local day (1440, or 1380/1500 on a DST day).
    day_minutes: np.ndarray
    #: True conversion-rate multiplier by local hour (pattern x weekday, no noise) [C, H, 24].
    true_hour_quality: np.ndarray
    #: Channel daily budgets, micros [C, H].
    budget: np.ndarray
    cpc: np.ndarray
    cvr: np.ndarray
    cpa_ratio: np.ndarray
    offered_ratio: np.ndarray
    #: Expected clicks per minute, bursts included [C, H, M].
    clicks_rate: np.ndarray
    #: Conversion-rate multiplier per minute (hourly quality x burst quality) [C, H, M].
    quality: np.ndarray
    #: Cumulative share of the day's *expected* traffic without bursts [C, H, M + 1]:
    #: what a traffic forecast built from history knows (traffic-gate, throttle plans).
    forecast_cum: np.ndarray
    cost: np.ndarray
    clicks: np.ndarray
    conversions: np.ndarray
    expected_conversions: np.ndarray
    #: One uniform draw per batch, shared by randomised controllers (throttle).
    uniform: np.ndarray

    @property
    def n_campaigns(self) -> int:
        return int(self.budget.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.budget.shape[1])

    def campaign_id(self, c: int) -> str:
        return f"sim-{self.seed}-{c:04d}"


def rngs(
    seed: int, day: int = 0
) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    """Independent streams for traffic, faults and extras: switching faults off never
    changes the traffic of a seed. Day 0 uses the seed alone (campaign parameters come
    from its traffic stream); later days get their own streams."""
    ss = np.random.SeedSequence(seed if day == 0 else [seed, day])
    a, b, c = ss.spawn(3)
    return np.random.default_rng(a), np.random.default_rng(b), np.random.default_rng(c)


def _local_midnight(tz: str, d: date) -> float:
    return datetime(d.year, d.month, d.day, tzinfo=zone(tz)).timestamp()


def minutes_to_wall_clock(traffic: Traffic, hour: int) -> np.ndarray:
    """Per campaign, the minutes from its local midnight to ``hour``:00 on its local
    wall clock that day (``hour`` x 60, bar the hour a DST switch adds or removes)."""
    d = traffic.scenario.date_of(traffic.day)
    return np.array(
        [
            (datetime(d.year, d.month, d.day, hour, tzinfo=zone(z)).timestamp() - start) / 60.0
            for z, start in zip(traffic.zones, traffic.day_start, strict=True)
        ]
    )


def diurnal_curve(shift_h: np.ndarray) -> np.ndarray:
    """Per-minute relative traffic [len(shift_h), M] for the given hour shifts, by
    circular linear interpolation of :data:`DIURNAL` (values at hour midpoints)."""
    hours = np.asarray(DIURNAL + DIURNAL[:1])
    minute_h = (np.arange(MINUTES) + 0.5) / 60.0
    x = (minute_h[None, :] - shift_h[:, None] - 0.5) % 24.0
    i = np.floor(x).astype(int)
    frac = x - i
    return hours[i] * (1 - frac) + hours[i + 1] * frac


def generate(seed: int, scenario: Scenario, day: int = 0) -> Traffic:
    """Draw day ``day`` of ``seed`` (deterministic)."""
    rng, _, _ = rngs(seed)
    n_c, n_h, n_m, n_k = scenario.campaigns, scenario.channels, MINUTES, CHUNKS
    channels = CHANNELS[:n_h]
    zones = tuple(ZONES[i] for i in rng.integers(0, len(ZONES), n_c))
    today = scenario.date_of(day)
    day_start = np.array([_local_midnight(z, today) for z in zones])
    day_end = np.array([_local_midnight(z, today + timedelta(days=1)) for z in zones])
    day_minutes = np.round((day_end - day_start) / 60.0).astype(np.int64)

    total = np.clip(rng.lognormal(np.log(1000.0), 0.8, n_c), 50.0, 50_000.0)
    shares = rng.dirichlet([3.0] * n_h, n_c) if n_h > 1 else np.ones((n_c, 1))
    budget = np.maximum(np.round(total[:, None] * shares * MICROS), MICROS).astype(np.int64)

    base_cpc = np.array([BASE_CPC[ch] for ch in channels])
    cpc = (
        base_cpc[None, :] * rng.lognormal(0.0, 0.3, (n_c, 1)) * rng.lognormal(0.0, 0.1, (n_c, n_h))
    )
    ratios = np.array([CPA_RATIOS[i % 3] * (1.0 + 0.25 * (i // 3)) for i in range(n_h)])
    cpa_ratio = np.stack([rng.permutation(ratios) for _ in range(n_c)])
    cpa_ratio = cpa_ratio * rng.lognormal(0.0, 0.1, (n_c, n_h))
    base_cpa = rng.lognormal(np.log(30.0), 0.4, (n_c, 1))
    cvr = np.minimum(cpc / (base_cpa * cpa_ratio), 0.5)
    offered_ratio = rng.uniform(1.5, 3.0, (n_c, n_h))

    shift = np.array([PHASE_SHIFT_H[ch] for ch in channels])[None, :] + rng.uniform(
        -0.5, 0.5, (n_c, n_h)
    )
    shape = diurnal_curve(shift.reshape(-1)).reshape(n_c, n_h, n_m)
    shape /= shape.mean(axis=2, keepdims=True)
    forecast_cum = np.concatenate([np.zeros((n_c, n_h, 1)), np.cumsum(shape, axis=2) / n_m], axis=2)
    peak_h = rng.uniform(0.0, 24.0, (n_c, n_h))
    weekend = rng.uniform(*WEEKEND_LEVEL, (n_c, n_h))
    if day:
        rng, _, _ = rngs(seed, day)
    hod = np.arange(24) + 0.5
    peak = peak_h + DRIFT_H_PER_DAY * day
    pattern = np.exp(
        HOUR_AMPLITUDE * np.cos(2 * np.pi * (hod[None, None, :] - peak[..., None]) / 24)
    )
    level = weekend if today.weekday() >= 5 else np.ones((n_c, n_h))
    true_q = pattern * level[..., None]

    burst = np.ones((n_c, n_h, n_m))
    burst_q = np.ones((n_c, n_h, n_m))
    n_bursts = rng.poisson(2.0, (n_c, n_h))
    for c in range(n_c):
        for h in range(n_h):
            for _ in range(int(n_bursts[c, h])):
                start = int(rng.integers(0, n_m))
                end = min(n_m, start + int(rng.integers(10, 41)))
                burst[c, h, start:end] *= rng.uniform(2.0, 5.0)
                burst_q[c, h, start:end] = BURST_QUALITY
    hourly_q = true_q * rng.lognormal(0.0, HOUR_NOISE, (n_c, n_h, 24))
    quality = np.repeat(hourly_q, 60, axis=2) * burst_q

    clicks_day = offered_ratio * (budget / MICROS) / cpc
    clicks_rate = clicks_day[:, :, None] * shape / n_m * burst

    past_end = np.arange(n_m)[None, :] >= day_minutes[:, None]
    clicks_rate = np.where(past_end[:, None, :], 0.0, clicks_rate)
    lam = np.repeat(clicks_rate[..., None] / n_k, n_k, axis=3)
    clicks = rng.poisson(lam).astype(np.int32)
    noise = rng.lognormal(0.0, 0.15, clicks.shape)
    cost = np.round(clicks * cpc[:, :, None, None] * noise * MICROS).astype(np.int64)
    expected = (clicks * (cvr[:, :, None] * quality)[..., None]).astype(np.float64)
    conversions = rng.poisson(expected).astype(np.int32)
    uniform = rng.random(clicks.shape, dtype=np.float32)
    return Traffic(
        seed=seed,
        scenario=scenario,
        day=day,
        channels=channels,
        zones=zones,
        day_start=day_start,
        day_minutes=day_minutes,
        true_hour_quality=true_q,
        budget=budget,
        cpc=cpc,
        cvr=cvr,
        cpa_ratio=cpa_ratio,
        offered_ratio=offered_ratio,
        clicks_rate=clicks_rate,
        quality=quality,
        forecast_cum=forecast_cum,
        cost=cost,
        clicks=clicks,
        conversions=conversions,
        expected_conversions=expected.astype(np.float32),
        uniform=uniform,
    )
