"""deploy/redis/users.acl on a real redis-server, and the fast path over TLS."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from string import Template
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError

from pacer_stream.adapters import keys
from pacer_stream.adapters.redis_publisher import RedisPublisher
from pacer_stream.client import FastPathClient, StoreUnavailable
from pacer_stream.core.types import ChannelType, CircuitBreakerState, Code

pytestmark = pytest.mark.redis

CH = ChannelType.NATIVE
ACL_FILE = Path(__file__).resolve().parents[2] / "deploy" / "redis" / "users.acl"


def render_acl(target: Path) -> dict[str, str]:
    """Render users.acl as an operator would (envsubst), with random passwords."""
    passwords = {user: secrets.token_urlsafe(16) for user in ("admin", "worker", "bidder")}
    env = {
        f"PACER_REDIS_{user.upper()}_PASSWORD_SHA256": hashlib.sha256(pw.encode()).hexdigest()
        for user, pw in passwords.items()
    }
    target.write_text(Template(ACL_FILE.read_text()).substitute(env))
    return passwords


@pytest.fixture
async def acl_server(
    redis_server_factory: Callable[..., Any], tmp_path: Path
) -> AsyncIterator[tuple[Any, dict[str, str]]]:
    acl = tmp_path / "users.acl"
    passwords = render_acl(acl)
    server = redis_server_factory(["--aclfile", str(acl)])
    yield server, passwords


def test_acl_file_has_no_secrets_only_placeholders() -> None:
    text = ACL_FILE.read_text()
    assert ">" not in text  # no cleartext passwords
    assert text.count("#${PACER_REDIS_") == 3
    assert "user default off" in text


async def test_bidder_can_reserve_but_cannot_write_state(
    acl_server: tuple[Any, dict[str, str]], unique_id: str
) -> None:
    server, pw = acl_server
    pub = RedisPublisher(server.url, username="pacer-worker", password=pw["worker"], timeout_s=2)
    fp = FastPathClient(server.url, username="pacer-bidder", password=pw["bidder"], timeout_s=2)
    raw = aioredis.Redis.from_url(
        server.url, username="pacer-bidder", password=pw["bidder"], decode_responses=True
    )
    k = keys.channel_keys(unique_id, CH)
    try:
        p = await pub.publish(unique_id, CH, 1_000_000, "closed", 60)
        assert p.accepted
        # The bid engine's whole job works.
        r = await fp.reserve(unique_id, CH, 400_000, "a")
        assert r.allowed and r.code is Code.OK
        assert (await fp.settle(r.reservation_id, 100_000)).refunded_micros == 300_000
        r2 = await fp.reserve(unique_id, CH, 1_000, "b")
        assert (await fp.release(r2.reservation_id)).refunded_micros == 1_000
        assert await fp.breaker_state(unique_id, CH) is CircuitBreakerState.CLOSED
        before = await raw.get(k.allowance)
        assert before is not None and before.startswith("a1|")

        # ...and nothing else: no direct writes of the worker's keys, no admin commands.
        forbidden = [
            ("SET", k.allowance, "a1|99|9999999|99999999999999|0|0|ok|0"),
            ("SET", k.breaker, "b1|closed|99999999999999|0"),
            ("APPEND", k.allowance, "x"),
            ("HSET", k.allowance, "micros", "1"),
            ("PEXPIRE", k.allowance, "1"),
            ("PEXPIRE", k.breaker, "1"),
            ("DEL", k.allowance),
            ("DEL", k.ledger),
            ("UNLINK", k.breaker),
            ("RENAME", k.allowance, k.breaker),
            ("FLUSHALL",),
            ("FLUSHDB",),
            ("KEYS", "*"),
            ("CONFIG", "GET", "*"),
            ("EVAL", "return 1", "0"),
            ("SCRIPT", "LOAD", "return 1"),
            ("SCRIPT", "FLUSH"),
            ("GET", "other:key"),
            ("SET", "other:key", "1"),
            ("GET", "otherprefix:c:native:allowance"),
            ("ACL", "LIST"),
            ("SHUTDOWN",),
        ]
        for cmd in forbidden:
            with pytest.raises(NoPermissionError):
                await raw.execute_command(*cmd)
        # The worker-only script writes strings the bidder may not write: refused too.
        with pytest.raises(StoreUnavailable, match=r"can't run this command"):
            await fp.store._run(
                "publish",
                k.all(),
                ["9", "closed", "60000", "0", "1000", "", "", "ok", "", "0", "abc", "1000"],
            )
        assert await raw.get(k.allowance) == before
        assert (await pub.usage(unique_id, CH)).granted_micros == 1_000_000
        # Every script path works under the bidder's permissions: reclaim of expired
        # reservations, late settles, settles of unknown reservations.
        p2 = await pub.publish(unique_id, CH, 10_000, "closed", 60, reservation_ttl_s=0)
        gone = await fp.reserve(unique_id, CH, 10_000, "ttl0-a")
        assert (await fp.reserve(unique_id, CH, 10_000, "ttl0-b")).allowed  # reclaimed
        assert (await fp.settle(gone.reservation_id, 5)).status.value == "settled_late"
        unknown = keys.reservation_id(unique_id, CH, p2.epoch, "never")
        assert (await fp.settle(unknown, 5)).status.value == "settled_late"
        assert (await fp.release(unknown)).status.value == "already_settled"
    finally:
        await raw.aclose()
        await fp.aclose()
        await pub.aclose()


async def test_worker_is_confined_to_pacer_keys(acl_server: tuple[Any, dict[str, str]]) -> None:
    server, pw = acl_server
    raw = aioredis.Redis.from_url(server.url, username="pacer-worker", password=pw["worker"])
    try:
        for cmd in [
            ("FLUSHALL",),
            ("SET", "other:key", "1"),
            ("CONFIG", "GET", "*"),
            ("KEYS", "*"),
        ]:
            with pytest.raises(NoPermissionError):
                await raw.execute_command(*cmd)
    finally:
        await raw.aclose()


async def test_anonymous_access_is_refused(acl_server: tuple[Any, dict[str, str]]) -> None:
    server, _ = acl_server
    hook: list[Code] = []
    async with FastPathClient(server.url, timeout_s=1, on_fail_closed=hook.append) as fp:
        r = await fp.reserve("c", CH, 1, "a")
    assert r.code is Code.STORE_UNAVAILABLE and hook == [Code.STORE_UNAVAILABLE]


async def test_bidder_cannot_load_scripts_so_it_fails_closed_until_the_worker_does(
    redis_server_factory: Callable[..., Any], tmp_path: Path, unique_id: str
) -> None:
    acl = tmp_path / "users.acl"
    pw = render_acl(acl)
    server = redis_server_factory(["--aclfile", str(acl)])
    admin = aioredis.Redis.from_url(server.url, username="pacer-admin", password=pw["admin"])
    pub = RedisPublisher(server.url, username="pacer-worker", password=pw["worker"], timeout_s=2)
    fp = FastPathClient(server.url, username="pacer-bidder", password=pw["bidder"], timeout_s=2)
    try:
        await pub.publish(unique_id, CH, 1_000, "closed", 60)
        assert (await fp.reserve(unique_id, CH, 1, "a")).allowed
        await admin.script_flush()  # as after a restart or failover
        r = await fp.reserve(unique_id, CH, 1, "b")
        assert not r.allowed and r.code is Code.STORE_UNAVAILABLE
        await pub.load_scripts()
        assert (await fp.reserve(unique_id, CH, 1, "b")).allowed
    finally:
        await admin.aclose()
        await fp.aclose()
        await pub.aclose()


# ---------------------------------------------------------------------- TLS


def make_certs(directory: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1, made with openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        message = "openssl is not installed (scripts/install-tools.sh installs it)"
        if os.environ.get("CI"):  # make test installs it: a skip would hide a broken install
            pytest.fail(message)
        pytest.skip(message)
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt = directory / "redis.key", directory / "redis.csr", directory / "redis.crt"
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
        "/CN=pacer-test-ca", "-keyout", str(ca_key), "-out", str(ca_crt))  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", str(key), "-out", str(csr))  # fmt: skip
    run("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "1", "-extfile", str(ext), "-out", str(crt))  # fmt: skip
    return {"ca": ca_crt, "key": key, "crt": crt}


async def test_fast_path_over_tls_with_acl(
    redis_server_factory: Callable[..., Any], tmp_path: Path, unique_id: str
) -> None:
    certs = make_certs(tmp_path)
    acl = tmp_path / "users.acl"
    pw = render_acl(acl)
    tls_args = [
        *("--aclfile", str(acl)),
        *("--tls-cert-file", str(certs["crt"])),
        *("--tls-key-file", str(certs["key"])),
        *("--tls-ca-cert-file", str(certs["ca"])),
        *("--tls-auth-clients", "no"),
    ]
    server = redis_server_factory(tls_args, tls=True)
    assert server.url.startswith("rediss://")
    ca = str(certs["ca"])
    pub = RedisPublisher(
        server.url, username="pacer-worker", password=pw["worker"], ssl_ca_certs=ca, timeout_s=2
    )
    fp = FastPathClient(
        server.url, username="pacer-bidder", password=pw["bidder"], ssl_ca_certs=ca, timeout_s=2
    )
    # Without the CA the server certificate cannot be verified: fail closed.
    untrusted = FastPathClient(
        server.url, username="pacer-bidder", password=pw["bidder"], timeout_s=2
    )
    # Plain-text Redis protocol against the TLS port: no answer, fail closed.
    plain = FastPathClient(
        server.url.replace("rediss://", "redis://"),
        username="pacer-bidder",
        password=pw["bidder"],
        timeout_s=0.2,
    )
    try:
        await pub.publish(unique_id, CH, 5_000, "closed", 60)
        r = await fp.reserve(unique_id, CH, 2_000, "a")
        assert r.allowed and r.remaining_micros == 3_000
        assert (await fp.settle(r.reservation_id, 2_000)).remaining_micros == 3_000
        assert (await untrusted.reserve(unique_id, CH, 1, "b")).code is Code.STORE_UNAVAILABLE
        assert (await plain.reserve(unique_id, CH, 1, "c")).code is Code.STORE_UNAVAILABLE
    finally:
        for c in (fp, untrusted, plain):
            await c.aclose()
        await pub.aclose()
