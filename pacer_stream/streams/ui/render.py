"""HTML of the operator page: Jinja2 templates (autoescaped) and server-side SVG charts.

Why server-side SVG: the page must work with no internet access and under a strict
Content-Security-Policy, and a chart library would be a JavaScript dependency to vendor
and audit. The chart is a few polylines and circles; drawing them here keeps the only
script of the page a tiny poller (``static/ui.js``). Colours are SVG presentation
attributes (not inline ``style``), which the policy ``style-src 'self'`` allows.

Every value that reaches the HTML goes through Jinja2's autoescaping, or, inside the SVG
built here, through :func:`markupsafe.escape`; campaign ids in URLs are percent-encoded.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import jinja2
from markupsafe import Markup, escape

from pacer_stream.core.calendar import zone
from pacer_stream.errors import PacerError

#: Seconds between two refreshes of a page (the poller reads it from the page).
REFRESH_S = 5

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("pacer_stream.streams.ui", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def money(micros: int | None) -> str:
    """Integer micros as currency units with two decimals (exact, no float)."""
    if micros is None:
        return "-"
    return f"{Decimal(micros) / 1_000_000:,.2f}"


def ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _local(ts: float | None, tz: str, fmt: str) -> str:
    if ts is None:
        return "-"
    try:
        z: Any = zone(tz)
    except PacerError:  # an unknown zone never breaks the page: show UTC
        z = UTC
    return datetime.fromtimestamp(ts, z).strftime(fmt)


def clock(ts: float | None, tz: str = "UTC") -> str:
    """``HH:MM:SS`` of an epoch time in zone ``tz`` (UTC when the zone is unknown)."""
    return _local(ts, tz, "%H:%M:%S")


def stamp(ts: float | None, tz: str = "UTC") -> str:
    """``YYYY-MM-DD HH:MM:SS`` in zone ``tz``."""
    return _local(ts, tz, "%Y-%m-%d %H:%M:%S")


def path_id(campaign_id: str) -> str:
    """A campaign id as one URL path segment (``/``, ``?``, ``#``, quotes... encoded)."""
    return quote(campaign_id, safe="")


_env.filters.update(money=money, ratio=ratio, pct=pct, clock=clock, stamp=stamp, path_id=path_id)


# ---------------------------------------------------------------------- the chart
_W, _H = 640, 240
_L, _R, _T, _B = 70, 14, 14, 28
_COLOURS = {"spend": "#1f6feb", "plan": "#57606a", "yesterday": "#b8c0cc", "budget": "#cf222e"}


def spend_chart(channel: str, curve: dict[str, Any] | None, budget_micros: int) -> Markup:
    """Cumulative spend today (line with a point per hour and one at "now"), the planned
    curve, yesterday's spend and the budget line, on a 0-24 h axis."""
    if not curve:
        return Markup('<p class="muted">no day started yet for this channel</p>')
    hours = float(curve["hours"]) or 24.0
    actual = curve["actual"]
    plan = curve["plan"]
    yesterday = curve["yesterday"]
    values = [v for _, v in actual] + [v for _, v in plan] + [v for _, v in yesterday]
    top = float(max([budget_micros, *values, 1])) * 1.08
    width, height = _W - _L - _R, _H - _T - _B

    def x(h: float) -> float:
        return round(_L + min(max(h, 0.0), hours) / hours * width, 1)

    def y(v: float) -> float:
        return round(_T + (1 - v / top) * height, 1)

    def line(points: list[list[float]] | list[tuple[float, int]], cls: str, dash: str) -> str:
        if len(points) < 2:
            return ""
        coords = " ".join(f"{x(h)},{y(v)}" for h, v in points)
        return (
            f'<polyline class="{cls}" points="{coords}" fill="none" '
            f'stroke="{_COLOURS[cls]}" stroke-width="{2.5 if cls == "spend" else 1.5}"'
            + (f' stroke-dasharray="{dash}"' if dash else "")
            + " />"
        )

    label = escape(f"Cumulative spend of {channel} today against the plan")
    parts = [
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" aria-label="{label}" '
        f'data-channel="{escape(channel)}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i in range(5):  # horizontal grid with money labels
        v = top / 1.08 * i / 4
        parts.append(
            f'<line x1="{_L}" x2="{_W - _R}" y1="{y(v)}" y2="{y(v)}" stroke="#eaeef2" />'
            f'<text x="{_L - 6}" y="{y(v) + 4}" text-anchor="end" class="axis">'
            f"{escape(money(int(v)))}</text>"
        )
    for h in range(0, int(hours) + 1, 3):
        parts.append(
            f'<line x1="{x(h)}" x2="{x(h)}" y1="{_T}" y2="{_T + height}" stroke="#f3f4f6" />'
            f'<text x="{x(h)}" y="{_H - 10}" text-anchor="middle" class="axis">{h:02d}</text>'
        )
    if budget_micros > 0:
        parts.append(
            f'<line class="budget" x1="{_L}" x2="{_W - _R}" y1="{y(budget_micros)}" '
            f'y2="{y(budget_micros)}" stroke="{_COLOURS["budget"]}" stroke-dasharray="2 3" />'
        )
    parts.append(line(yesterday, "yesterday", ""))
    parts.append(line(plan, "plan", "6 4"))
    now_h = curve.get("now_h")
    if now_h is not None:
        parts.append(
            f'<line class="now" x1="{x(now_h)}" x2="{x(now_h)}" y1="{_T}" y2="{_T + height}" '
            'stroke="#8250df" stroke-dasharray="1 3" />'
        )
    parts.append(line(actual, "spend", ""))
    for h, v in actual:
        hh, mm = int(h), round((h - int(h)) * 60)
        if mm == 60:
            hh, mm = hh + 1, 0
        title = escape(f"{hh:02d}:{mm:02d} spent {money(v)}")
        parts.append(
            f'<circle class="spend-point" cx="{x(h)}" cy="{y(v)}" r="3" '
            f'fill="{_COLOURS["spend"]}"><title>{title}</title></circle>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


#: What each denial code means to an operator (shown beside the counts).
CODE_HELP: dict[str, str] = {
    "circuit_breaker_open": "the channel's breaker is OPEN: spend refused until it cools down",
    "circuit_breaker_half_open_limit": "breaker HALF_OPEN: only a few trial spends allowed",
    "emergency_stop": "an operator stopped the campaign (pacer-stream resume ends it)",
    "daily_budget_exhausted": "today's budget is spent or held by reservations",
    "hourly_cap_reached": "this hour's allowance is used: spend resumes as it is released",
    "velocity_limit": "spending faster than the plan allows over the last minutes",
    "performance_threshold": "a performance floor (CPC, conversion rate, ROAS) is violated",
    "no_budget": "the channel has no budget configured",
    "unknown_campaign": "no budget was ever published for this campaign",
    "unknown_channel": "the channel is not part of the campaign's configuration",
    "invalid_amount": "the request asked for a non-positive or oversized amount",
    "deadline_expired": "the request waited past its deadline (worker lagging?)",
}

_env.globals.update(spend_chart=spend_chart, refresh_s=REFRESH_S, code_help=CODE_HELP)


# ---------------------------------------------------------------------- pages
def campaign_fragment(facts: dict[str, Any]) -> str:
    """The refreshable part of the campaign page."""
    return _env.get_template("campaign.html").render(f=facts)


def index_fragment(facts: dict[str, Any]) -> str:
    return _env.get_template("index.html").render(f=facts)


def page(title: str, live_src: str, fragment: str, *, query: str | None = None) -> str:
    """A whole page: the shell (styles, poller) around a fragment that ``live_src``
    serves again as JSON every :data:`REFRESH_S` seconds."""
    return _env.get_template("page.html").render(
        title=title, live_src=live_src, fragment=Markup(fragment), query=query
    )


def not_found(campaign_id: str) -> str:
    return page(
        f"unknown campaign {campaign_id}",
        "",
        _env.get_template("unknown.html").render(campaign_id=campaign_id),
    )
