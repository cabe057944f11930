"""Private ``redis-server`` processes for fault tests (the shared Redis is never touched).

Each :class:`PrivateRedis` keeps its port across restarts (clients reconnect to the same
address, as after a real restart) and can be killed (SIGKILL), paused (SIGSTOP -- a hung
server: connections accepted, nothing answered) and resumed, or restarted empty.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import _free_port as free_port


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too (Redis requires <= 55535)."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randint(20_000, 55_000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10_000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


def redis_binary(name: str = "redis-server") -> str:
    """Path of a Redis tool; fails under CI (``make test`` installs Redis), else skips."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (scripts/services.sh installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


class PrivateRedis:
    """One redis-server on a fixed free port with its own directory."""

    def __init__(
        self, workdir: Path, extra_args: list[str] | None = None, *, port: int | None = None
    ) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.extra_args = list(extra_args or [])
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = (self.workdir / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [
                redis_binary(),
                *("--port", str(self.port)),
                *("--bind", "127.0.0.1"),
                *("--dir", str(self.workdir)),
                *("--save", ""),
                *("--maxmemory-policy", "noeviction"),
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 15
        while not self.answers():  # readiness poll, not a timing assumption
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not answer PING")
            time.sleep(0.02)

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16)[:1] in (b"+", b"-")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final save."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused server must be able to die
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def pause(self) -> None:
        """SIGSTOP: the port stays open, the kernel accepts connections, nothing answers."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        # The signal is delivered asynchronously: only once the kernel reports the process
        # stopped ('T') is the server really not answering.
        stat = Path(f"/proc/{self.proc.pid}/stat")
        deadline = time.monotonic() + 5
        while stat.read_text().rsplit(")", 1)[1].split()[0] != "T":
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not stop on SIGSTOP")
            time.sleep(0.005)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def wipe(self) -> None:
        """Delete persisted data (AOF/RDB): the next start is empty."""
        for child in self.workdir.iterdir():
            if child.name != "redis.log":
                if child.is_dir():
                    shutil.rmtree(child)
                else:
                    child.unlink()


class LocalRedisCluster:
    """A real Redis Cluster of ``masters`` primaries (no replicas) on loopback, created
    with ``redis-cli --cluster create`` -- Debian's redis-server, no Docker."""

    def __init__(self, workdir: Path, masters: int = 3, node_timeout_ms: int = 1000) -> None:
        self.nodes = [
            PrivateRedis(
                workdir / f"node-{i}",
                [
                    *("--cluster-enabled", "yes"),
                    *("--cluster-config-file", "nodes.conf"),
                    *("--cluster-node-timeout", str(node_timeout_ms)),
                    *("--appendonly", "yes"),
                    *("--appendfsync", "always"),
                ],
                port=cluster_port(),
            )
            for i in range(masters)
        ]

    @property
    def url(self) -> str:
        """Any node will do: the client discovers the rest."""
        return self.nodes[0].url

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        subprocess.run(
            [
                redis_binary("redis-cli"),
                "--cluster",
                "create",
                *(f"127.0.0.1:{n.port}" for n in self.nodes),
                *("--cluster-replicas", "0"),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.wait_ok()

    def info(self, node: PrivateRedis, *args: str) -> str:
        done = subprocess.run(
            [redis_binary("redis-cli"), "-p", str(node.port), *args],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return done.stdout

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Every node reports ``cluster_state:ok`` (all slots served)."""
        deadline = time.monotonic() + timeout
        while not all("cluster_state:ok" in self.info(n, "cluster", "info") for n in self.nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("Redis Cluster did not reach cluster_state:ok")
            time.sleep(0.1)

    def node_of_slot(self, slot: int) -> PrivateRedis:
        for node in self.nodes:
            for line in self.info(node, "cluster", "nodes").splitlines():
                fields = line.split()
                if "myself" not in fields[2]:
                    continue
                for rng in fields[8:]:
                    lo, _, hi = rng.partition("-")
                    if lo.isdigit() and int(lo) <= slot <= int(hi or lo):
                        return node
        raise LookupError(f"no node serves slot {slot}")

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()
