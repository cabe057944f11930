"""Kafka and Redis connection options from the settings, for every process that connects.

Why a module of its own: the worker, the CLI, the bid-engine and operator clients and the
benchmarks all connect to the same cluster with the same security settings (SASL/SCRAM,
TLS); a client must not have to import the worker to build them.
"""

from __future__ import annotations

import ssl
from typing import Any


def kafka_options(settings: Any) -> dict[str, Any]:
    """aiokafka client options (bootstrap servers + security) from the settings."""
    opts: dict[str, Any] = {"bootstrap_servers": settings.kafka_bootstrap_servers}
    proto = str(settings.kafka_security_protocol).upper()
    if proto == "PLAINTEXT":
        return opts
    opts["security_protocol"] = proto
    ctx = kafka_ssl_context(settings)
    if ctx is not None:
        opts["ssl_context"] = ctx
    if proto.startswith("SASL"):
        opts["sasl_mechanism"] = settings.kafka_sasl_mechanism
        opts["sasl_plain_username"] = settings.kafka_sasl_username
        opts["sasl_plain_password"] = settings.kafka_sasl_password
    return opts


def kafka_ssl_context(settings: Any) -> ssl.SSLContext | None:
    """The TLS context of the Kafka connections (CA, client certificate) when the
    security protocol uses TLS (``SSL``, ``SASL_SSL``); None otherwise. The aiokafka
    clients (:func:`kafka_options`) and faust's credentials share it."""
    if str(settings.kafka_security_protocol).upper() not in ("SSL", "SASL_SSL"):
        return None
    ctx = ssl.create_default_context(cafile=settings.kafka_ssl_cafile)
    if settings.kafka_ssl_certfile:
        ctx.load_cert_chain(settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile)
    return ctx


def redis_options(settings: Any) -> dict[str, Any]:
    """Keyword options of the Redis fast-path clients (``RedisStore``, ``FastPathClient``)
    from the settings: timeout, ACL user, TLS CA, client certificate, cluster mode."""
    return {
        "timeout_s": settings.redis_timeout_s,
        "username": settings.redis_username,
        "password": settings.redis_password,
        "ssl_ca_certs": settings.redis_ssl_ca_certs,
        # Mutual TLS: without these a deployment that configured a client certificate
        # would silently connect without one.
        "ssl_certfile": settings.redis_ssl_certfile,
        "ssl_keyfile": settings.redis_ssl_keyfile,
        "cluster": settings.redis_cluster,
    }
