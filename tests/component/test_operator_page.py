"""The operator page's facts and HTML, fed through the real processor (no broker).

A :class:`Desk` plays encoded records through :class:`Processor` with a manual clock,
exactly as the worker's agents do, and keeps the table values in a dict. The page is then
built from the same facts the worker serves: what an operator sees is checked on the
HTML (escaping, points of the spend curve, breaker and denial rows).
"""

from __future__ import annotations

import itertools
import re
import uuid
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import orjson
import pytest

from pacer_stream.core.types import (
    CampaignConfig,
    ChannelConfig,
    ChannelType,
    PacingStrategy,
    SpendEvent,
    Thresholds,
)
from pacer_stream.streams.activity import ActivityLog
from pacer_stream.streams.clock import ManualClock
from pacer_stream.streams.processor import Processor, Result
from pacer_stream.streams.stored import Stored
from pacer_stream.streams.ui import model, render
from pacer_stream.wire import records, topics
from pacer_stream.wire.records import CanSpendRequest

GOOGLE = ChannelType.GOOGLE_ADS
UNIT = 1_000_000
NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
NASTY_ID = '<script>alert("x")</script>\'"&amp; é—漢字 /?#'


class Desk:
    """Processor + table + clock: the worker without faust."""

    def __init__(self) -> None:
        self.clock = ManualClock(NOON)
        self.processor = Processor(clock=self.clock)
        self.activity = ActivityLog(started_at=NOON.timestamp() - 3600)
        self.processor.activity = self.activity
        self.table: dict[str, Stored] = {}
        self._offsets = itertools.count()

    def handle(self, logical: str, key: str, value: bytes) -> Result:
        topic = self.processor.names.actual(logical)
        result = self.processor.handle(
            topic, 0, next(self._offsets), key.encode(), value, self.table.get
        )
        if result.store is not None:
            self.table[result.store.campaign_id] = result.store
        return result

    def spend(self, cid: str, amount: int, at: datetime, eid: str | None = None) -> Result:
        event = SpendEvent(eid or uuid.uuid4().hex, cid, GOOGLE, amount, at)
        return self.handle(topics.SPEND, cid, records.encode_spend(event))

    def budget(self, cid: str, amount: int, **thresholds: Any) -> Result:
        config = CampaignConfig(
            cid,
            {GOOGLE: ChannelConfig(amount)},
            strategy=PacingStrategy.EVEN_DISTRIBUTION,
            timezone="UTC",
            thresholds=Thresholds(**thresholds),
        )
        return self.handle(
            topics.BUDGETS, cid, records.encode_budget(config, updated_at=self.clock.now())
        )

    def can_spend(self, cid: str, amount: int) -> Result:
        request = CanSpendRequest(
            request_id=uuid.uuid4().hex,
            campaign_id=cid,
            channel=GOOGLE,
            amount_micros=amount,
            requested_at=self.clock.now(),
            deadline_ms=5000,
        )
        return self.handle(topics.CAN_SPEND_REQUESTS, cid, records.encode(request))

    def facts(self, cid: str) -> dict[str, Any]:
        return model.campaign_facts(self.processor, self.table[cid], self.activity, NOON)

    def morning(self, cid: str) -> None:
        """The budget arrives late yesterday (so today's plan covers the whole day) with
        a day of spend; this morning's spend; a runaway at noon; refused requests."""
        yesterday = NOON - timedelta(days=1)
        self.clock.set(yesterday.replace(hour=23, minute=50))
        self.budget(cid, 1000 * UNIT, breaker_cooldown_s=600)
        for hour in range(6, 20):
            self.spend(cid, 30 * UNIT, yesterday.replace(hour=hour, minute=15))
        self.clock.set(NOON)
        for hour in range(6, 12):
            self.spend(cid, 25 * UNIT, NOON.replace(hour=hour, minute=30))
        for i in range(4):
            self.spend(cid, 240 * UNIT, NOON, eid=f"runaway-{i}")
        for _ in range(5):
            self.can_spend(cid, 2 * UNIT)


class Tags(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> Tags:
    p = Tags()
    p.feed(html)
    p.close()
    return p


@pytest.fixture
def desk() -> Desk:
    return Desk()


def test_morning_facts_explain_the_campaign(desk: Desk) -> None:
    cid = f"c-{uuid.uuid4().hex[:8]}"
    desk.morning(cid)
    f = desk.facts(cid)
    (ch,) = f["channels"]
    assert ch["breaker"]["state"] == "open"
    assert ch["breaker"]["cause"] in {
        "runaway_velocity",
        "overspend_ahead_of_plan",
        "repeated_overspend",
    }
    curve = ch["curve"]
    # one point per hour boundary up to noon, then "now": cumulative, never decreasing
    actual = curve["actual"]
    assert [h for h, _ in actual[:13]] == list(range(13))
    values = [v for _, v in actual]
    assert values == sorted(values)
    assert actual[7][1] == 25 * UNIT and actual[12][1] == 150 * UNIT  # 06:30..11:30
    assert actual[-1][1] == ch["spent_micros"] == (150 + 960) * UNIT
    assert curve["plan"][0][1] == 0 and curve["plan"][-1][1] == 1000 * UNIT
    assert curve["yesterday"][-1][1] == 14 * 30 * UNIT

    act = f["activity"]
    assert act["requests"] == {"allowed": 0, "denied": 5}
    assert act["denials_by_code"] == [
        {
            "code": "circuit_breaker_open",
            "count": 5,
            "channels": {"google_ads": 5},
            "last_at": NOON.timestamp(),
        }
    ]
    newest = act["breaker_timeline"][0]
    assert (newest["previous"], newest["state"]) == ("closed", "open")
    assert newest["cause"] == ch["breaker"]["cause"]
    assert any(a["alert_type"] == "circuit_breaker_open" for a in act["alerts"])
    assert f["config_applied_at"] == (NOON - timedelta(minutes=730)).timestamp()
    changed = {t["name"]: t["value"] for t in f["thresholds"] if not t["default"]}
    assert changed == {"breaker_cooldown_s": 600}


def test_page_shows_curve_points_breaker_and_denials(desk: Desk) -> None:
    cid = f"c-{uuid.uuid4().hex[:8]}"
    desk.morning(cid)
    f = desk.facts(cid)
    html = render.campaign_fragment(f)
    tags = parse(html)
    points = [a for t, a in tags.tags if t == "circle" and a.get("class") == "spend-point"]
    assert len(points) == len(f["channels"][0]["curve"]["actual"]) == 14
    assert any(t == "polyline" and a.get("class") == "plan" for t, a in tags.tags)
    assert any(t == "polyline" and a.get("class") == "yesterday" for t, a in tags.tags)
    text = " ".join(" ".join(tags.text).split())
    assert "OPEN" in text and f["channels"][0]["breaker"]["cause"] in text
    assert re.search(r"circuit_breaker_open 5 google_ads 5", text)
    assert "breaker_cooldown_s 600" in text
    assert "last changed 2026-03-01 23:50:00" in text
    assert "1,110.00" in text  # spent, in currency units


def test_ids_are_escaped_everywhere(desk: Desk) -> None:
    desk.budget(NASTY_ID, 100 * UNIT)
    desk.spend(NASTY_ID, 3 * UNIT, NOON)
    desk.can_spend(NASTY_ID, 500 * UNIT)  # refused: more than the day's budget
    f = desk.facts(NASTY_ID)
    live = f"/ui/campaigns/{render.path_id(NASTY_ID)}/live"
    pages = [
        render.page(NASTY_ID, live, render.campaign_fragment(f)),
        render.page(
            "campaigns",
            "/ui/live?q=x",
            render.index_fragment(model.index_facts(desk.table.values(), "<SCRIPT>", NOON)),
            query=NASTY_ID,
        ),
        render.not_found(NASTY_ID),
    ]
    for html in pages:
        tags = parse(html)
        scripts = [a for t, a in tags.tags if t == "script"]
        assert scripts == [{"src": "/ui/static/ui.js", "defer": None}]
        assert "<script>alert" not in html
        assert NASTY_ID in "".join(tags.text) or any(
            NASTY_ID in (v or "") for _, a in tags.tags for v in a.values()
        )
    main = next(a for t, a in parse(pages[0]).tags if t == "main")
    assert main["data-src"] == live
    assert "/" not in live.removeprefix("/ui/campaigns/").removesuffix("/live")
    links = [a["href"] for t, a in parse(pages[1]).tags if t == "a" and a.get("class") == "cid"]
    assert links == [f"/ui/campaigns/{render.path_id(NASTY_ID)}"]
    encoded = render.path_id(NASTY_ID)
    assert "%3Cscript%3E" in encoded and "%E6%BC%A2%E5%AD%97" in encoded
    assert not set("/?#<>\"' ") & set(encoded)


def test_index_searches_by_id_and_ranks_by_pace(desk: Desk) -> None:
    hot = f"hot-{uuid.uuid4().hex[:6]}"
    calm = f"calm-{uuid.uuid4().hex[:6]}"
    for cid in (hot, calm):
        desk.budget(cid, 1000 * UNIT)
    now = desk.clock.advance(3600)  # an hour after the budgets: 1/12 of the day planned
    desk.spend(hot, 200 * UNIT, now)
    desk.spend(calm, 1 * UNIT, now)
    everything = model.index_facts(desk.table.values(), "", now)
    assert [c["campaign_id"] for c in everything["campaigns"]] == [hot, calm]
    assert everything["campaigns"][0]["pace_ratio"] > everything["campaigns"][1]["pace_ratio"]
    assert everything["campaigns"][0]["pace_ratio"] == pytest.approx(200 / (1000 / 12), rel=0.01)
    assert (
        everything["campaigns"][0]["spent_micros"],
        everything["campaigns"][0]["budget_micros"],
    ) == (200 * UNIT, 1000 * UNIT)
    html = render.index_fragment(everything)
    assert [a["href"] for t, a in parse(html).tags if t == "a"] == [
        f"/ui/campaigns/{hot}",
        f"/ui/campaigns/{calm}",
    ]
    found = model.index_facts(desk.table.values(), calm.upper(), now)
    assert (found["total"], found["matched"]) == (2, 1)
    assert found["campaigns"][0]["campaign_id"] == calm


def _terminal(renderable: Any) -> str:
    from rich.console import Console

    console = Console(record=True, width=220, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_terminal_view_shows_the_same_facts(desk: Desk) -> None:
    from pacer_stream.streams.ui import terminal

    cid = f"c-{uuid.uuid4().hex[:8]}"
    desk.morning(cid)
    f = desk.facts(cid)
    text = _terminal(terminal.campaign_view(f))
    cause = f["channels"][0]["breaker"]["cause"]
    assert cid in text
    assert f"OPEN {cause}" in text
    assert re.search(r"circuit_breaker_open\s+│\s+5\s+│\s+google_ads 5", text)
    assert "CLOSED → OPEN" in text
    assert "1,110.00" in text and "breaker_cooldown_s=600" in text
    # spend per hour today: nothing before 06:00, then the morning, then the runaway
    assert terminal.sparkline(f["channels"][0]["curve"]).startswith("▁▁▁▁▁▁▁")


def test_terminal_view_neutralises_hostile_ids(desk: Desk) -> None:
    from pacer_stream.streams.ui import terminal

    hostile = "[red]x[/red]\x1b[2J\x07" + NASTY_ID  # the wire refuses control characters;
    cid = f"c-{uuid.uuid4().hex[:8]}"  # the terminal view does not rely on it
    desk.budget(cid, 100 * UNIT)
    f = dict(desk.facts(cid), campaign_id=hostile)
    text = _terminal(terminal.campaign_view(f))
    assert "[red]x[/red]" in text  # shown literally, not as markup
    assert "\x1b" not in text and "\x07" not in text


def test_watch_redraws_and_survives_a_failed_fetch(desk: Desk) -> None:
    from rich.console import Console

    from pacer_stream.streams.ui import terminal

    cid = f"c-{uuid.uuid4().hex[:8]}"
    desk.budget(cid, 100 * UNIT)
    answers: list[Any] = [RuntimeError("worker not reachable"), desk.facts(cid)]
    slept: list[float] = []

    def fetch() -> dict[str, Any]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return dict(answer)

    def run(iterations: int) -> str:
        console = Console(record=True, width=200, color_system=None)
        terminal.watch(
            fetch, console=console, interval=2.5, iterations=iterations, sleep=slept.append
        )
        return console.export_text()

    assert "not refreshed: worker not reachable (retrying)" in run(1)
    answers.insert(0, RuntimeError("worker restarting"))
    text = run(2)  # a failure, then the campaign: the watch went on and redrew
    assert cid in text and "every 2.5 s" in text and "not refreshed" not in text
    assert slept == [2.5] and answers == []


def test_config_change_time_survives_the_changelog(desk: Desk) -> None:
    """The table value carries when the configuration last changed (a restarted worker
    rebuilds it from the changelog); values written before the field existed load."""
    from pacer_stream.streams import stored as codec

    cid = f"c-{uuid.uuid4().hex[:8]}"
    desk.budget(cid, 100 * UNIT)
    value = desk.table[cid]
    again = codec.loads(codec.dumps(value))
    assert again.config_applied_at == value.config_applied_at == NOON.timestamp()
    assert again.config_updated_at == NOON.timestamp()
    older = orjson.loads(codec.json_of(codec.dumps(value)))
    del older["c"]
    legacy = codec.loads(orjson.dumps(older))
    assert legacy.config_applied_at is None and legacy.state.campaign_id == cid
