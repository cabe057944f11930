"""The multi-day forecast evaluation runs end to end (small) and writes its report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pacer_stream.core.types import PacingStrategy
from pacer_stream.forecast_eval import Market, generate_day, run, synthetic_history


def test_run_writes_a_report_with_every_strategy(tmp_path: Path) -> None:
    report = run(days=3, seeds=[5], out=tmp_path, forecast_weeks=2, quiet=True)
    on_disk = json.loads((tmp_path / "forecast_report.json").read_text())
    assert on_disk == json.loads(json.dumps(report))
    assert set(report["pacing"]) == {s.value for s in PacingStrategy}
    for p in report["pacing"].values():
        for metric in ("conversions_per_unit", "utilisation", "tracking_error", "conversions"):
            assert set(p["all_days"][metric]) == {"mean", "worst"}
        assert 0.0 < p["all_days"]["utilisation"]["mean"] <= 1.0
    models = report["forecast"]["models"]
    assert {"selected (CV)", "ridge", "seasonal-naive week", "true rates (noise floor)"} <= set(
        models
    )
    assert all(v["wape_conversions_given_spend"] >= 0 for v in models.values())


def test_the_market_is_deterministic_and_has_weekly_seasonality() -> None:
    m = Market()
    a = generate_day(m, m.day(0), np.random.default_rng(1), 300)
    b = generate_day(m, m.day(0), np.random.default_rng(1), 300)
    assert np.array_equal(a.cost, b.cost) and np.array_equal(a.conv, b.conv)
    assert m.clicks_per_hour(12, 5) < m.clicks_per_hour(12, 1)  # weekend traffic is lower
    assert m.cr(15, 6) != m.cr(15, 2)  # and converts differently by hour
    # DST: the 13th day (2026-03-08) has 23 hourly slots
    assert m.day(13).n_slots == 23
    clean = synthetic_history(m, 48, clean=True)
    assert len(clean.buckets) == 48
