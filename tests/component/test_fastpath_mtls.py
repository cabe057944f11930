"""Mutual TLS to Redis: the client certificate in the settings really reaches the wire.

The Redis server here demands a client certificate signed by the test CA
(``--tls-auth-clients yes``). Clients built ``from_settings`` -- the way the worker and
bid engines are built in production -- must present ``redis_ssl_certfile`` /
``redis_ssl_keyfile``; without them, or with a certificate from another CA, the
handshake fails and the fast path fails closed.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pacer_stream.adapters.redis_publisher import RedisPublisher
from pacer_stream.adapters.redis_store import RedisStore
from pacer_stream.client import FastPathClient
from pacer_stream.core.types import ChannelType, Code
from pacer_stream.settings import Settings

from .test_fastpath_acl import make_certs

pytestmark = pytest.mark.redis

CH = ChannelType.SEARCH


def _openssl(*args: str) -> None:
    openssl = shutil.which("openssl")
    assert openssl is not None  # make_certs already required it
    subprocess.run([openssl, *args], check=True, capture_output=True)


def client_cert(directory: Path, ca_crt: Path, ca_key: Path, name: str) -> tuple[Path, Path]:
    """A client certificate (extendedKeyUsage clientAuth) signed by ``ca``."""
    key, csr, crt = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.crt"
    ext = directory / f"{name}.ext"
    ext.write_text("extendedKeyUsage=clientAuth\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
             "-keyout", str(key), "-out", str(csr))  # fmt: skip
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
             "-CAcreateserial", "-days", "1", "-extfile", str(ext), "-out", str(crt))  # fmt: skip
    return crt, key


@pytest.fixture
def mtls(redis_server_factory: Callable[..., Any], tmp_path: Path) -> tuple[Any, dict[str, Path]]:
    certs = make_certs(tmp_path)
    crt, key = client_cert(tmp_path, certs["ca"], tmp_path / "ca.key", "pacer-bidder")
    # A second CA the server does not trust, and a client certificate it signed.
    other = tmp_path / "other"
    other.mkdir()
    other_certs = make_certs(other)
    rogue_crt, rogue_key = client_cert(other, other_certs["ca"], other / "ca.key", "rogue")
    server = redis_server_factory(
        [
            *("--tls-cert-file", str(certs["crt"])),
            *("--tls-key-file", str(certs["key"])),
            *("--tls-ca-cert-file", str(certs["ca"])),
            *("--tls-auth-clients", "yes"),
        ],
        tls=True,
    )
    paths = {"ca": certs["ca"], "crt": crt, "key": key, "rogue_crt": rogue_crt,
             "rogue_key": rogue_key}  # fmt: skip
    return server, paths


def _settings(url: str, ca: Path, crt: Path | None, key: Path | None) -> Settings:
    return Settings(
        redis_url=url,
        redis_ssl_ca_certs=str(ca),
        redis_ssl_certfile=str(crt) if crt else None,
        redis_ssl_keyfile=str(key) if key else None,
        redis_timeout_s=2.0,
    )


def test_from_settings_passes_the_client_certificate(tmp_path: Path) -> None:
    s = _settings("rediss://127.0.0.1:1/0", tmp_path / "ca", tmp_path / "c", tmp_path / "k")
    for store in (RedisStore.from_settings(s), FastPathClient.from_settings(s).store):
        kwargs = store.redis.connection_pool.connection_kwargs
        assert kwargs["ssl_certfile"] == str(tmp_path / "c")
        assert kwargs["ssl_keyfile"] == str(tmp_path / "k")
        assert kwargs["ssl_ca_certs"] == str(tmp_path / "ca")
        assert kwargs["ssl_cert_reqs"] == "required"


async def test_mutual_tls_from_settings(mtls: tuple[Any, dict[str, Path]], unique_id: str) -> None:
    server, p = mtls
    good = _settings(server.url, p["ca"], p["crt"], p["key"])
    pub = RedisPublisher.from_settings(good)
    fp = FastPathClient.from_settings(good)
    hook: list[Code] = []
    no_cert = FastPathClient.from_settings(
        _settings(server.url, p["ca"], None, None), on_fail_closed=hook.append
    )
    rogue = FastPathClient.from_settings(
        _settings(server.url, p["ca"], p["rogue_crt"], p["rogue_key"]),
        on_fail_closed=hook.append,
    )
    try:
        published = await pub.publish(unique_id, CH, 10_000, "closed", 60)
        assert published.accepted
        r = await fp.reserve(unique_id, CH, 4_000, "a")
        assert r.allowed and r.remaining_micros == 6_000
        # Without a certificate, or with one the server's CA did not sign: refused at the
        # handshake, so the fast path denies (fail closed) and grants nothing.
        for client, rid in ((no_cert, "b"), (rogue, "c")):
            denied = await client.reserve(unique_id, CH, 1_000, rid)
            assert not denied.allowed and denied.code is Code.STORE_UNAVAILABLE
        assert hook == [Code.STORE_UNAVAILABLE, Code.STORE_UNAVAILABLE]
        assert (await pub.usage(unique_id, CH)).outstanding_micros == 4_000
    finally:
        for c in (fp, no_cert, rogue):
            await c.aclose()
        await pub.aclose()
