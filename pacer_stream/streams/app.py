"""The pacer-stream worker: one faust app whose agents read like the data flow.

::

    pacer.spend.v1 ──────────────► spend_events ─┐
    pacer.budgets.v1 ────────────► budgets ──────┤   campaigns table          ┌► alerts, breakers,
    pacer.commands.v1 ───────────► commands ─────┼─► (one CampaignState per ──┤  replies, DLQ
    pacer.can-spend.requests.v1 ─► can_spend ────┘   campaign, changelog)     └► Redis allowances
                     timers: maintenance (tick), reallocation, pace snapshots

Every input topic carries raw bytes keyed by ``campaign_id`` and is co-partitioned with
the others, so one worker owns a campaign's whole state. Each agent hands the record to
:class:`~pacer_stream.streams.processor.Processor` (decode -> engine -> encoded outputs)
and then does only two things: produce the outputs and write the campaign's table value.
Agents keep faust's default concurrency of 1, so a partition's records are applied in
offset order (which the offset high-water mark relies on).

Delivery: ``processing_guarantee="at_least_once"`` (exactly-once has open bugs in
faust 0.15). faust flushes the producer -- outputs and changelog -- before it commits an
input offset, so a crash replays records whose effects may already be in the changelog;
the high-water mark in the table value makes those replays no-ops.

Timers act only on campaigns whose partition this worker *actively* owns (never standby
replicas) and only while no rebalance or table recovery is in progress. A timer has no
input event, so it writes the changelog explicitly with the campaign's partition
(``Table.send_changelog``).

State is faust's memory store rebuilt from the changelog at start (rocksdb is not
installed); the changelog holds the latest value per campaign (compacted).
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Iterator, Sequence
from typing import Any

import faust
from faust.serializers import codecs
from faust.transport.producer import ProducerBuffer
from faust.types import EventT, TopicT
from faust.web import Request, Response, View
from prometheus_client import generate_latest

from pacer_stream import __version__ as _version
from pacer_stream.adapters.forecast_runner import ForecastRunner
from pacer_stream.core.allocation.strategies import default_registry
from pacer_stream.core.engine import PacingEngine
from pacer_stream.core.forecast.service import ModelRegistry
from pacer_stream.errors import InvalidRecord
from pacer_stream.observability import metrics
from pacer_stream.observability.health import WorkerStatus, bind_worker_status, healthz, readyz
from pacer_stream.observability.logging import configure_logging, get_logger
from pacer_stream.settings import Settings, get_settings
from pacer_stream.streams import stored as stored_codec
from pacer_stream.streams.activity import ActivityLog
from pacer_stream.streams.datadir import DataDir, prepare_data_dir
from pacer_stream.streams.forecasting import submit_trainings
from pacer_stream.streams.processor import Message, Processor, Result
from pacer_stream.streams.redis_sync import REGISTRY as STREAMS_REGISTRY
from pacer_stream.streams.redis_sync import RedisSync
from pacer_stream.streams.stored import Stored
from pacer_stream.streams.ui.routes import register as register_ui

log = get_logger("pacer_stream.worker")


class StoredCodec(codecs.Codec):
    """faust codec of the table value (:mod:`.stored`)."""

    def _dumps(self, obj: Any) -> bytes:
        # Agents encode values themselves (so a value that cannot be encoded is caught
        # before anything is produced) and hand the bytes over as they are.
        if isinstance(obj, bytes):
            return obj
        return stored_codec.dumps(obj)

    def _loads(self, s: bytes) -> Any:
        return stored_codec.loads(s)


codecs.register(stored_codec.CODEC_NAME, StoredCodec())

# faust pauses a stream whenever more than ``max_messages`` produced messages wait in its
# producer buffer and then drains it one message per ``asyncio.wait_for`` -- with one
# changelog message per applied event that pause costs more than the event itself.
# A deeper buffer keeps the stream flowing (messages are still flushed before every
# offset commit, so delivery guarantees do not change).
ProducerBuffer.max_messages = 5_000


def _broker_url(s: Settings) -> list[str]:
    return [f"kafka://{h.strip()}" for h in s.kafka_bootstrap_servers.split(",") if h.strip()]


def _credentials(s: Settings) -> Any:
    """faust credentials for SASL/SCRAM and/or TLS (``None`` for PLAINTEXT)."""
    proto = s.kafka_security_protocol.upper()
    if proto == "PLAINTEXT":
        return None
    ssl_context = None
    if proto in ("SSL", "SASL_SSL"):
        import ssl

        ssl_context = ssl.create_default_context(cafile=s.kafka_ssl_cafile)
        if s.kafka_ssl_certfile:
            ssl_context.load_cert_chain(s.kafka_ssl_certfile, s.kafka_ssl_keyfile)
    if proto == "SSL":
        return faust.SSLCredentials(ssl_context)
    return faust.SASLCredentials(
        username=s.kafka_sasl_username,
        password=s.kafka_sasl_password,
        ssl_context=ssl_context,
        mechanism=s.kafka_sasl_mechanism,
    )


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


#: Largest campaign value the changelog accepts (topic ``max.message.bytes``).
MAX_VALUE_BYTES = 8 * 1024 * 1024

settings = get_settings()
#: Trained forecast models per campaign/channel; PREDICTIVE_ML and ADAPTIVE_HYBRID read
#: them through the engine's strategies. Training runs in an executor (ForecastRunner),
#: never on the event loop; a new model takes effect at the next re-plan.
forecast_models = ModelRegistry()
forecast_runner = ForecastRunner(forecast_models, timeout_s=settings.forecast_timeout_s)
processor = Processor.from_settings(
    settings, engine=PacingEngine(strategies=default_registry(forecast_models.forecaster()))
)
names = processor.names
status = WorkerStatus(redis_configured=settings.redis_publish_enabled)
status.details.update({"app_id": settings.app_id, "version": _version})

app = faust.App(
    settings.app_id,
    broker=_broker_url(settings),
    broker_credentials=_credentials(settings),
    store="memory://",
    processing_guarantee="at_least_once",
    topic_partitions=settings.topic_partitions,
    topic_replication_factor=settings.topic_replication_factor,
    topic_disable_leader=True,
    datadir=settings.worker_data_dir,
    web_enabled=True,
    web_port=settings.worker_web_port,
    web_bind=settings.worker_web_bind,
    web_host=web_host(settings),
    web_stats_enabled=False,
    web_graph_enabled=False,
    web_metrics_enabled=False,
    key_serializer="raw",
    value_serializer="raw",
    broker_commit_interval=1.0,
    # Changelog values are whole campaign states (KiBs, more with a busy dedupe window):
    # with aiokafka's 16 KiB default a batch holds one or two of them and, with one
    # request in flight per partition, produce throughput collapses. Larger batches and
    # requests (the changelog topic allows MAX_VALUE_BYTES per record, see the table).
    producer_max_batch_size=512 * 1024,
    producer_max_request_size=MAX_VALUE_BYTES,
    # A killed worker's partitions move after this long (faust's default is 60 s).
    broker_session_timeout=10.0,
    broker_heartbeat_interval=2.0,
    producer_linger_ms=0,
    stream_recovery_delay=0.0,
    autodiscover=False,
    worker_redirect_stdouts=False,
)


def _raw_topic(name: str) -> TopicT:
    """A topic of raw bytes: decoding is :mod:`pacer_stream.records`' job, so a bad
    payload reaches the agent and goes to the DLQ with its original bytes."""
    return app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.topic_partitions,
    )


spend_topic = _raw_topic(names.spend)
budgets_topic = _raw_topic(names.budgets)
commands_topic = _raw_topic(names.commands)
requests_topic = _raw_topic(names.requests)


class CampaignTable(faust.Table[str, Stored]):
    """faust 0.15 derives a table's serializers from its key/value types when the table
    is built (its changelog topic is created right then): ours are raw ``str`` keys and
    the :mod:`.stored` codec for values, so writes *and* recovery use them."""

    def _serializer_from_type(self, typ: Any) -> str:
        return "raw" if typ is str else stored_codec.CODEC_NAME


#: campaign_id -> Stored (the campaign's whole state); changelog-backed.
campaigns: CampaignTable = app.tables.add(  # type: ignore[assignment]
    CampaignTable(
        app,
        name="campaigns",
        default=None,
        beacon=app.tables.beacon,
        key_type=str,
        partitions=settings.topic_partitions,
        extra_topic_configs={"max.message.bytes": str(MAX_VALUE_BYTES)},
        help="campaign_id -> CampaignState (+ offset high-water marks, nonces, fast-path counts)",
    )
)

_out_topics: dict[str, TopicT] = {}
redis_sync: RedisSync | None = None
#: Input records fully handled by this process (tests wait on it).
events_processed = 0


# ---------------------------------------------------------------------- the data flow
#: (max events, seconds) per batch: a campaign touched several times in a batch writes
#: its changelog value once. Spend favours throughput; can-spend waits at most 1 ms.
SPEND_BATCH = (1000, 0.005)
REQUEST_BATCH = (256, 0.001)


@app.agent(spend_topic, name="spend-events")  # type: ignore[arg-type]
async def spend_events(stream: faust.Stream[bytes]) -> None:
    """Spend events -> engine.record_spend (idempotent) -> alerts, breaker states."""
    async for events in stream.take_events(*SPEND_BATCH):
        await _send_unordered(_process(events))


@app.agent(budgets_topic, name="budgets")  # type: ignore[arg-type]
async def budgets(stream: faust.Stream[bytes]) -> None:
    """Campaign configuration -> engine.configure (same table: same partition)."""
    async for event in stream.events():
        await _send_unordered(_process([event]))


@app.agent(commands_topic, name="commands")  # type: ignore[arg-type]
async def commands(stream: faust.Stream[bytes]) -> None:
    """emergency_stop / resume / reallocate / force_breaker (signed when required)."""
    async for event in stream.events():
        await _send_unordered(_process([event]))


@app.agent(requests_topic, name="can-spend")  # type: ignore[arg-type]
async def can_spend(stream: faust.Stream[bytes]) -> None:
    """Can-spend requests -> engine.reserve -> a reply on the replies topic / reply_to."""
    async for events in stream.take_events(*REQUEST_BATCH):
        await _send_unordered(_process(events))


def _process(events: Sequence[EventT[bytes]]) -> list[Message]:
    """Decode and apply each record in order, produce its outputs, then write the value
    of every campaign the batch changed -- once per campaign.

    Synchronous on purpose: nothing else runs on the event loop between reading a
    campaign's value and queueing its changelog write, so no other agent or timer can
    interleave. Outputs and changelog writes go through faust's producer, which is
    flushed before the batch's input offsets are committed (``take_events`` acks the
    events only after this returns), so a crash replays the whole batch and the offset
    high-water marks make the replay a no-op (the agent awaits the returned replies'
    hand-over to the producer before the batch is acked).

    Returns the records whose order does not matter (replies) for
    :func:`_send_unordered`.
    """
    global events_processed
    touched: dict[str, Stored] = {}
    handled: list[tuple[Any, Result]] = []
    for event in events:
        msg = event.message
        result = processor.handle(msg.topic, msg.partition, msg.offset, msg.key, msg.value, _lookup)
        handled.append((msg, result))
        if result.store is not None:
            cid = result.store.campaign_id
            campaigns.data[cid] = result.store  # visible at once (new campaigns)
            touched[cid] = result.store
    failed = {cid for cid, value in touched.items() if not _write_changelog(cid, value)}
    unordered: list[Message] = []
    for msg, result in handled:
        if result.store is not None and result.store.campaign_id in failed:
            # Its effect could not be made durable: park the record (original bytes)
            # instead of publishing outputs of a state that will not survive a restart.
            result = processor.dead_letter(
                msg.topic,
                msg.partition,
                msg.offset,
                msg.key,
                msg.value,
                STATE_WRITE_FAILED,
                "the campaign's new state could not be written to the changelog; "
                "the campaign is quarantined until the worker restarts",
            )
        for m in result.messages:
            if m.unordered:
                unordered.append(m)
            else:
                _out_topic(m.topic).send_soon(
                    key=m.key, value=m.value, key_serializer="raw", value_serializer="raw"
                )
        _mark(result)
    events_processed += len(events)
    return unordered


#: DLQ code of a record whose campaign state could not be serialised or sent.
STATE_WRITE_FAILED = "state_write_failed"
#: DLQ code of a record for a campaign quarantined after such a failure.
CAMPAIGN_QUARANTINED = "campaign_quarantined"
#: Campaigns whose state could not be written: their in-memory value is dropped (the
#: changelog keeps the last good one, recovered at the next start) and their records go
#: to the DLQ until then, so nothing is decided from a state the changelog does not have.
quarantined: set[str] = set()


def _write_changelog(campaign_id: str, value: Stored) -> bool:
    """Encode and queue one campaign's table value; on failure quarantine the campaign
    (a bug or a value the codec cannot hold must not stop the partition, nor leave the
    table changed without its changelog)."""
    try:
        data = stored_codec.dumps(value)
        campaigns.send_changelog(value.partition, campaign_id, data)
    except Exception as exc:
        log.error(
            "state_write_failed",
            campaign_id=campaign_id,
            partition=value.partition,
            error=f"{type(exc).__name__}: {exc}",
        )
        campaigns.data.pop(campaign_id, None)
        quarantined.add(campaign_id)
        return False
    return True


async def _send_unordered(messages: list[Message]) -> None:
    """Hand replies straight to the Kafka producer, skipping faust's ordered buffer and
    its per-message bookkeeping (replies are independent). They are still flushed
    before the input offsets are committed (faust flushes the whole producer)."""
    producer = app.producer
    for m in messages:
        await producer.send(m.topic, m.key, m.value, None, None, None)


def _lookup(campaign_id: str) -> Stored | None:
    if campaign_id in quarantined:
        raise InvalidRecord(CAMPAIGN_QUARANTINED, f"campaign {campaign_id!r} is quarantined")
    value: Stored | None = campaigns.get(campaign_id)
    return value


def _lookup_quiet(campaign_id: str) -> Stored | None:
    """:func:`_lookup` for the Redis publisher: a quarantined campaign publishes nothing
    (its fast-path allowance then expires: fail closed)."""
    if campaign_id in quarantined:
        return None
    value: Stored | None = campaigns.get(campaign_id)
    return value


def _send(messages: list[Message]) -> None:
    for m in messages:
        _out_topic(m.topic).send_soon(
            key=m.key, value=m.value, key_serializer="raw", value_serializer="raw"
        )


def _out_topic(name: str) -> TopicT:
    topic = _out_topics.get(name)
    if topic is None:
        if len(_out_topics) > 1024:  # reply_to names come from requests: stay bounded
            _out_topics.clear()
        topic = _out_topics[name] = app.topic(
            name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )
    return topic


def _mark(result: Result) -> None:
    sync = redis_sync
    if sync is None:
        return
    for cid, channel, state in result.breakers:
        sync.mark_breaker(cid, channel, state)
    if result.dirty:
        sync.mark(result.dirty)


def _apply_timer_result(result: Result) -> None:
    """Outputs of a timer step; the changelog is written with the campaign's own
    partition because no input event is in hand."""
    if result.store is not None and not _write_changelog(result.store.campaign_id, result.store):
        return
    _send(result.messages)
    _mark(result)


def _remove(value: Stored) -> None:
    """Drop a campaign from the table: a tombstone in the changelog, so compaction
    forgets it too and a restart does not bring it back."""
    campaigns.data.pop(value.campaign_id, None)
    campaigns.send_changelog(value.partition, value.campaign_id, None, value_serializer="raw")
    log.info("campaign_expired", campaign_id=value.campaign_id)


# ---------------------------------------------------------------------- ownership
def _active_partitions() -> set[int]:
    """Input partitions this worker actively owns (standby replicas excluded)."""
    try:
        actives = app.assignor.assigned_actives()
    except Exception:  # not assigned yet
        return set()
    return {tp.partition for tp in actives if tp.topic == names.spend}


def _settled() -> bool:
    """No rebalance or table recovery in progress (the table is complete)."""
    return not (app.rebalancing or app.in_recovery or status.recovering)


def _owned() -> Iterator[Stored]:
    active = _active_partitions()
    if not active:
        return
    for key in list(campaigns.keys()):
        value: Stored | None = campaigns.get(key)
        if value is not None and value.partition in active:
            yield value


async def _sweep(step: str) -> int:
    """Run one timer step over every owned campaign, yielding to the agents regularly."""
    if not _settled():
        return 0
    n = 0
    for value in _owned():
        if step == "tick" and processor.expired(value):
            _remove(value)
            continue
        if step == "tick":
            result = processor.tick(value)
        elif step == "reallocate":
            result = processor.reallocate(value)
        else:
            result = processor.snapshots(value)
        if result.messages or result.store is not None or result.dirty:
            _apply_timer_result(result)
        n += 1
        if n % 200 == 0:
            await asyncio.sleep(0)
    return n


_last_full_publish = 0.0


@app.timer(interval=settings.maintenance_interval_s)  # type: ignore[untyped-decorator]
async def maintenance() -> None:
    """Reservation expiry, breaker cooldowns and alerts made visible promptly; gauges;
    every owned allowance re-published to Redis once per allowance slice."""
    global _last_full_publish
    _refresh_status()
    if not _settled():
        return
    await _sweep("tick")
    owned = list(_owned())
    reservations = 0
    breakers: dict[str, int] = {}
    for value in owned:
        for ch in value.state.channels.values():
            reservations += len(ch.reservations)
            breakers[ch.breaker.state.value] = breakers.get(ch.breaker.state.value, 0) + 1
    metrics.set_reservations_active(reservations)
    metrics.set_breakers(breakers)
    sync = redis_sync
    mono = time.monotonic()
    if sync is not None and mono - _last_full_publish >= settings.allowance_slice_s:
        _last_full_publish = mono
        sync.retain({v.campaign_id for v in owned})
        sync.mark((v.campaign_id, c) for v in owned for c in v.state.channels)
    await _consumer_lag()


async def _consumer_lag() -> None:
    """``pacer_consumer_lag_messages{topic}``: high watermark minus this worker's fetch
    position, summed over its active partitions of each input topic."""
    try:
        actives = [tp for tp in app.assignor.assigned_actives() if tp.topic in names.inputs]
        lag: dict[str, int] = {t: 0 for t in names.inputs}
        for tp in actives:
            position = await app.consumer.position(tp)
            if position is not None:
                lag[tp.topic] += max(0, app.consumer.highwater(tp) - position)
    except Exception:  # metrics must never disturb the worker
        return
    for topic, messages in lag.items():
        metrics.set_consumer_lag(names.logical(topic) or topic, messages)


@app.timer(interval=settings.reallocation_interval_s)  # type: ignore[untyped-decorator]
async def reallocation() -> None:
    """Move unused budget toward the channels that convert (engine.reallocate)."""
    await _sweep("reallocate")


@app.timer(interval=settings.forecast_interval_s)  # type: ignore[untyped-decorator]
async def forecast_training() -> None:
    """Submit due model trainings for owned campaigns; returns at once (the executor
    trains, the runner swaps the model in when it is done)."""
    submitted = submit_trainings(forecast_runner, _owned(), processor.clock.now())
    if submitted:
        log.info("forecast_training_submitted", count=submitted)


@app.timer(interval=settings.snapshot_interval_s)  # type: ignore[untyped-decorator]
async def pace_snapshots() -> None:
    """Periodic pace snapshots per campaign/channel for dashboards."""
    await _sweep("snapshots")


# ---------------------------------------------------------------------- lifecycle
@campaigns.on_recover
async def _on_recovered() -> None:
    """The table is complete again: heal the compacted breakers topic (a crash may have
    lost the last transition) and re-publish every owned allowance."""
    status.on_recovered()
    processor.quota.reset({v.campaign_id for v in _owned() if not v.state.configured})
    healed = 0
    for value in _owned():
        _send(processor.breaker_states(value))
        healed += 1
        if redis_sync is not None:
            redis_sync.mark((value.campaign_id, c) for c in value.state.channels)
    log.info("table_recovered", campaigns=healed, partitions=sorted(_active_partitions()))


@app.on_partitions_revoked.connect  # type: ignore[arg-type]
async def _on_revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
    status.on_rebalance_started()


@app.on_partitions_assigned.connect  # type: ignore[arg-type]
async def _on_assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
    status.on_partitions_assigned(len(_active_partitions()))


def _refresh_status() -> None:
    """A rebalance that ends without anything to recover may not call ``on_recover``:
    recovery is over once faust says so."""
    if status.recovering and status.assignment_received and not app.rebalancing:
        recovery = getattr(app.tables, "recovery", None)
        if recovery is not None and recovery.completed.is_set() and not app.in_recovery:
            status.on_recovered()


@app.task(on_leader=False)  # type: ignore[untyped-decorator]
async def _start() -> None:
    """Worker started: JSON logs, metrics, Redis publisher."""
    global redis_sync
    configure_logging(settings.log_level)
    metrics.set_worker_info(_version, settings.app_id)
    bind_worker_status(status, time.monotonic)
    status.mark_started()
    log.info(
        "worker_started",
        app_id=settings.app_id,
        topics=list(names.inputs),
        partitions=settings.topic_partitions,
        web_port=settings.worker_web_port,
        redis=settings.redis_publish_enabled,
        data_dir=str(app.conf.datadir),
    )
    if data_dir is not None and data_dir.problem:
        log.warning(
            "worker_data_dir_fallback",
            configured=settings.worker_data_dir,
            problem=data_dir.problem,
            data_dir=str(data_dir.path),
        )
    if not settings.redis_publish_enabled:
        return
    from pacer_stream.adapters.redis_publisher import RedisPublisher

    publisher = RedisPublisher.from_settings(settings)
    redis_sync = RedisSync(
        publisher,
        processor,
        lookup=_lookup_quiet,
        owned=lambda p: p in _active_partitions(),
        apply=_apply_timer_result,
        slice_s=settings.allowance_slice_s,
        status=status,
        ping=publisher.store.redis.ping,
    )
    await redis_sync.ping_once()
    try:
        await redis_sync.run()
    finally:
        await publisher.aclose()


@app.task(on_leader=False)  # type: ignore[untyped-decorator]
async def _probe_broker() -> None:
    """Keep ``/readyz`` honest about the broker (see :mod:`.broker_probe`)."""
    from pacer_stream.connection import kafka_options
    from pacer_stream.streams.broker_probe import BrokerProbe

    await BrokerProbe(kafka_options(settings), status).run()


@app.on_before_shutdown.connect  # type: ignore[arg-type]
async def _stopping(sender: Any, *args: Any, **kwargs: Any) -> None:
    status.mark_stopping()


# ---------------------------------------------------------------------- web views
@app.page("/metrics")
class MetricsView(View):
    async def get(self, request: Request) -> Response:
        body, content_type = metrics.render_latest()
        # aiohttp refuses a charset inside ``content_type``: pass the header as is.
        return self.bytes(
            body + generate_latest(STREAMS_REGISTRY), headers={"Content-Type": content_type}
        )


@app.page("/healthz")
class HealthzView(View):
    async def get(self, request: Request) -> Response:
        code, body = healthz(status)
        return self.json(body, status=code)


@app.page("/readyz")
class ReadyzView(View):
    async def get(self, request: Request) -> Response:
        _refresh_status()
        code, body = readyz(status, time.monotonic())
        return self.json(body, status=code)


def unauthorised(view: View, request: Request) -> Response | None:
    """None when the request may read campaign views, else a 401 response.

    With ``settings.worker_web_token`` set, campaign views need ``Authorization: Bearer
    <token>`` (compared in constant time); faust forwards the header when it routes a
    view to the owning worker. Health, readiness and metrics stay open for probes and
    scrapers: they carry no campaign data."""
    token = settings.worker_web_token
    if not token:
        return None
    given = request.headers.get("Authorization", "")
    if hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return None
    return view.json(
        {"error": "unauthorised"}, status=401, headers={"WWW-Authenticate": "Bearer"}
    )


@app.page("/campaigns/{campaign_id}")
class CampaignView(View):
    """Status of one campaign, answered by the worker that owns it (faust routes the
    request to the owner of the key's partition)."""

    async def get(self, request: Request, campaign_id: str) -> Response:
        denied = unauthorised(self, request)
        if denied is not None:
            return denied
        return await self._owned(request, campaign_id)

    @app.table_route(table=campaigns, match_info="campaign_id")  # type: ignore[arg-type]
    async def _owned(self, request: Request, campaign_id: str) -> Response:
        value = campaigns.get(campaign_id) if campaign_id not in quarantined else None
        if value is None:
            return self.json({"error": "unknown campaign", "campaign_id": campaign_id}, status=404)
        return self.json(processor.status(value))


# Operator pages (read-only HTML under /ui): their own module, under the same access
# check as the campaign view; a quarantined campaign shows as unknown.
processor.activity = ActivityLog(started_at=processor.clock.now().timestamp())
ui_views = register_ui(
    app,
    campaigns,
    processor=processor,
    lookup=_lookup_quiet,
    owned=_owned,
    activity=processor.activity,
    authorise=unauthorised,
)


#: Set by :func:`main` (the directory actually used, reported in ``worker_started``).
data_dir: DataDir | None = None


def main() -> None:
    """Run the worker until SIGTERM/SIGINT (graceful: flush, commit, leave the group)."""
    global data_dir
    # Create the data directory (faust creates only its last component), or fall back
    # to a temporary one: the worker starts from any working directory.
    data_dir = prepare_data_dir(settings.worker_data_dir)
    app.conf.datadir = data_dir.path
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), quiet=True)
    worker.execute_from_commandline()
