"""The Kafka TLS context is built once from the settings and shared by the aiokafka
options and faust's credentials; plaintext protocols get none."""

from __future__ import annotations

import ssl
from types import SimpleNamespace
from typing import Any

import faust

from pacer_stream.connection import kafka_options, kafka_ssl_context
from pacer_stream.streams.faust_app import broker_credentials


def _settings(protocol: str) -> Any:
    return SimpleNamespace(
        kafka_bootstrap_servers="127.0.0.1:9093",
        kafka_security_protocol=protocol,
        kafka_ssl_cafile=None,
        kafka_ssl_certfile=None,
        kafka_ssl_keyfile=None,
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="pacer",
        kafka_sasl_password="secret",
    )


def test_only_tls_protocols_get_a_context() -> None:
    assert kafka_ssl_context(_settings("PLAINTEXT")) is None
    assert kafka_ssl_context(_settings("sasl_plaintext")) is None
    assert isinstance(kafka_ssl_context(_settings("SSL")), ssl.SSLContext)
    assert isinstance(kafka_ssl_context(_settings("sasl_ssl")), ssl.SSLContext)


def test_aiokafka_options_and_faust_credentials_carry_it() -> None:
    opts = kafka_options(_settings("SASL_SSL"))
    assert isinstance(opts["ssl_context"], ssl.SSLContext)
    assert opts["sasl_plain_username"] == "pacer"
    assert "ssl_context" not in kafka_options(_settings("SASL_PLAINTEXT"))
    tls = broker_credentials(_settings("SSL"))  # type: ignore[arg-type]
    assert isinstance(tls, faust.SSLCredentials)
    assert isinstance(tls.context, ssl.SSLContext)
    sasl = broker_credentials(_settings("SASL_SSL"))  # type: ignore[arg-type]
    assert isinstance(sasl, faust.SASLCredentials)
    assert isinstance(sasl.ssl_context, ssl.SSLContext)
    assert broker_credentials(_settings("PLAINTEXT")) is None  # type: ignore[arg-type]
