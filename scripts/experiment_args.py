"""The command line the simulator experiments in this folder share: which seeds, and
the multi-day scenario they run (``PYTHONPATH=. python scripts/<experiment>.py``)."""

from __future__ import annotations

import argparse

from pacer_stream.sim.scenario import Scenario


def parser(description: str, seeds: str) -> argparse.ArgumentParser:
    """An argument parser with ``--seeds`` (default ``seeds``) and the scenario's size."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--seeds", default=seeds, help="a range (0-9) or a list (1,4,7)")
    ap.add_argument("--campaigns", type=int, default=8)
    ap.add_argument("--days", type=int, default=5)
    ap.add_argument("--warmup-days", type=int, default=3)
    return ap


def seed_list(text: str) -> list[int]:
    """``0-9`` -> 0..9 inclusive; ``1,4,7`` -> those seeds."""
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(x) for x in text.split(",")]


def scenario(args: argparse.Namespace) -> Scenario:
    return Scenario(campaigns=args.campaigns, days=args.days, warmup_days=args.warmup_days)
