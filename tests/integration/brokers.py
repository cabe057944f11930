"""Private Kafka brokers for fault and security tests, started by ``scripts/services.sh``.

A test that stops, kills or locks down a broker must never touch the shared one
(``127.0.0.1:9092``, used by every other test): each :class:`PrivateKafka` has its own
state directory and free loopback ports, and is started and stopped through the same
script (and jars) as the shared broker -- with SASL/SCRAM users when asked.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

from .conftest import _free_port as free_port

REPO = Path(__file__).resolve().parents[2]
SERVICES = REPO / "scripts" / "services.sh"


class PrivateKafka:
    """One single-node KRaft broker on free ports; data survives ``stop``/``start``."""

    def __init__(self, state_dir: Path, scram_users: dict[str, str] | None = None) -> None:
        self.state_dir = state_dir
        self.port = free_port()
        self.controller_port = free_port()
        self.scram_users = dict(scram_users or {})

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "SERVICES_DIR": str(self.state_dir),
                "SERVICES_KAFKA_PORT": str(self.port),
                "SERVICES_KAFKA_CONTROLLER_PORT": str(self.controller_port),
                "SERVICES_KAFKA_SCRAM_USERS": ",".join(
                    f"{u}:{p}" for u, p in self.scram_users.items()
                ),
                "SERVICES_WAIT_S": "120",
            }
        )
        return env

    def _run(self, command: str) -> None:
        done = subprocess.run(
            ["bash", str(SERVICES), command],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=240,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"services.sh {command} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            )

    def start(self) -> None:
        self._run("start-kafka")

    def stop(self) -> None:
        """Controlled shutdown (SIGTERM), as in a rolling restart."""
        self._run("stop-kafka")

    def pid(self) -> int | None:
        try:
            return int((self.state_dir / "kafka.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        """SIGKILL the broker (no controlled shutdown)."""
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = (self.state_dir / "kafka.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def admin_properties(self) -> Path:
        """Client properties of the broker's own (super) user, for Kafka's CLI tools."""
        user, password = next(iter(self.scram_users.items()))
        path = self.state_dir / "admin.properties"
        path.write_text(
            "security.protocol=SASL_PLAINTEXT\n"
            "sasl.mechanism=SCRAM-SHA-512\n"
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule "
            f'required username="{user}" password="{password}";\n'
        )
        path.chmod(0o600)
        return path

    def kafka_acls(self, args: list[str]) -> str:
        """Run Kafka's own ACL tool (``kafka-acls.sh``, i.e. ``kafka.admin.AclCommand``)
        as the super user; returns its output, raises on failure."""
        lib = REPO / "scripts" / "kafka" / "lib"
        done = subprocess.run(
            [
                "java",
                "-Xmx256m",
                "-cp",
                f"{lib}/*",
                f"-Dlog4j.configuration=file:{REPO / 'scripts' / 'kafka' / 'log4j.properties'}",
                "kafka.admin.AclCommand",
                *("--bootstrap-server", self.bootstrap),
                *("--command-config", str(self.admin_properties())),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"kafka-acls {args} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout
