"""The simulator through Kafka agrees with the simulator in-process.

Starts its own worker (isolated topic prefix, app id, web port and data folder) on the
local Kafka started by ``scripts/services.sh``, drives it with the simulator's bid engine
for two minutes of real time (the worker decides on its own clock), and checks against
the in-process mirror engine that received exactly the same calls:

* every can-spend answer of the worker equals the engine's answer at the worker's
  ``decided_at`` (allowing one marginal disagreement per hundred: timing in ms);
* the worker's books equal the unique spend events sent, to the micro, although a third
  of them were published twice (double counting 0).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pacer_stream.settings import Settings
from pacer_stream.sim.kafka import drive
from pacer_stream.sim.scenario import Faults, Scenario

pytestmark = pytest.mark.integration

BOOTSTRAP = Settings().kafka_bootstrap_servers
READY_S = 90.0


@dataclass(frozen=True)
class Worker:
    prefix: str
    web: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(json.loads(resp.read()).get("status") == "ready")
    except (OSError, ValueError):
        return False


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    run = uuid.uuid4().hex[:8]
    port = _free_port()
    data = tempfile.mkdtemp(prefix="sim-kafka-")
    env = {
        **os.environ,
        "PACER_KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
        "PACER_TOPIC_PREFIX": f"simtest{run}.",
        "PACER_APP_ID": f"simtest-{run}",
        "PACER_WORKER_WEB_PORT": str(port),
        "PACER_WORKER_DATA_DIR": data,
        "PACER_REDIS_PUBLISH_ENABLED": "false",
        # The mirror cannot know when a worker timer would reallocate: keep it off.
        "PACER_REALLOCATION_INTERVAL_S": "86400",
        "PACER_CLOCK_OFFSET_S": "0",
    }
    log = Path(data) / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pacer_stream", "worker"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    web = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_S
        while not _ready(f"{web}/readyz"):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"worker did not get ready:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield Worker(env["PACER_TOPIC_PREFIX"], web)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        shutil.rmtree(data, ignore_errors=True)


def test_streaming_matches_in_process(worker: Worker) -> None:
    scenario = Scenario(
        campaigns=40,
        channels=3,
        faults=Faults(runaway=False, stall=False, late=False, duplicate_share=0.3),
    )
    run = asyncio.run(
        drive(
            BOOTSTRAP,
            seed=5,
            scenario=scenario,
            minutes=2,
            campaigns=3,
            topic_prefix=worker.prefix,
            web_url=worker.web,
        )
    )
    assert run.timeouts == 0
    assert run.requests >= 10, "the window saw too few auctions to compare"
    assert run.agreement >= 0.99 or run.requests - run.agree <= 1, run.disagreements
    assert run.worker_allowed > 0
    tolerance = max(run.worker_authorised_micros, run.mirror_authorised_micros) * 0.02
    assert abs(run.worker_authorised_micros - run.mirror_authorised_micros) <= tolerance
    assert run.duplicates_sent > 0
    assert run.worker_recorded_micros == run.sent_unique_micros, "double counted"
    assert run.mirror_recorded_micros == run.sent_unique_micros
