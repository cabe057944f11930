"""All runtime settings in one class (environment prefix ``PACER_``).

Defaults point at the local services started by ``scripts/services.sh``; production
overrides them through the environment (or a ``.env`` file).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of a pacer-stream process.

    Kafka security (SASL/SCRAM + TLS) and Redis security (ACL user + TLS) are plain
    settings so the same image runs on a laptop and in a locked-down cluster.
    """

    model_config = SettingsConfigDict(env_prefix="PACER_", env_file=".env", extra="ignore")

    # --- Kafka -----------------------------------------------------------------------
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: str = Field(
        default="PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    )
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    topic_partitions: int = 8
    topic_replication_factor: int = 1
    #: Prepended to every topic name (isolated test runs, several deployments sharing a
    #: cluster). Empty in production: the names are then exactly those of topics.yaml.
    topic_prefix: str = ""
    #: Glob (after the prefix) that a can-spend request's ``reply_to`` must match; the
    #: worker never writes replies to its input, output, changelog or internal topics,
    #: whatever the pattern says.
    reply_topic_pattern: str = "pacer.can-spend.replies.*"

    # --- worker ------------------------------------------------------------------------
    app_id: str = "pacer-stream"
    worker_web_port: int = 6066
    #: Address the worker's HTTP views listen on: loopback by default; in Kubernetes
    #: the pod address (``status.podIP``), never every interface by accident.
    worker_web_bind: str = "127.0.0.1"
    #: Host other workers use to reach this one (default: the bind address).
    worker_web_host: str | None = None
    #: When set, campaign views require ``Authorization: Bearer <token>``.
    worker_web_token: str | None = None
    worker_data_dir: str = ".services/worker-data"
    #: Where the worker keeps the campaign table locally: ``rocksdb`` (under
    #: ``worker_data_dir``; a restart reads only the changelog written since, and state
    #: may exceed memory) or ``memory`` (rebuilt from the whole changelog at every start).
    #: Workers running side by side need data directories of their own with ``rocksdb``.
    table_store: Literal["rocksdb", "memory"] = "rocksdb"
    #: With ``rocksdb``: decoded campaign values kept in memory (least recently used are
    #: dropped and re-read from disk; values not yet on disk are always kept).
    table_cache_values: int = Field(default=100_000, ge=1)
    #: With ``rocksdb``, per changelog partition: block cache and write buffer sizes.
    rocksdb_block_cache_mib: int = Field(default=64, ge=1)
    rocksdb_write_buffer_mib: int = Field(default=16, ge=1)
    #: The spend path writes a campaign's changelog value at most once per this many
    #: seconds (records applied meanwhile stay unacknowledged until the write that
    #: covers them is delivered); 0 writes every input batch. A value is KiBs and a
    #: spend event changes a few counters in it: once a second keeps the changelog
    #: near 100 bytes per event (see docs/streaming.md).
    value_write_interval_s: float = Field(default=1.0, ge=0, le=60)
    #: Spend events and can-spend requests reach their agents a fetch at a time instead
    #: of one record at a time through faust's delivery (see docs/streaming.md); off:
    #: faust's per-record path, for comparison.
    bulk_intake: bool = True
    #: Longest the broker holds the worker's fetch while none of its partitions has new
    #: records (ms). The Kafka client keeps one fetch in flight per broker, and it leaves
    #: out the partitions whose records it still buffers: with faust's 1,500 ms, a fetch
    #: for the idle topics (budgets, commands) held that slot while spend events and
    #: requests waited on the broker, up to 1.5 s (see docs/streaming.md). An idle
    #: worker sends at most one empty fetch per this many ms.
    consumer_fetch_max_wait_ms: int = Field(default=20, ge=1, le=1_500)
    #: While records flow (the last fetch brought some), the broker waits for this many
    #: bytes of new records (600: two or three requests), up to
    #: ``consumer_busy_fetch_wait_ms``, before it answers the worker's next fetch; the
    #: first fetch that comes back empty returns to the idle pace (1 byte,
    #: ``consumer_fetch_max_wait_ms``). Fewer, fuller fetches under load: can-spend p99
    #: at 1,000 requests/s 18-24 -> 14-17 ms on a 2-core machine (see docs/streaming.md,
    #: "The broker's fetch pace"). 1: every fetch is answered at its first record.
    consumer_busy_fetch_min_bytes: int = Field(default=600, ge=1, le=1_048_576)
    consumer_busy_fetch_wait_ms: int = Field(default=3, ge=1, le=1_500)
    #: Longest a timer's sweep over the owned campaigns runs before the agents get the
    #: event loop back: a tick costs ~10 µs a campaign and a pace snapshot ~300 µs, so
    #: a fixed count of campaigns held spend events and requests back for up to tens of
    #: milliseconds (see docs/streaming.md, "Timers"). 0: after every campaign.
    timer_slice_ms: float = Field(default=5.0, ge=0, le=1_000)
    snapshot_interval_s: float = 60.0
    #: A campaign nothing happened to since the last pace-snapshot run (no record, no
    #: timer change) is snapshotted again only at the first run this long after the last
    #: full one; the others at every run. Snapshotting every owned campaign every minute
    #: took an idle worker with 100,000 campaign/channels ~30 s of a core a minute (see
    #: docs/streaming.md, "Timers"). 0: every owned campaign at every run.
    snapshot_idle_interval_s: float = Field(default=300.0, ge=0)
    reallocation_interval_s: float = 900.0
    maintenance_interval_s: float = 1.0
    #: Every owned campaign is ticked at least this often (pace and performance alerts
    #: of a campaign without records, its day roll); campaigns with holds, a breaker
    #: away from CLOSED or outputs waiting are ticked every ``maintenance_interval_s``.
    #: Ticking all of them every second cost an idle worker with 100,000 campaigns
    #: 0.70-0.73 of a core (see docs/streaming.md, "Timers").
    maintenance_full_interval_s: float = Field(default=60.0, gt=0)
    #: How often owned campaigns are checked for due forecast trainings, and the hard
    #: timeout of one training in the executor.
    forecast_interval_s: float = 900.0
    forecast_timeout_s: float = 10.0
    max_payload_bytes: int = 64 * 1024
    #: Size cap of one batched spend record (at most 1,000 events each).
    max_batch_payload_bytes: int = 256 * 1024
    #: Campaigns without a budget that spend may create on one worker (then DLQ
    #: ``unbudgeted_campaign_limit``); they expire after the history horizon.
    max_unbudgeted_campaigns: int = 10_000
    #: At most this many alerts per campaign/channel within ``alert_burst_window_s``.
    alert_burst: int = 10
    alert_burst_window_s: float = 300.0
    #: The worker's clock is the wall clock plus this offset (seconds). 0 in production;
    #: tests and replays use it to put the worker at a chosen time of day.
    clock_offset_s: float = 0.0

    # --- Redis fast path ---------------------------------------------------------------
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_username: str | None = None
    redis_password: str | None = None
    redis_ssl_ca_certs: str | None = None
    #: Client certificate and key for mutual TLS with Redis (optional).
    redis_ssl_certfile: str | None = None
    redis_ssl_keyfile: str | None = None
    redis_timeout_s: float = 0.05
    #: ``redis_url`` names one node of a Redis Cluster (the others are discovered).
    redis_cluster: bool = False
    #: After Redis lost a ledger (restarted empty), how long the worker keeps that
    #: campaign/channel's fast path closed: at least the reservation TTL plus the
    #: spend-reporting lag, so reservations granted from the lost ledger are reported first.
    redis_quarantine_s: float = 120.0
    allowance_slice_s: int = 10
    allowance_ttl_s: int = 30
    #: Whether the worker publishes allowances and breaker states to Redis.
    redis_publish_enabled: bool = True

    # --- command authentication --------------------------------------------------------
    require_signed_commands: bool = False
    #: ``key_id:secret`` pairs separated by commas (HMAC-SHA256 keys for commands).
    command_keys: str = ""

    # --- logging -----------------------------------------------------------------------
    log_level: str = "INFO"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
