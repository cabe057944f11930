"""The report: its JSON shape, mean/worst aggregation and the CLI command."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from pacer_stream.core.types import PacingStrategy
from pacer_stream.sim.baselines import GATES
from pacer_stream.sim.command import register
from pacer_stream.sim.metrics import aggregate, trace_metrics
from pacer_stream.sim.report import check_targets, write_json
from pacer_stream.sim.runner import TaskResult, assemble, combine_days, run_seeds
from pacer_stream.sim.scenario import (
    DEFAULT_STRATEGY,
    DST_DAY,
    METRICS,
    MINUTES,
    PRODUCT_STRATEGIES,
    STRATEGIES,
    Faults,
    Scenario,
    row_name,
)
from pacer_stream.sim.targets import TARGETS, markdown_table
from pacer_stream.sim.trace import empty_trace
from pacer_stream.sim.traffic import Traffic, generate


def test_aggregate_takes_the_bad_direction_as_worst() -> None:
    seeds = [
        {"x": {"utilisation": 0.99, "overspend_share": 0.0, "runaway_detect_minutes": None}},
        {"x": {"utilisation": 0.95, "overspend_share": 0.1, "runaway_detect_minutes": None}},
    ]
    row = aggregate(seeds)["x"]
    assert row["utilisation"] == {"mean": pytest.approx(0.97), "worst": 0.95}
    assert row["overspend_share"] == {"mean": pytest.approx(0.05), "worst": 0.1}
    assert row["runaway_detect_minutes"] == {"mean": None, "worst": None}
    assert set(METRICS) <= set(row)


def test_metrics_of_a_perfect_even_day() -> None:
    """A trace that spends exactly its even plan: utilisation 1, no tracking error,
    never exhausted early, alive all day."""
    traffic = generate(0, Scenario(campaigns=2, channels=2))
    trace = empty_trace("t", 2, 2, MINUTES, traffic.budget)
    per_minute = traffic.budget // MINUTES
    trace.spend[:] = per_minute[:, :, None]
    trace.spend[:, :, -1] += traffic.budget - per_minute * MINUTES
    total = traffic.budget.sum(axis=1)
    trace.plan[:] = np.concatenate([[0.0], np.cumsum(trace.spend.sum(axis=1)[0])])[None, :]
    trace.plan[1] = np.concatenate([[0.0], np.cumsum(trace.spend.sum(axis=1)[1])])
    trace.unique_micros = trace.recorded_micros = int(total.sum())
    m = trace_metrics(trace, traffic)
    assert m["utilisation"] == pytest.approx(1.0)
    assert m["overspend_share"] == 0.0
    assert m["tracking_error"] == pytest.approx(0.0)
    assert m["exhausted_before_18"] == 0.0 and m["exhausted_before_22"] == 0.0
    assert m["alive"] > 0.99
    assert m["double_counted_micros"] == 0.0
    assert m["runaway_detect_minutes"] is None


def test_campaigns_judged_apart_leave_the_pacing_figures() -> None:
    """A campaign hit by a late-platform runaway is judged by its own figures only: its
    blown budget counts neither in utilisation nor as an exhaustion."""
    traffic = generate(0, Scenario(campaigns=2, channels=2))
    trace = empty_trace("t", 2, 2, MINUTES, traffic.budget)
    per_minute = traffic.budget // MINUTES
    trace.spend[:] = per_minute[:, :, None]
    trace.spend[1, 0, 600] += 3 * traffic.budget[1].sum()  # campaign 1: blown at 10:00
    trace.plan[:] = np.concatenate([[0.0], np.cumsum(trace.spend.sum(axis=1)[0])])[None, :]
    trace.able[:] = True
    both = trace_metrics(trace, traffic)
    apart = trace_metrics(trace, traffic, apart={1})
    assert both["utilisation"] > 1.5 and both["exhausted_before_18"] == 0.5
    assert apart["utilisation"] == pytest.approx(1.0, abs=0.01)
    assert apart["exhausted_before_18"] == 0.0
    assert apart["conversions"] == int(trace.conversions[0].sum())


def _dst_day_in_new_york() -> Traffic:
    """Two campaigns on the spring-forward day in New York (a 23-hour local day)."""
    scenario = Scenario(campaigns=2, channels=2, days=2, warmup_days=1)
    day = next(d for d in range(2) if scenario.date_of(d) == DST_DAY)
    t = generate(0, scenario, day)
    zones = ("America/New_York",) * 2
    start = datetime(2026, 3, 8, tzinfo=ZoneInfo(zones[0])).timestamp()
    return dataclasses.replace(
        t,
        zones=zones,
        day_start=np.full(2, start),
        day_minutes=np.full(2, 1380, dtype=np.int64),
    )


def test_a_23_hour_day_is_judged_on_its_own_minutes_and_wall_clock() -> None:
    """On the spring-forward day 22:00 local is 1260 minutes after midnight and the
    grid's last hour is not part of the day: a campaign that spends evenly to the end of
    its 23 hours is alive all day; one that stops at 21:50 local is exhausted before 22."""
    traffic = _dst_day_in_new_york()
    trace = empty_trace("t", 2, 2, MINUTES, traffic.budget)
    trace.able[:] = True
    trace.able[:, :, 1380:] = False  # after the day's end nothing can spend
    for c, stop in ((0, 1380), (1, 1250)):
        per_minute = traffic.budget[c] // stop
        trace.spend[c, :, :stop] = per_minute[:, None]
        trace.spend[c, :, stop - 1] += traffic.budget[c] - per_minute * stop
    m0 = trace_metrics(trace, traffic, apart={1})
    assert m0["alive"] > 0.99
    assert m0["exhausted_before_22"] == 0.0
    m1 = trace_metrics(trace, traffic, apart={0})
    assert m1["exhausted_before_22"] == 1.0 and m1["exhausted_before_18"] == 0.0


@pytest.fixture(scope="module")
def tiny_report() -> dict:  # type: ignore[type-arg]
    return run_seeds([0], Scenario(campaigns=3, channels=2), workers=1)


def test_report_has_every_strategy_and_metric(tiny_report: dict) -> None:  # type: ignore[type-arg]
    assert tiny_report["seeds"] == 1
    assert list(tiny_report["strategies"]) == list(STRATEGIES)
    for name, row in tiny_report["strategies"].items():
        for metric in METRICS:
            assert set(row[metric]) == {"mean", "worst"}, (name, metric)
    assert set(tiny_report["extra_strategies"]) == {"pacer-stream-static"}
    pacer = tiny_report["strategies"]["pacer-stream"]
    assert pacer["double_counted_micros"]["worst"] == 0.0
    free = tiny_report["strategies"]["oracle-free"]
    assert free["oracle_share"]["mean"] == pytest.approx(1.0)
    # Bound to the operator's split, the oracle cannot beat the free one.
    split = tiny_report["strategies"]["oracle-split"]
    assert split["oracle_share"]["mean"] <= 1.0 + 1e-9
    assert free["reallocation_gain"]["mean"] >= -1e-9
    # Reallocation's utilisation against the same controller's static split, per seed.
    static = tiny_report["extra_strategies"]["pacer-stream-static"]
    gain = pacer["reallocation_utilisation_gain"]["mean"]
    assert gain == pytest.approx(pacer["utilisation"]["mean"] - static["utilisation"]["mean"])


def test_the_targets_page_carries_the_targets_the_report_checks() -> None:
    """docs/targets.md shows the report's own list: a target changed in ``TARGETS`` and
    not on the page (or the other way round) fails here."""
    page = (Path(__file__).parents[2] / "docs" / "targets.md").read_text()
    assert markdown_table() in page
    assert any(t[1] == "reallocation_gain" and t[4] == pytest.approx(0.10) for t in TARGETS)


def test_report_json_is_strict(tiny_report: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    path = write_json(tiny_report, tmp_path)
    data = json.loads(path.read_text())
    assert data["seeds"] == 1
    assert "_charts" not in data
    cpu = tiny_report["_charts"]["conversions_per_unit"]
    assert (
        cpu["pacer-stream"]
        == tiny_report["strategies"]["pacer-stream"]["conversions_per_unit"]["mean"]
    )
    assert set(data["strategies"]) == set(STRATEGIES)


def test_targets_are_judged(tiny_report: dict) -> None:  # type: ignore[type-arg]
    targets = check_targets(tiny_report, faults=True)
    assert len(targets) == len(TARGETS)
    assert all(t["met"] in (True, False, None) for t in targets)
    tracking = next(t for t in targets if t["metric"] == "tracking_error")
    assert tracking["bound"] == 0.03


def test_simulate_command_writes_report_and_charts(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)

    @app.command()
    def other() -> None:  # a second command keeps typer in sub-command mode
        """Unused."""

    result = CliRunner().invoke(
        app,
        ["simulate", "--seeds", "1", "--campaigns", "3", "--channels", "2", "--workers", "1",
         "--no-duplicates", "--out", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["scenario"]["faults"] == {
        "runaway": True,
        "duplicates": False,
        "stall": True,
        "late": True,
    }
    assert (tmp_path / "spend_vs_plan.png").stat().st_size > 0
    assert "pacer-stream" in result.output


def test_no_faults_reports_no_runaway_metrics() -> None:
    report = run_seeds([1], Scenario(campaigns=2, channels=2, faults=Faults.none()), workers=1)
    row = report["strategies"]["pacer-stream"]
    assert row["runaway_detect_minutes"] == {"mean": None, "worst": None}
    assert row["utilisation"]["mean"] > 0.5


def test_product_rows_are_named_by_strategy_value() -> None:
    assert "pacer-stream" in STRATEGIES
    for s in PRODUCT_STRATEGIES:
        if s is not DEFAULT_STRATEGY:
            assert row_name(s) in STRATEGIES
    assert row_name(PacingStrategy.PREDICTIVE_ML) == "predictive_ml"
    assert {"oracle-free", "oracle-split"} <= set(STRATEGIES)


def test_multi_day_scenario_crosses_the_dst_day() -> None:
    scenario = Scenario(campaigns=1, days=4, warmup_days=2)
    dates = [scenario.date_of(d) for d in range(4)]
    assert dates[scenario.warmup_days + 1] == DST_DAY
    with pytest.raises(ValueError):
        Scenario(days=2, warmup_days=2)


def test_multi_day_report_covers_the_evaluation_days_only() -> None:
    scenario = Scenario(campaigns=2, channels=2, days=3, warmup_days=2, faults=Faults.none())
    report = run_seeds([3], scenario, workers=1)
    assert report["days"] == 3 and report["warmup_days"] == 2
    assert report["scenario"]["evaluation_days"] == [scenario.date_of(2).isoformat()]
    assert list(report["strategies"]) == list(STRATEGIES)
    for name, row in report["strategies"].items():
        # Every campaign spends most of its budget on the evaluation day; a report that
        # summed warm-up days as well would show utilisation near 3.
        assert 0.5 < row["utilisation"]["mean"] < 1.2, name
        assert row["double_counted_micros"]["worst"] in (None, 0.0) or name in GATES, name
    one_day = run_seeds([3], Scenario(campaigns=2, channels=2, faults=Faults.none()), workers=1)
    assert (
        report["strategies"]["oracle-free"]["conversions"]["mean"]
        != one_day["strategies"]["oracle-free"]["conversions"]["mean"]
    )


def test_a_seed_of_many_days_is_the_mean_of_its_days_with_worst_and_sums() -> None:
    days = [
        {"utilisation": 0.98, "runaway_detect_minutes_max": 1.0, "double_counted_micros": 0.0,
         "overspend_beyond_one_event": 1, "runaway_excess_share": None},
        {"utilisation": 1.00, "runaway_detect_minutes_max": 3.0, "double_counted_micros": 5.0,
         "overspend_beyond_one_event": 2, "runaway_excess_share": None},
    ]  # fmt: skip
    seed = combine_days(days)
    assert seed["utilisation"] == pytest.approx(0.99)
    assert seed["runaway_detect_minutes_max"] == 3.0
    assert seed["double_counted_micros"] == 5.0
    assert seed["overspend_beyond_one_event"] == 3.0
    assert seed["runaway_excess_share"] is None


def test_learned_weights_of_both_learning_rows_reach_the_charts(tiny_report: dict) -> None:  # type: ignore[type-arg]
    """Each learning row's task brings its own hour weights; assembling keeps both."""
    scenario = Scenario(campaigns=3, channels=2)
    weights = {"google_ads": {"learned": [1.0] * 24, "true": [1.0] * 24, "model": "m"}}
    base = TaskResult(0, "baselines", 0.0)
    base.metrics = {n: dict(tiny_report["per_seed"][0]["strategies"][n]) for n in GATES}
    for n in ("oracle-free", "oracle-split"):
        base.metrics[n] = {**tiny_report["per_seed"][0]["strategies"][n], "conversions": 10}
    for n in GATES:
        base.metrics[n]["conversions"] = 5
    hybrid = TaskResult(0, "pacer", 0.0, chart={"hour_weights": {"pacer-stream": weights}})
    ml = TaskResult(
        0, "strategy:PREDICTIVE_ML", 0.0, chart={"hour_weights": {"predictive_ml": weights}}
    )
    report = assemble([0], scenario, [hybrid, ml, base], 1.0, 1)
    assert set(report["_charts"]["hour_weights"]) == {"pacer-stream", "predictive_ml"}


def test_simulate_refuses_a_warm_up_as_long_as_the_run(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)
    result = CliRunner().invoke(
        app, ["simulate", "--days", "2", "--warmup-days", "2", "--out", str(tmp_path)]
    )
    assert result.exit_code != 0
    assert "--warmup-days" in result.output
    assert not (tmp_path / "report.json").exists()


def test_runaway_excess_after_the_first_report_is_counted_apart() -> None:
    """Spend a runaway got out before its first event could be reported is out of any
    controller's reach; what came after it is counted apart as well."""
    from pacer_stream.sim.trace import RunawayOutcome

    r = RunawayOutcome(0, 0, 600, 15.0, 0, False, report_delay_s=1.0)
    r.spent(36_000.0, 5)  # the first event
    r.spent(36_000.75, 7)  # sent before the first could be reported
    r.spent(36_001.5, 11)  # sent after it
    assert r.excess_micros == 23
    assert r.excess_after_report_micros == 11


def test_a_missed_target_says_by_how_much_and_why() -> None:
    """A missed target carries its shortfall and, where the project knows it, the reason
    with the experiment that shows it; a met target carries neither."""
    from rich.console import Console

    from pacer_stream.sim.report import render_targets

    report = {
        "strategies": {
            "pacer-stream": {
                "oracle_share": {"mean": 0.824, "worst": 0.75},
                "utilisation": {"mean": 0.996, "worst": 0.994},
                "alive": {"mean": 0.985, "worst": 0.98},
                "reallocation_gain": {"mean": 0.093, "worst": 0.022},
                "reallocation_utilisation_gain": {"mean": 0.0001, "worst": -0.0028},
            }
        }
    }
    checked = check_targets(report, faults=True)
    targets = {t["metric"]: t for t in checked if t["row"] == "pacer-stream"}
    share = targets["oracle_share"]
    assert share["met"] is False and share["short_by"] == pytest.approx(0.076)
    assert "scripts/causal_threshold.py" in share["why"]
    assert targets["utilisation"]["met"] is True
    realloc = targets["reallocation_gain"]
    assert realloc["met"] is False and realloc["short_by"] == pytest.approx(0.007)
    assert "docs/simulation.md 15.1-15.2" in realloc["why"]
    assert targets["reallocation_utilisation_gain"]["met"] is True
    assert "short_by" not in targets["utilisation"] and "why" not in targets["utilisation"]
    # Missed without a known reason: the shortfall alone.
    assert targets["alive"]["short_by"] == pytest.approx(0.005) and "why" not in targets["alive"]
    console = Console(record=True, width=200)
    console.print(render_targets(checked))
    text = console.export_text()
    assert "missed by 0.076" in text
    assert "missed by 0.7%" in text  # the reallocation gain's shortfall, without a sign
    assert "(docs/simulation.md 15.3, 16;" in " ".join(text.split())  # wrapped to the width
