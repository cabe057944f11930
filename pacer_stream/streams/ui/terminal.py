"""The operator page's facts in a terminal (``pacer-stream status --watch``), with rich.

Same facts as the web page (:mod:`.model`, fetched from ``/ui/api/campaigns/{id}``), laid
out as tables; :func:`watch` redraws them in place. Values that come from the outside
(campaign ids, reasons, recommended actions) are wrapped in :class:`rich.text.Text`, never
interpreted as rich markup, and stripped of control characters, so a hostile id can
neither restyle the output nor send escape sequences to the terminal.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from pacer_stream.streams.ui.render import CODE_HELP, clock, money, pct, ratio, stamp

_BREAKER_STYLE = {"open": "bold red", "half_open": "bold yellow", "closed": "green"}
_SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan"}
_BARS = "▁▂▃▄▅▆▇█"
#: Rows of the breaker timeline and alerts shown (newest first).
ROWS = 5


def safe(value: object) -> Text:
    """Untrusted text as a plain :class:`Text` (no markup, no control characters)."""
    s = "" if value is None else str(value)
    return Text("".join(c if c.isprintable() else "\N{REPLACEMENT CHARACTER}" for c in s))


def sparkline(curve: dict[str, Any] | None) -> str:
    """Spend per hour today as bars (from the cumulative points of the page's curve)."""
    if not curve or len(curve["actual"]) < 2:
        return ""
    values = [v for _, v in curve["actual"]]
    steps = [max(0, b - a) for a, b in itertools.pairwise(values)]
    top = max(steps) or 1
    return "".join(_BARS[min(len(_BARS) - 1, s * len(_BARS) // (top + 1))] for s in steps)


def campaign_view(facts: dict[str, Any], *, refreshed: str = "") -> RenderableType:
    """Everything the page shows, as rich renderables."""
    tz = str(facts.get("timezone") or "UTC")
    cid = safe(facts["campaign_id"])
    cid.stylize("bold cyan")
    head = Text.assemble(
        ("campaign ", "bold"),
        cid,
        f"  {facts['strategy']} · {tz} · local time {stamp(facts.get('now'), tz)}",
    )
    parts: list[RenderableType] = [head]
    if facts.get("emergency_stopped"):
        parts.append(
            Text.assemble(("EMERGENCY STOPPED ", "bold red"), safe(facts.get("stop_reason")))
        )

    channels = Table(title="channels", title_justify="left", expand=False)
    for col in ("channel", "budget", "spent", "planned", "pace", "mult.", "this hour"):
        channels.add_column(col, justify="left" if col == "channel" else "right")
    channels.add_column("in flight", justify="right")
    channels.add_column("today by hour")
    channels.add_column("breaker")
    for ch in facts["channels"]:
        br = ch["breaker"]
        pace = ch["pace_ratio"]
        breaker = Text(br["state"].upper(), style=_BREAKER_STYLE.get(br["state"], ""))
        if br.get("cause"):
            breaker.append(f" {br['cause']}", style="dim")
        channels.add_row(
            ch["channel"],
            money(ch["budget_micros"]),
            money(ch["spent_micros"]),
            money(ch["planned_micros"]),
            Text(ratio(pace), style="red" if pace > 1.5 else "yellow" if pace < 0.8 else ""),
            ratio(ch["pacing_multiplier"]),
            f"{money(ch['hour_spent_micros'])} / {money(ch['hour_allowance_micros'])}",
            f"{money(ch['reserved_micros'])} ({ch['reservations']})",
            sparkline(ch.get("curve")),
            breaker,
        )
    parts.append(channels)

    act = facts.get("activity")
    if act:
        denials = Table(
            title=(
                f"can-spend denials, last hour ({act['requests']['allowed']} allowed, "
                f"{act['requests']['denied']} denied)"
            ),
            title_justify="left",
        )
        for col in ("reason code", "count", "by channel", "last", "what it means"):
            denials.add_column(col, justify="right" if col == "count" else "left")
        for d in act["denials_by_code"]:
            per = ", ".join(f"{c} {n}" for c, n in sorted(d["channels"].items()))
            denials.add_row(
                d["code"],
                str(d["count"]),
                per,
                clock(d["last_at"], tz),
                Text(CODE_HELP.get(d["code"], ""), style="dim"),
            )
        parts.append(denials)

        timeline = Table(title="breaker timeline", title_justify="left")
        for col in ("time", "channel", "change", "cause", "retry at"):
            timeline.add_column(col)
        for t in act["breaker_timeline"][:ROWS]:
            change = Text(t["previous"].upper(), style=_BREAKER_STYLE.get(t["previous"], ""))
            change.append(" → ")
            change.append(t["state"].upper(), style=_BREAKER_STYLE.get(t["state"], ""))
            timeline.add_row(
                clock(t["at"], tz), t["channel"], change, t["cause"], clock(t["until"], tz)
            )
        parts.append(timeline)

        alerts = Table(title="last alerts", title_justify="left")
        for col in ("time", "severity", "alert", "channel", "pace", "used / elapsed", "action"):
            alerts.add_column(col)
        for a in act["alerts"][:ROWS]:
            alerts.add_row(
                clock(a["at"], tz),
                Text(a["severity"], style=_SEVERITY_STYLE.get(a["severity"], "")),
                a["alert_type"],
                a["channel"] or "all",
                ratio(a["pace_ratio"]),
                f"{pct(a['budget_consumed_pct'])} / {pct(a['time_elapsed_pct'])}",
                safe(a["recommended_action"]),
            )
        parts.append(alerts)
    changed = facts.get("config_applied_at")
    config = f"configuration last changed {stamp(changed, tz)}" if changed else "never configured"
    thresholds = [t for t in facts.get("thresholds", []) if not t["default"]]
    if thresholds:
        config += " · thresholds changed: " + ", ".join(
            f"{t['name']}={t['value']}" for t in thresholds
        )
    parts.append(Text(config, style="dim"))
    if refreshed:
        parts.append(Text(refreshed, style="dim"))
    return Group(*parts)


def watch(
    fetch: Callable[[], dict[str, Any]],
    *,
    console: Console,
    interval: float,
    iterations: int = 0,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Redraw the campaign every ``interval`` seconds until Ctrl-C (or ``iterations``
    refreshes when > 0). A failed fetch is shown and retried; it never ends the watch."""
    done = 0
    with Live(console=console, auto_refresh=False, transient=False) as live:
        while True:
            stamp_now = time.strftime("%H:%M:%S")
            try:
                view = campaign_view(
                    fetch(),
                    refreshed=f"refreshed {stamp_now} · every {interval:g} s · Ctrl-C to quit",
                )
            except Exception as exc:  # the worker may be restarting: keep watching
                view = Text.assemble(
                    (f"{stamp_now} not refreshed: ", "bold red"), safe(str(exc)), " (retrying)"
                )
            live.update(view, refresh=True)
            done += 1
            if iterations and done >= iterations:
                return
            sleep(interval)
