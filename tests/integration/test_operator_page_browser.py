"""The operator page in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, installed by ``scripts/install-tools.sh``) driven by selenium, against
a worker on the local Kafka.

The scripted campaign: its budget arrives late yesterday (a first worker whose clock
reads 23:50 yesterday) with a day of spend; a second worker, reading 12:00 today, takes
over from the changelog; the morning's spend arrives, a runaway trips the google_ads
breaker, and bidders get refused. The test then looks at the page as a person would:
the spend curve drawn with points, the breaker OPEN with its cause, the denial counts
per reason code -- and checks that the page refreshes itself. The screenshot is saved in
the test's own temporary folder (``operator-page.png``).
"""

from __future__ import annotations

import collections
import os
import shutil
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest

from pacer_stream.client.kafka import PacerClient
from pacer_stream.streams.ui.routes import CSP

from .conftest import StreamRun, WorkerProcess, _noon_offset, poll


def _on_both_partitions(n: int) -> list[str]:
    """``n`` fresh campaign ids, half on each of two partitions (the producer's default
    partitioner), so the test never depends on how random ids happen to hash."""
    from aiokafka.partitioner import DefaultPartitioner

    pick = DefaultPartitioner()
    by_partition: dict[int, list[str]] = {0: [], 1: []}
    while min(len(v) for v in by_partition.values()) < n // 2:
        cid = f"own-{uuid.uuid4().hex[:8]}"
        by_partition[pick(cid.encode(), [0, 1], [0, 1])].append(cid)
    return by_partition[0][: n // 2] + by_partition[1][: n - n // 2]

pytestmark = pytest.mark.integration

UNIT = 1_000_000
#: Seconds a browser wait may take (the page polls every few seconds).
BROWSER_WAIT_S = 45
NASTY_ID = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">\'é漢字'


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium from the system packages (never a downloaded browser)."""
    chromium = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        message = "chromium / chromedriver missing (run scripts/install-tools.sh)"
        if os.environ.get("CI"):  # make test installs them: under CI a skip would hide it
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in CI containers
        "--disable-dev-shm-usage",
        "--window-size=1280,1500",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=driver_path, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _fetch(
    url: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


async def _spent(worker: WorkerProcess, cid: str, channel: str, amount: int) -> bool:
    ch = worker.channel(cid, channel)
    return ch is not None and ch["spent_micros"] == amount


async def _configure_yesterday(
    stream_run: StreamRun, workers: Callable[..., WorkerProcess], cids: list[str]
) -> None:
    """A worker whose clock reads 23:50 yesterday receives the budgets and a day of spend."""
    stream_run.offset_s = _noon_offset() - timedelta(hours=12, minutes=10).total_seconds()
    evening = workers("yesterday")
    evening.start()
    await evening.wait_ready()
    client = stream_run.client()
    await client.start()
    try:
        day = stream_run.now().replace(minute=0, second=0, microsecond=0)
        for cid in cids:
            await client.set_budget(
                cid,
                {"google_ads": 1000 * UNIT, "display": 240 * UNIT},
                strategy="even_distribution",
                thresholds={"breaker_cooldown_s": 1800},
            )
        for hour in range(6, 20):
            await client.publish_spend(
                cids[0], "google_ads", 30 * UNIT, event_time=day.replace(hour=hour, minute=15)
            )
        await poll(lambda: _spent(evening, cids[0], "google_ads", 420 * UNIT), what="yesterday")
        for cid in cids[1:]:
            path = quote(cid, safe="")
            await poll(lambda p=path: evening.status(p), what="budget applied")  # type: ignore[misc]
    finally:
        await client.close()
    assert evening.stop() == 0


async def test_operator_page_in_a_real_browser(
    stream_run: StreamRun,
    workers: Callable[..., WorkerProcess],
    browser: Any,
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    cid = f"summer-sale-{uuid.uuid4().hex[:6]}"
    await _configure_yesterday(stream_run, workers, [cid, NASTY_ID])

    stream_run.offset_s = _noon_offset()
    worker = workers("today")
    worker.start()
    await worker.wait_ready()
    client: PacerClient = stream_run.client()
    await client.start()
    try:
        await poll(lambda: worker.status(cid), what="campaign recovered from the changelog")
        today = stream_run.now().replace(minute=30, second=0, microsecond=0)
        for hour in range(6, 12):
            await client.publish_spend(
                cid, "google_ads", 25 * UNIT, event_time=today.replace(hour=hour)
            )
            await client.publish_spend(
                cid, "display", 8 * UNIT, event_time=today.replace(hour=hour)
            )
        await poll(lambda: _spent(worker, cid, "google_ads", 150 * UNIT), what="morning spend")
        # a runaway: unauthorised spend far above the plan within minutes (kept under the
        # day's budget: the replies below then report a remaining amount >= 0)
        for i in range(4):
            await client.publish_spend(cid, "google_ads", 180 * UNIT, event_id=f"runaway-{i}")

        def opened() -> dict[str, Any] | None:
            ch = worker.channel(cid, "google_ads")
            return ch if ch is not None and ch["breaker"]["state"] == "open" else None

        google = await poll(opened, what="google_ads breaker OPEN")
        cause = google["breaker"]["cause"]
        assert cause in {"runaway_velocity", "overspend_ahead_of_plan", "repeated_overspend"}
        # bidders keep asking: refused on google_ads (breaker), and beyond the hour on display
        denied: collections.Counter[str] = collections.Counter()
        for _ in range(6):
            reply = await client.can_spend(cid, "google_ads", 2 * UNIT, timeout_s=10)
            assert not reply.allowed
            denied[reply.code.value] += 1
        for _ in range(3):
            reply = await client.can_spend(cid, "display", 120 * UNIT, timeout_s=10)
            assert not reply.allowed
            denied[reply.code.value] += 1
        assert denied["circuit_breaker_open"] == 6 and len(denied) >= 2

        # --- what a person sees
        url = f"{worker.base}/ui/campaigns/{quote(cid, safe='')}"
        browser.get(url)
        article = browser.find_element(By.CSS_SELECTOR, 'article[data-channel="google_ads"]')
        assert article.find_element(By.CSS_SELECTOR, ".breaker-state").text == "OPEN"
        assert cause in article.find_element(By.CSS_SELECTOR, ".breaker-cause").text
        points = article.find_elements(By.CSS_SELECTOR, "svg.chart circle.spend-point")
        assert len(points) >= 13  # one per hour since midnight, and now
        heights = [float(p.get_attribute("cy")) for p in points]
        assert heights[0] > heights[-1], "the curve rises (SVG y grows downwards)"
        assert article.find_elements(By.CSS_SELECTOR, "svg.chart polyline.plan")
        assert article.find_elements(By.CSS_SELECTOR, "svg.chart polyline.yesterday")
        assert "870.00" in article.find_element(By.CSS_SELECTOR, "dd.spent").text
        # configured by yesterday's worker: the change time came through the changelog
        yesterday = (stream_run.now() - timedelta(days=1)).date().isoformat()
        changed = browser.find_element(By.ID, "config-changed").text
        assert changed.startswith(f"{yesterday} 23:5"), changed

        def shown_denials() -> dict[str, int]:
            """Reason code -> count as the denial table shows them (read in one go: the
            poller may replace the table between two element lookups)."""
            shown: dict[str, int] = browser.execute_script(
                "const out = {};"
                "document.querySelectorAll('#denials tr.denial').forEach(r => {"
                " out[r.dataset.code] = Number(r.querySelector('.count').textContent); });"
                "return out;"
            )
            return shown

        assert shown_denials() == dict(denied)
        timeline = browser.find_elements(By.CSS_SELECTOR, "#breakers tr.transition")
        assert timeline and "OPEN" in timeline[0].text and cause in timeline[0].text
        alerts = browser.find_element(By.CSS_SELECTOR, "#alerts").text
        assert "circuit_breaker_open" in alerts
        browser.save_screenshot(str(tmp_path / "operator-page.png"))

        # the page refreshes itself: a new denial appears without a reload
        browser.execute_script("window.sameDocument = true;")  # gone if the page reloads
        await client.can_spend(cid, "google_ads", 2 * UNIT, timeout_s=10)
        expected = dict(denied, circuit_breaker_open=denied["circuit_breaker_open"] + 1)
        WebDriverWait(browser, BROWSER_WAIT_S, poll_frequency=0.2).until(
            lambda _: shown_denials() == expected
        )
        assert browser.execute_script("return window.sameDocument") is True
        assert "live · updated" in browser.find_element(By.ID, "live-status").text

        # no CSP violation and no script error in the console
        problems = [
            e
            for e in browser.get_log("browser")
            if e["level"] == "SEVERE" or "Content Security Policy" in e["message"]
        ]
        assert problems == []

        # --- the index, its search, and a hostile campaign id
        browser.get(f"{worker.base}/ui?q={quote('<SCRIPT>')}")
        links = browser.find_elements(By.CSS_SELECTOR, "#campaigns a.cid")
        assert [a.text for a in links] == [NASTY_ID]
        links[0].click()
        WebDriverWait(browser, BROWSER_WAIT_S).until(
            lambda b: b.find_elements(By.ID, "campaign-id")
        )
        assert browser.find_element(By.ID, "campaign-id").text == NASTY_ID
        assert browser.execute_script("return window.__xss === undefined") is True
        assert browser.title.startswith(NASTY_ID)

        # --- headers and no write surface
        status, headers, _ = _fetch(url)
        assert status == 200 and headers["Content-Security-Policy"] == CSP
        assert headers["X-Content-Type-Options"] == "nosniff"
        for method in ("POST", "PUT", "DELETE"):
            assert _fetch(url, method)[0] == 405
        assert _fetch(f"{worker.base}/ui/static/..%2Fmodel.py")[0] == 404
        assert _fetch(f"{worker.base}/ui/")[0] == 200
        assert _fetch(f"{worker.base}/ui/campaigns/nobody-{uuid.uuid4().hex}")[0] == 404

        # --- the same facts in the terminal: pacer-stream status --watch
        from typer.testing import CliRunner

        from pacer_stream.cli import app as cli

        args = ["status", cid, "--watch", "--iterations", "1", "--url", worker.base]
        result = CliRunner().invoke(cli, args, env={"COLUMNS": "220"})
        assert result.exit_code == 0, result.output
        assert cid in result.output and f"OPEN {cause}" in result.output
        assert "circuit_breaker_open" in result.output and "CLOSED → OPEN" in result.output

    finally:
        await client.close()


def _assigned(worker: WorkerProcess) -> int:
    code, body = worker.get("/readyz")
    if code != 200:
        return -1
    return int(body["checks"]["kafka"]["assigned_partitions"])


async def test_pages_are_answered_by_the_owner_from_any_worker(
    stream_run: StreamRun,
    workers: Callable[..., WorkerProcess],
    client: PacerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two workers split the partitions, with a bearer token on their views: a campaign's
    page opened on either worker comes from its owner (faust forwards the token), with
    the security headers; without the token nothing is shown; each index lists only its
    own campaigns."""
    token = uuid.uuid4().hex
    monkeypatch.setenv("PACER_WORKER_WEB_TOKEN", token)  # the workers' environment
    auth = {"Authorization": f"Bearer {token}"}
    w1 = workers("w1")
    w2 = workers("w2", data_dir=stream_run.tmp / "worker-data-w2")  # side by side
    w1.start()
    w2.start()
    await w1.wait_ready()
    await w2.wait_ready()
    await poll(lambda: _assigned(w1) == 1 and _assigned(w2) == 1, what="one partition each")
    cids = _on_both_partitions(6)
    for cid in cids:
        await client.set_budget(cid, {"display": 100 * UNIT}, strategy="even_distribution")

    def configured() -> bool:
        return all(
            _fetch(f"{w.base}/ui/api/campaigns/{c}", headers=auth)[0] == 200
            for c in cids
            for w in (w1, w2)
        )

    await poll(configured, what="campaigns configured, seen from both workers")
    partitions = set()
    for cid in cids:
        for w in (w1, w2):
            status, headers, body = _fetch(f"{w.base}/ui/campaigns/{cid}", headers=auth)
            assert status == 200
            assert headers["Content-Security-Policy"] == CSP  # also when forwarded
            assert headers["Content-Type"].startswith("text/html")
            assert f'id="campaign-id">{cid}<' in body.decode()
            refused = _fetch(f"{w.base}/ui/campaigns/{cid}")
            assert refused[0] == 401 and cid.encode() not in refused[2]
            assert refused[1]["Content-Security-Policy"] == CSP
        facts = [
            orjson.loads(_fetch(f"{w.base}/ui/api/campaigns/{cid}", headers=auth)[2])
            for w in (w1, w2)
        ]
        assert facts[0]["partition"] == facts[1]["partition"]
        partitions.add(facts[0]["partition"])
    assert partitions == {0, 1}, "the campaigns landed on both partitions"

    listed = []
    for w in (w1, w2):
        assert _fetch(f"{w.base}/ui/api/campaigns?q=own-")[0] == 401
        index = orjson.loads(_fetch(f"{w.base}/ui/api/campaigns?q=own-", headers=auth)[2])
        listed.append({c["campaign_id"] for c in index["campaigns"]})
    assert listed[0] | listed[1] == set(cids) and not listed[0] & listed[1]
    assert listed[0] and listed[1]
    assert _fetch(f"{w1.base}/ui/static/ui.js")[0] == 200  # assets carry no data
