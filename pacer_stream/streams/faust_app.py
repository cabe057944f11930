"""The worker's faust plumbing, built from settings: the table value's codec, the
``campaigns`` table class, the app class and the app itself.

Why apart from :mod:`.app`: these pieces say how faust is configured and extended (which
store a table uses, which consumer the transport builds, how the broker is reached); the
worker's data flow, timers and lifecycle (:mod:`.app`) only use them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import faust
from faust.serializers import codecs
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import StoreT, TransportT
from yarl import URL

from pacer_stream.connection import kafka_ssl_context
from pacer_stream.fetch_pace import FetchPace
from pacer_stream.settings import Settings
from pacer_stream.streams import consumer as worker_consumer
from pacer_stream.streams import stored as stored_codec
from pacer_stream.streams.intake import BulkTopic
from pacer_stream.streams.side_records import SideRecords, is_side_value
from pacer_stream.streams.stored import Stored
from pacer_stream.streams.stream import PacerStream
from pacer_stream.streams.table_store import (
    DEFAULT_CACHE_VALUES,
    CampaignStore,
    ChangelogWrite,
    MemoryCampaignStore,
)

#: Largest campaign value the changelog accepts (topic ``max.message.bytes``).
MAX_VALUE_BYTES = 8 * 1024 * 1024


class StoredCodec(codecs.Codec):
    """faust codec of the table value (:mod:`.stored`)."""

    def _dumps(self, obj: Any) -> bytes:
        # Agents encode values themselves (so a value that cannot be encoded is caught
        # before anything is produced) and hand the bytes over as they are.
        if isinstance(obj, bytes):
            return obj
        return stored_codec.dumps(obj)

    def _loads(self, s: bytes) -> Any:
        # Event-id and grant records share the changelog (:mod:`.side_records`) and
        # faust decodes every record a recovery reads with the table's codec (dropping
        # one it refuses): their values (JSON arrays) stay bytes, which is what the
        # stores hand over to the worker's indexes.
        if is_side_value(s):
            return s
        return stored_codec.loads(s)


# A codec is registered by name, like a type: once per process.
codecs.register(stored_codec.CODEC_NAME, StoredCodec())


def broker_urls(s: Settings) -> list[str]:
    """faust broker URLs of the comma-separated bootstrap servers."""
    return [f"kafka://{h.strip()}" for h in s.kafka_bootstrap_servers.split(",") if h.strip()]


def broker_credentials(s: Settings) -> Any:
    """faust credentials for SASL/SCRAM and/or TLS (``None`` for PLAINTEXT)."""
    proto = s.kafka_security_protocol.upper()
    if proto == "PLAINTEXT":
        return None
    ssl_context = kafka_ssl_context(s)
    if proto == "SSL":
        return faust.SSLCredentials(ssl_context)
    return faust.SASLCredentials(
        username=s.kafka_sasl_username,
        password=s.kafka_sasl_password,
        ssl_context=ssl_context,
        mechanism=s.kafka_sasl_mechanism,
    )


def table_store_url(s: Settings) -> str:
    """faust store URL of the ``campaigns`` table: RocksDB (under the worker's data
    directory, see :mod:`.table_store`) or memory (rebuilt from the changelog at start)."""
    if s.table_store == "rocksdb":
        return "rocksdb://"
    if s.table_store == "memory":
        return "memory://"
    raise ValueError(f"table_store must be 'rocksdb' or 'memory', not {s.table_store!r}")


def rocksdb_options(s: Settings) -> dict[str, int]:
    """RocksDB options per changelog partition: faust's defaults (a 2 GiB block cache
    and three 64 MiB write buffers per partition database) are sized for one big table
    per machine; ours come from the settings."""
    mib = 1024 * 1024
    return {
        "block_cache_size": s.rocksdb_block_cache_mib * mib,
        "write_buffer_size": s.rocksdb_write_buffer_mib * mib,
        "max_write_buffer_number": 2,
    }


def web_host(s: Settings) -> str:
    """The host other workers use to reach this one's views (faust routes a campaign's
    view to the worker that owns it): the configured host, else the bind address when it
    is a specific one (loopback in development, the pod address in Kubernetes)."""
    if s.worker_web_host:
        return s.worker_web_host
    if s.worker_web_bind not in ("0.0.0.0", "::", ""):
        return s.worker_web_bind
    import socket

    return socket.gethostname()


class CampaignTable(faust.Table[str, Stored]):
    """faust 0.15 derives a table's serializers from its key/value types when the table
    is built (its changelog topic is created right then): ours are raw ``str`` keys and
    the :mod:`.stored` codec for values, so writes *and* recovery use them.

    With the RocksDB store (:mod:`.table_store`) every changelog write of the table goes
    through :meth:`changelog_sending` / :meth:`changelog_done`, so the local database
    only ever holds what the broker acknowledged; with the memory store both are no-ops.
    """

    #: Decoded values the RocksDB store keeps in memory (set before the store is built).
    cache_values: int = DEFAULT_CACHE_VALUES
    #: The worker's event-id windows and grant records: both stores hand them the
    #: records beside the values that a recovery reads (set before the store is built).
    side_records: SideRecords | None = None

    def _serializer_from_type(self, typ: Any) -> str:
        return "raw" if typ is str else stored_codec.CODEC_NAME

    def _new_store(self) -> StoreT:
        # faust picks ``self._store or app.conf.store``, and ``URL("rocksdb://")`` is
        # falsy (no host, no path): the table's own store must win.
        return self._new_store_by_url(self._store if self._store is not None else "memory://")

    def _new_store_by_url(self, url: str | URL) -> StoreT:
        scheme = URL(str(url)).scheme
        if scheme not in ("memory", "rocksdb"):
            return super()._new_store_by_url(url)  # type: ignore[no-any-return]
        common: dict[str, Any] = {
            "table_name": self.name,
            "key_type": self.key_type,
            "key_serializer": self.key_serializer,
            "value_serializer": self.value_serializer,
            "value_type": self.value_type,
            "loop": self.loop,
            "options": self.options,
        }
        if scheme == "memory":
            return MemoryCampaignStore(url, self.app, self, **common)
        return CampaignStore(url, self.app, self, cache_values=self.cache_values, **common)

    def saved(self, prefix: bytes, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """Records beside the values that the local store holds, by key prefix (RocksDB:
        on disk; the memory store holds none: a recovery hands them over as it reads)."""
        store = self.data
        if isinstance(store, CampaignStore):
            yield from store.saved(prefix, partition)

    def changelog_sending(
        self, key: str, partition: int, value: Stored | None = None
    ) -> ChangelogWrite | None:
        """A changelog write of ``key`` is about to be handed to the producer."""
        store = self.data
        if isinstance(store, CampaignStore):
            return store.writing(key, partition, value)
        return None

    def changelog_done(
        self, write: ChangelogWrite | None, data: bytes | None, fut: asyncio.Future[Any]
    ) -> None:
        """Done-callback of a changelog write: the delivered bytes go to disk."""
        store = self.data
        if write is None or not isinstance(store, CampaignStore):
            return
        if fut.cancelled() or fut.exception() is not None:
            store.failed(write)
        else:
            store.written(write, data, int(fut.result().offset))


class PacerApp(faust.App):
    """faust's app, plus two things: the worker's consumer (:mod:`.consumer`: input
    partitions never committed are read again from their earliest offset after a
    rebalance, not skipped past the records faust dropped), and one hook: before faust
    waits for every record in hand to be acknowledged (partitions revoked, shutdown),
    the worker writes the values it has deferred, whose records are held unacknowledged
    until then (:mod:`.value_writes`); without it that wait would outlast the timers
    that write them."""

    before_wait_empty: Callable[[], Awaitable[None]] | None = None
    #: Input topics whose records reach their agent a fetch at a time (:mod:`.intake`).
    bulk_topics: dict[str, BulkTopic]
    #: How long the broker may hold the consumer's fetch while idle, and for how many
    #: bytes within how long while records flow (:class:`.consumer.ConsumerThread`,
    #: :mod:`pacer_stream.fetch_pace`).
    fetch_pace: FetchPace | None

    def __init__(
        self,
        *args: Any,
        fetch_pace: FetchPace | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.bulk_topics = {}
        self.fetch_pace = fetch_pace

    def _new_transport(self) -> TransportT:
        transport: TransportT = super()._new_transport()
        if type(transport) is aiokafka_driver.Transport:
            return worker_consumer.Transport(self.conf.broker_consumer, self)
        return transport

    async def _consumer_wait_empty(self, consumer: Any, logger: Any) -> None:
        if self.before_wait_empty is not None:
            await self.before_wait_empty()
        await super()._consumer_wait_empty(consumer, logger)


def build_app(s: Settings) -> PacerApp:
    """faust's app from the settings: the broker and its credentials, the table store,
    at-least-once processing, the web server, and the producer and session limits the
    worker relies on."""
    return PacerApp(
        s.app_id,
        fetch_pace=FetchPace(
            idle_wait_ms=s.consumer_fetch_max_wait_ms,
            busy_min_bytes=s.consumer_busy_fetch_min_bytes,
            busy_wait_ms=s.consumer_busy_fetch_wait_ms,
        ),
        broker=broker_urls(s),
        broker_credentials=broker_credentials(s),
        store=table_store_url(s),
        processing_guarantee="at_least_once",
        topic_partitions=s.topic_partitions,
        topic_replication_factor=s.topic_replication_factor,
        topic_disable_leader=True,
        datadir=s.worker_data_dir,
        web_enabled=True,
        web_port=s.worker_web_port,
        web_bind=s.worker_web_bind,
        web_host=web_host(s),
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=False,
        key_serializer="raw",
        value_serializer="raw",
        broker_commit_interval=1.0,
        # Changelog values are whole campaign states (KiBs, more with a busy dedupe
        # window): with aiokafka's 16 KiB default a batch holds one or two of them
        # and, with one request in flight per partition, produce throughput
        # collapses. Larger batches and requests (the changelog topic allows
        # MAX_VALUE_BYTES per record, see the table).
        producer_max_batch_size=512 * 1024,
        producer_max_request_size=MAX_VALUE_BYTES,
        # A killed worker's partitions move after this long (faust's default: 60 s).
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        producer_linger_ms=0,
        stream_recovery_delay=0.0,
        autodiscover=False,
        worker_redirect_stdouts=False,
        Stream=PacerStream,
    )


def campaign_table(app: PacerApp, s: Settings) -> CampaignTable:
    """The ``campaigns`` table (campaign_id -> Stored, the campaign's whole state):
    changelog-backed, kept in RocksDB under the data directory or in memory
    (``table_store``); not yet added to the app's tables."""
    table = CampaignTable(
        app,
        name="campaigns",
        default=None,
        beacon=app.tables.beacon,
        key_type=str,
        partitions=s.topic_partitions,
        store=table_store_url(s),
        options=rocksdb_options(s) if s.table_store == "rocksdb" else None,
        extra_topic_configs={"max.message.bytes": str(MAX_VALUE_BYTES)},
        help="campaign_id -> CampaignState (+ offset marks, nonces, fast-path counts)",
    )
    table.cache_values = s.table_cache_values
    return table
