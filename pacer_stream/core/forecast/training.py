"""Training: history snapshot -> :class:`TrainedModel`, off the hot path.

``train`` is pure and deterministic: the same snapshot, ``now`` and ``seed`` give the same
model (single-threaded fits, fixed seeds). It never reads a clock of its own; a time
budget is enforced through an injected monotonic ``clock`` callable, checked between
candidate models (cheapest first), so a slow machine gets a simpler model instead of a
late one. The adapter (``pacer_stream.adapters.forecast_runner``) runs it in an executor with a
hard timeout and installs the result in a :class:`~.service.ModelRegistry`.

Method (see docs/forecasting.md):

1. Hours with activity strictly before ``now``'s hour. Tier by their count:
   under ``BASIC_HOURS`` (24) ``none`` (nothing is fitted; PREDICTIVE_ML falls back),
   under ``FULL_HOURS`` (168) ``basic`` (hour-mean and a small ridge; confidence capped
   at ``BASIC_CONFIDENCE_CAP``), otherwise ``full`` (all candidates).
2. Targets: conversion rate and cost per click of each hour, as ratios to the pooled
   rates, weighted by clicks. Features: hour of day, weekday, previous local day's level,
   same hour last week (:mod:`.dataset`).
3. Model choice per target by time-series cross-validation over whole local days
   (``TimeSeriesSplit``: train on the past, test on the next day(s)), scored by WAPE of
   the implied counts (conversions given clicks; spend given clicks).
4. Confidence = min(tier cap, data_confidence(hours) x error factor), where the error
   factor falls from 1 as the out-of-sample error exceeds what noise alone explains
   (the Poisson floor for conversions, a tolerance for CPC).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from sklearn.model_selection import TimeSeriesSplit  # type: ignore[import-untyped]

from pacer_stream.core.allocation.base import AllocationContext
from pacer_stream.core.forecast.dataset import (
    Context,
    FloatArray,
    Frame,
    HistorySnapshot,
    IntArray,
    Rates,
    build_frame,
    context_features,
    frame_lookups,
    history_lookups,
    slot_hour,
)
from pacer_stream.core.forecast.hour_curve import HourCurve, fit_hour_curve
from pacer_stream.core.forecast.models import (
    BASIC_CANDIDATES,
    FULL_CANDIDATES,
    HOUR_MEAN,
    FittedModel,
    Inputs,
    fit_candidate,
)
from pacer_stream.core.forecast.predictor import (
    BASIC_HOURS,
    FULL_HOURS,
    Forecast,
    data_confidence,
)
from pacer_stream.core.validation import epoch_s

TIER_NONE = "none"
TIER_BASIC = "basic"
TIER_FULL = "full"
#: Confidence ceiling while fewer than FULL_HOURS hours of history exist.
BASIC_CONFIDENCE_CAP = 0.5
#: Error factor when there was too little history to cross-validate (under two days).
UNVALIDATED_ERROR_FACTOR = 0.5
#: WAPE above the noise floor tolerated before confidence drops (conversion rate).
CR_TOLERANCE = 0.05
#: WAPE of spend-given-clicks tolerated before confidence drops (cost per click).
CPC_TOLERANCE = 0.10
#: Excess error at which the error factor reaches 0.
ERROR_SPAN = 0.5
MAX_SPLITS = 3
#: Soft time budget of one training (seconds of the injected clock).
DEFAULT_BUDGET_S = 0.5
SEASONAL_NAIVE = "seasonal-naive"

Clock = Callable[[], float]


def tier_for(hours: int) -> str:
    if hours < BASIC_HOURS:
        return TIER_NONE
    if hours < FULL_HOURS:
        return TIER_BASIC
    return TIER_FULL


@dataclass(frozen=True, slots=True)
class TrainedModel:
    """A trained forecast for one campaign/channel: immutable, picklable, versioned.

    ``version`` is 0 until a :class:`~.service.ModelRegistry` installs the model.
    """

    tz: str
    tier: str
    #: Hours with activity the model learned from.
    hours: int
    #: Exclusive epoch hour bound of the training data.
    data_until_hour: int
    #: ``now`` of the training call (epoch seconds).
    trained_at: float
    seed: int
    rates: Rates | None = None
    cr: FittedModel | None = None
    cpc: FittedModel | None = None
    confidence: float = 0.0
    error_factor: float = 0.0
    #: Out-of-sample WAPE per target and candidate, plus the selected pair's efficiency
    #: error, the noise floor and the seasonal-naive baseline (plain floats).
    cv: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    tried: tuple[str, ...] = ()
    budget_exhausted: bool = False
    elapsed_s: float = 0.0
    dropped: int = 0
    note: str = ""
    version: int = 0
    #: The smooth hour-of-day curve of conversions per unit (``hour_curve``), or None
    #: with nothing to learn it from.
    hour_curve: HourCurve | None = None

    @property
    def usable(self) -> bool:
        return (
            self.tier != TIER_NONE
            and self.cr is not None
            and self.cpc is not None
            and self.rates is not None
        )

    @property
    def label(self) -> str:
        if not self.usable:
            return f"ml-{self.tier}:v{self.version}"
        assert self.cr is not None and self.cpc is not None
        return f"ml-{self.tier}:cr={self.cr.name},cpc={self.cpc.name}:v{self.version}"

    def forecast(self, ctx: AllocationContext) -> Forecast:
        """Predict the planned day of ``ctx`` (cheap: ~25 rows, features from history)."""
        if not self.usable:
            raise ValueError("model is not usable; check .usable first")
        assert self.rates is not None and self.cr is not None and self.cpc is not None
        day = ctx.day
        n = day.n_slots
        hours = [slot_hour(day.bounds[i]) for i in range(n)]
        by_hour, by_day = history_lookups(
            ctx.history.buckets, self.tz, day.date, ctx.day_start_hour
        )
        days = [day.date.toordinal()] * n
        cf = context_features(hours, days, by_hour, by_day, self.rates)
        hod = np.asarray(day.hours_of_day, dtype=np.int64)
        wd = np.full(n, day.weekday, dtype=np.int64)
        cr = self.cr.predict(Inputs(hod, wd, cf.level_cr, cf.lw_cr)) * self.rates.cr
        cpc = self.cpc.predict(Inputs(hod, wd, cf.level_cpc, cf.lw_cpc)) * self.rates.cpc
        eff = cr / cpc
        return Forecast(
            tuple(float(v) for v in cr),
            tuple(float(v) for v in cpc),
            tuple(float(v) for v in eff),
            self.confidence,
            self.label,
            None if self.hour_curve is None else self.hour_curve.values(day.hours_of_day),
        )


@dataclass(frozen=True, slots=True)
class _Design:
    x_cr: Inputs
    x_cpc: Inputs
    y_cr: FloatArray
    y_cpc: FloatArray
    rates: Rates
    ctx: Context


def _rates(frame: Frame, idx: IntArray) -> Rates:
    clicks = float(frame.clicks[idx].sum())
    conv = float(frame.conversions[idx].sum())
    spend = float(frame.spend[idx].sum())
    return Rates(conv / clicks, spend / clicks)


def _design(
    frame: Frame,
    by_hour: Mapping[int, tuple[float, float, float]],
    by_day: Mapping[int, tuple[float, float, float]],
    rates: Rates,
) -> _Design:
    ctx = context_features(frame.epoch_hour.tolist(), frame.day.tolist(), by_hour, by_day, rates)
    safe = np.maximum(frame.clicks, 1.0)
    y_cr = frame.conversions / safe / max(rates.cr, 1e-12)
    y_cpc = frame.spend / safe / max(rates.cpc, 1e-12)
    x_cr = Inputs(frame.hour_of_day, frame.weekday, ctx.level_cr, ctx.lw_cr)
    x_cpc = Inputs(frame.hour_of_day, frame.weekday, ctx.level_cpc, ctx.lw_cpc)
    return _Design(x_cr, x_cpc, y_cr, y_cpc, rates, ctx)


def _folds(frame: Frame, usable: IntArray, tier: str) -> list[tuple[IntArray, IntArray]]:
    """TimeSeriesSplit over whole local days: (train rows, test rows) per fold."""
    days = np.unique(frame.day[usable])
    test_days = 2 if tier == TIER_FULL else 1
    n_splits = min(MAX_SPLITS, (len(days) - 1) // test_days)
    if n_splits < 1:
        return []
    out: list[tuple[IntArray, IntArray]] = []
    row_days = frame.day[usable]
    idx = np.arange(len(days))
    if n_splits == 1:  # TimeSeriesSplit needs two splits; one is "the past vs the last day(s)"
        splits = [(idx[:-test_days], idx[-test_days:])]
    else:
        splits = list(TimeSeriesSplit(n_splits=n_splits, test_size=test_days).split(idx))
    for tr, te in splits:
        tr_rows = usable[np.isin(row_days, days[tr])]
        te_rows = usable[np.isin(row_days, days[te])]
        if frame.conversions[tr_rows].sum() > 0 and frame.clicks[tr_rows].sum() > 0:
            out.append((tr_rows, te_rows))
    return out


def _wape(pred: FloatArray, actual: FloatArray) -> float:
    total = float(actual.sum())
    if total <= 0:
        return 0.0 if float(np.abs(pred).sum()) == 0 else 1.0
    return float(np.abs(pred - actual).sum()) / total


def poisson_mad(mu: FloatArray) -> FloatArray:
    """E|X - mu| for X ~ Poisson(mu): the error a perfect conversion forecast still has."""
    out = np.zeros_like(mu)
    for i, m in enumerate(mu.tolist()):
        if m <= 0:
            continue
        if m > 50:
            out[i] = math.sqrt(2 * m / math.pi)
            continue
        k = math.floor(m)
        out[i] = 2 * math.exp((k + 1) * math.log(m) - m - math.lgamma(k + 1))
    return out


def train(
    snapshot: HistorySnapshot,
    now: datetime,
    *,
    seed: int = 0,
    budget_s: float = DEFAULT_BUDGET_S,
    clock: Clock | None = None,
    candidates: Sequence[str] | None = None,
) -> TrainedModel:
    """Fit and select the forecast models of one campaign/channel.

    ``now`` bounds the data (only hours that ended before ``now``'s hour are used) and is
    recorded as ``trained_at``. ``clock`` (a monotonic-seconds callable) enforces
    ``budget_s`` between candidates; without it every candidate of the tier is tried.
    ``candidates`` overrides the tier's candidate list (evaluation of single models).
    """
    t_now = epoch_s(now, what="now")
    t0 = clock() if clock is not None else 0.0
    until = min(snapshot.until_hour, int(t_now // 3600))
    rows = tuple(r for r in snapshot.rows if r[0] < until)
    snap = HistorySnapshot(snapshot.tz, rows, until, snapshot.dropped)
    frame = build_frame(snap)
    hours = frame.n
    tier = tier_for(hours)

    def _elapsed() -> float:
        return (clock() - t0) if clock is not None else 0.0

    def _none(note: str) -> TrainedModel:
        return TrainedModel(
            snap.tz, TIER_NONE, hours, until, t_now, seed, dropped=snap.dropped, note=note
        )

    if tier == TIER_NONE:
        return _none(f"{hours} h of history (< {BASIC_HOURS})")
    if frame.clicks.sum() <= 0 or frame.conversions.sum() <= 0:
        return _none("no clicks or no conversions to learn from")

    by_hour, by_day = frame_lookups(frame)
    usable = np.flatnonzero(frame.clicks > 0)
    folds = _folds(frame, usable, tier)
    if candidates is None:
        candidates = FULL_CANDIDATES if tier == TIER_FULL else BASIC_CANDIDATES
    if not candidates:
        raise ValueError("candidates must not be empty")
    basic = tier == TIER_BASIC

    # Out-of-sample predictions per candidate over the concatenated test rows.
    test_rows = np.concatenate([te for _, te in folds]) if folds else np.empty(0, dtype=np.int64)
    oof: dict[str, tuple[FloatArray, FloatArray]] = {}
    naive_cr = np.empty(0)
    naive_cpc = np.empty(0)
    tried: list[str] = []
    exhausted = False
    fold_designs = [
        (tr, te, _design(frame, by_hour, by_day, _rates(frame, tr))) for tr, te in folds
    ]
    if fold_designs:
        parts_cr = []
        parts_cpc = []
        for _, te, d in fold_designs:
            ncr = d.ctx.naive_cr[te]
            ncpc = d.ctx.naive_cpc[te]
            # Seasonal naive: the same hour last week; the previous day's level if absent.
            parts_cr.append(np.where(np.isnan(ncr), d.ctx.level_cr[te] * d.rates.cr, ncr))
            parts_cpc.append(np.where(np.isnan(ncpc), d.ctx.level_cpc[te] * d.rates.cpc, ncpc))
        naive_cr = np.concatenate(parts_cr)
        naive_cpc = np.concatenate(parts_cpc)
        for name in candidates:
            if clock is not None and tried and _elapsed() > budget_s:
                exhausted = True
                break
            fold_cr: list[FloatArray] = []
            fold_cpc: list[FloatArray] = []
            for tr, te, d in fold_designs:
                m_cr = fit_candidate(
                    name, d.x_cr.take(tr), d.y_cr[tr], frame.clicks[tr], basic=basic, seed=seed
                )
                m_cpc = fit_candidate(
                    name, d.x_cpc.take(tr), d.y_cpc[tr], frame.clicks[tr], basic=basic, seed=seed
                )
                fold_cr.append(m_cr.predict(d.x_cr.take(te)) * d.rates.cr)
                fold_cpc.append(m_cpc.predict(d.x_cpc.take(te)) * d.rates.cpc)
            oof[name] = (np.concatenate(fold_cr), np.concatenate(fold_cpc))
            tried.append(name)

    clicks_t = frame.clicks[test_rows]
    conv_t = frame.conversions[test_rows]
    spend_t = frame.spend[test_rows]
    cv: dict[str, dict[str, float]] = {"cr": {}, "cpc": {}, "efficiency": {}}
    for name, (pcr, pcpc) in oof.items():
        cv["cr"][name] = _wape(pcr * clicks_t, conv_t)
        cv["cpc"][name] = _wape(pcpc * clicks_t, spend_t)
        cv["efficiency"][name] = _wape(pcr / pcpc * spend_t, conv_t)
    if oof:
        cv["cr"][SEASONAL_NAIVE] = _wape(naive_cr * clicks_t, conv_t)
        cv["cpc"][SEASONAL_NAIVE] = _wape(naive_cpc * clicks_t, spend_t)
        safe_cpc = np.where(naive_cpc > 0, naive_cpc, np.inf)
        cv["efficiency"][SEASONAL_NAIVE] = _wape(naive_cr / safe_cpc * spend_t, conv_t)
        best_cr = min(oof, key=lambda n: (cv["cr"][n], tried.index(n)))
        best_cpc = min(oof, key=lambda n: (cv["cpc"][n], tried.index(n)))
    else:
        best_cr = best_cpc = HOUR_MEAN if HOUR_MEAN in candidates else candidates[0]

    full = _design(frame, by_hour, by_day, _rates(frame, usable))
    x_cr = full.x_cr.take(usable)
    x_cpc = full.x_cpc.take(usable)
    w = frame.clicks[usable]
    cr_model = fit_candidate(best_cr, x_cr, full.y_cr[usable], w, basic=basic, seed=seed)
    cpc_model = fit_candidate(best_cpc, x_cpc, full.y_cpc[usable], w, basic=basic, seed=seed)

    if oof:
        pcr = oof[best_cr][0]
        pcpc = oof[best_cpc][1]
        total_conv = float(conv_t.sum())
        floor = float(poisson_mad(pcr * clicks_t).sum()) / total_conv if total_conv > 0 else 0.0
        wape_cr = cv["cr"][best_cr]
        wape_cpc = cv["cpc"][best_cpc]
        excess = max(0.0, wape_cr - floor - CR_TOLERANCE) + max(0.0, wape_cpc - CPC_TOLERANCE)
        error_factor = min(1.0, max(0.0, 1.0 - excess / ERROR_SPAN))
        cv["selected"] = {
            "cr": wape_cr,
            "cpc": wape_cpc,
            "efficiency": _wape(pcr / pcpc * spend_t, conv_t),
            "cr_noise_floor": floor,
            "test_hours": float(test_rows.shape[0]),
        }
    else:
        error_factor = UNVALIDATED_ERROR_FACTOR
    cap = BASIC_CONFIDENCE_CAP if tier == TIER_BASIC else 1.0
    confidence = min(cap, data_confidence(hours) * error_factor)
    return TrainedModel(
        snap.tz,
        tier,
        hours,
        until,
        t_now,
        seed,
        rates=full.rates,
        cr=cr_model,
        cpc=cpc_model,
        confidence=confidence,
        error_factor=error_factor,
        cv=cv,
        tried=tuple(tried),
        budget_exhausted=exhausted,
        elapsed_s=_elapsed(),
        dropped=snap.dropped,
        note="" if folds else "too little history to cross-validate",
        hour_curve=_hour_curve(frame),
    )


def _hour_curve(frame: Frame) -> HourCurve | None:
    """The hour curve from the frame's totals per local hour of day."""
    spend = np.bincount(frame.hour_of_day, weights=frame.spend, minlength=24)
    conversions = np.bincount(frame.hour_of_day, weights=frame.conversions, minlength=24)
    return fit_hour_curve(spend.tolist(), conversions.tolist())
