"""A market with known hourly and weekly rates, for the forecasting unit tests.

Traffic, conversion rate and cost per click follow fixed curves by local hour and
weekday (America/New_York, across the 2026-03-08 DST switch), so a test can build a
history whose generating rates it knows and check what the models learn from it. The
product's evaluation harness is ``pacer-stream simulate --days N`` (``pacer_stream.sim``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from pacer_stream.core.calendar import LocalDay, local_day
from pacer_stream.core.forecast.dataset import MICROS
from pacer_stream.core.history import HourlyHistory


@dataclass(frozen=True, slots=True)
class Market:
    """Synthetic traffic: expected clicks, conversion rate and CPC by local hour/weekday.

    Traffic peaks at lunch and in the evening, lower at weekends. CPC follows traffic
    (competition). Conversion rate peaks late evening on weekdays and mid-afternoon at
    weekends, so the best hours for conversions per unit of spend are not the busiest
    ones, and the weekly pattern is more than a level shift.
    """

    tz: str = "America/New_York"
    start: date = date(2026, 2, 23)  # a Monday; 2026-03-08 (DST start) is day 13
    clicks_per_day: float = 3000.0
    base_cr: float = 0.05
    base_cpc: float = 1.0
    #: Lognormal sigma of one click's cost around the hour's CPC.
    cpc_sigma: float = 0.25
    #: Lognormal sigma of a day's traffic level.
    day_sigma: float = 0.10
    #: Daily budget as a share of the expected cost of all clicks of a weekday.
    budget_share: float = 0.4

    @staticmethod
    def _shape(hod: int) -> float:
        return (
            0.15
            + math.exp(-(((hod - 12.5) / 3.0) ** 2))
            + 0.8 * math.exp(-(((hod - 20.0) / 2.0) ** 2))
            + 0.3 * math.exp(-(((hod - 8.5) / 1.5) ** 2))
        )

    @staticmethod
    def _weekday_level(dow: int) -> float:
        return (1.0, 1.0, 1.0, 1.0, 0.9, 0.65, 0.7)[dow]

    def clicks_per_hour(self, hod: int, dow: int) -> float:
        total = sum(self._shape(h) for h in range(24))
        return self.clicks_per_day * self._shape(hod) / total * self._weekday_level(dow)

    def cpc(self, hod: int, dow: int) -> float:
        peak = max(self._shape(h) for h in range(24))
        wk = 0.9 if dow >= 5 else 1.0
        return self.base_cpc * (0.65 + 0.6 * self._shape(hod) / peak) * wk

    def cr(self, hod: int, dow: int) -> float:
        if dow >= 5:
            shape = 1.0 + 0.5 * math.cos(2 * math.pi * (hod - 15) / 24)
            return self.base_cr * 1.2 * shape
        return self.base_cr * (1.0 + 0.6 * math.cos(2 * math.pi * (hod - 22) / 24))

    def daily_budget_micros(self) -> int:
        cost = sum(self.clicks_per_hour(h, 0) * self.cpc(h, 0) for h in range(24))
        return round(cost * self.budget_share) * MICROS

    def day(self, i: int) -> LocalDay:
        return local_day(self.tz, self.start + timedelta(days=i))


@dataclass(frozen=True, slots=True)
class DayClicks:
    """One local day of click opportunities, in arrival order."""

    day: LocalDay
    times: np.ndarray  # epoch seconds (step start)
    slots: np.ndarray  # slot index of each click
    cost: np.ndarray  # micros
    conv: np.ndarray  # 0/1


def generate_day(m: Market, day: LocalDay, rng: np.random.Generator, step_s: int) -> DayClicks:
    level = float(rng.lognormal(-(m.day_sigma**2) / 2, m.day_sigma))
    times: list[np.ndarray] = []
    slots: list[np.ndarray] = []
    costs: list[np.ndarray] = []
    convs: list[np.ndarray] = []
    dow = day.weekday
    mu_log = -(m.cpc_sigma**2) / 2
    for i in range(day.n_slots):
        hod = day.hours_of_day[i]
        lo, hi = day.bounds[i], day.bounds[i + 1]
        rate = m.clicks_per_hour(hod, dow) * level / 3600.0
        cpc = m.cpc(hod, dow)
        cr = m.cr(hod, dow)
        t = lo
        while t < hi - 1e-6:
            span = min(step_s, hi - t)
            n = int(rng.poisson(rate * span))
            if n:
                times.append(np.full(n, t))
                slots.append(np.full(n, i, dtype=np.int64))
                c = cpc * rng.lognormal(mu_log, m.cpc_sigma, n)
                costs.append(np.maximum(1, np.round(c * MICROS)).astype(np.int64))
                convs.append((rng.random(n) < cr).astype(np.int64))
            t += span
    if not times:
        empty = np.empty(0)
        return DayClicks(day, empty, empty.astype(np.int64), empty.astype(np.int64), empty)
    return DayClicks(
        day,
        np.concatenate(times),
        np.concatenate(slots),
        np.concatenate(costs),
        np.concatenate(convs),
    )


def synthetic_history(
    m: Market, n_hours: int, *, seed: int = 0, clean: bool = False, horizon_hours: int = 29 * 24
) -> HourlyHistory:
    """The first ``n_hours`` hours of the market from ``m.start``, fully observed.

    ``clean``: expected values rounded (no noise: clicks, conversions and spend follow
    the generating rates exactly), else Poisson clicks, Bernoulli conversions and
    lognormal costs. For tests and the forecast study.
    """
    hist = HourlyHistory(horizon_hours=horizon_hours)
    rng = np.random.default_rng(seed)
    i = 0
    d = 0
    while i < n_hours:
        day = m.day(d)
        dc = None if clean else generate_day(m, day, rng, 3600)
        for s in range(day.n_slots):
            if i >= n_hours:
                break
            h = int(day.bounds[s] // 3600)
            hod = day.hours_of_day[s]
            if dc is None:
                clicks = round(m.clicks_per_hour(hod, day.weekday))
                conv = round(clicks * m.cr(hod, day.weekday))
                spend = round(clicks * m.cpc(hod, day.weekday) * MICROS)
            else:
                sel = dc.slots == s
                clicks = int(sel.sum())
                conv = int(dc.conv[sel].sum())
                spend = int(dc.cost[sel].sum())
            hist.add(h, spend, clicks, conv, 0, 0)
            i += 1
        d += 1
    return hist
