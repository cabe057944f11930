"""Fixtures for component tests (real services on loopback).

* ``redis_url``: the project's Redis (``PACER_REDIS_URL``, default
  ``redis://127.0.0.1:6379/0``, started by ``scripts/services.sh``). Tests that use it
  must isolate themselves with ``unique_id`` campaign ids -- never FLUSH it.
* ``redis_server_factory``: throwaway ``redis-server`` processes on free ports, for tests
  that kill, restart or reconfigure a server (failure, ACL, TLS). Never touch the shared
  one for that.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def _ping(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the shared test Redis. Skips when it is not running on a developer's
    machine, but fails under CI (``make test`` starts Redis: a skip there would hide it)."""
    url = os.environ.get("PACER_REDIS_URL", DEFAULT_REDIS_URL)
    if not _ping(url):
        message = f"Redis not reachable at {url} (start it with scripts/services.sh start)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture
def unique_id() -> str:
    """A campaign id no other test (or earlier run) uses."""
    return f"t-{uuid.uuid4().hex[:12]}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A private redis-server process (no persistence) that a test may kill/restart."""

    def __init__(self, workdir: Path, extra_args: list[str], *, tls: bool = False) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.extra_args = extra_args
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            if os.environ.get("CI"):
                pytest.fail("redis-server is not installed (scripts/services.sh installs it)")
            pytest.skip("redis-server is not installed")
        port = str(self.port)
        port_args = ["--port", "0", "--tls-port", port] if self.tls else ["--port", port]
        self.proc = subprocess.Popen(
            [
                binary,
                *port_args,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        # Readiness poll (not a timing assumption): wait until the server answers.
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            if self.answers():
                return
            time.sleep(0.02)
        raise RuntimeError("redis-server did not become ready")

    def answers(self) -> bool:
        """True once the server answers PING with any RESP reply (+PONG, or -NOAUTH when
        the default user is disabled); TLS is handshaken without verification, and a TLS
        alert counts as an answer."""
        try:
            raw = socket.create_connection(("127.0.0.1", self.port), timeout=0.5)
        except OSError:
            return False
        try:
            conn: socket.socket = raw
            if self.tls:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                conn = ctx.wrap_socket(raw)
            conn.sendall(b"PING\r\n")
            reply = conn.recv(64)
            return reply[:1] in (b"+", b"-")
        except ssl.SSLError:
            # A TLS alert (e.g. "certificate required" from a server that demands client
            # certificates) is an answer: the server is up and speaking TLS.
            return True
        except OSError:
            return False
        finally:
            raw.close()

    def kill(self) -> None:
        """SIGKILL: the server dies without saving (there is nothing to save anyway)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture
def unused_port() -> int:
    """A loopback TCP port nothing listens on (a 'dead Redis' address)."""
    return free_port()


@pytest.fixture
def redis_server_factory(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Call it with extra redis-server arguments to get a started :class:`RedisServer`."""
    servers: list[RedisServer] = []

    def make(extra_args: list[str] | None = None, *, tls: bool = False) -> RedisServer:
        workdir = tmp_path / f"redis-{len(servers)}"
        workdir.mkdir()
        server = RedisServer(workdir, list(extra_args or []), tls=tls)
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.kill()
