"""Private ``redis-server`` processes for fault tests (the shared Redis is never touched).

Each :class:`PrivateRedis` keeps its port across restarts (clients reconnect to the same
address, as after a real restart) and can be killed (SIGKILL), paused (SIGSTOP -- a hung
server: connections accepted, nothing answered) and resumed, or restarted empty.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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

    def __init__(self, workdir: Path, extra_args: list[str] | None = None) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
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
