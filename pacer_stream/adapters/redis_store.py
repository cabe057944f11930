"""``AllowanceStore`` on Redis: every operation is one EVALSHA of a script in ``lua/``.

Why Lua: a reservation must read the breaker, the allowance and the ledger and update
the ledger as one indivisible step, or two bid engines racing on the last micros could
both win. A script runs atomically on the server, costs one round trip, and reads the
server clock (``TIME``) so no caller's clock can unlock anything.

Scripts are loaded once per connection pool and called by SHA; redis-py's ``Script``
object reloads a script when the server answers NOSCRIPT (after a restart or failover).
A bid-engine ACL user is not allowed ``SCRIPT LOAD``: for it a NOSCRIPT turns into a
fail-closed denial until the worker (whose publisher loads every script) reloads them.

Fail closed: connection errors, timeouts, permission errors and unexpected replies make
``reserve`` deny with ``Code.STORE_UNAVAILABLE`` and ``breaker_state`` return ``None``,
and each such event calls the ``on_fail_closed`` hook (wire it to a counter).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from pacer_stream.adapters import keys
from pacer_stream.adapters.store import (
    FailClosedHook,
    IdempotencyConflict,
    PublishRequest,
    PublishResult,
    Release,
    ReleaseStatus,
    Reservation,
    Settlement,
    SettleStatus,
    StoreUnavailable,
    Usage,
    _noop_hook,
    check_actual,
    check_breaker_state,
    check_publish_args,
    check_reserve_args,
    code_of,
    new_epoch,
    seconds_to_ms,
)
from pacer_stream.connection import redis_options
from pacer_stream.core.types import ChannelType, CircuitBreakerState, Code
from pacer_stream.errors import InvalidAmount, InvalidArgument

#: Script names (files ``lua/<name>.lua``); ``_lib.lua`` is prepended to each.
SCRIPT_NAMES = ("reserve", "settle", "release", "publish", "publish_breaker", "breaker", "usage")
DEFAULT_TIMEOUT_S = 0.05
DEFAULT_POOL_SIZE = 64


def script_source(name: str) -> str:
    """Full text of a script as sent to Redis (helpers + script body)."""
    lua = resources.files("pacer_stream.adapters") / "lua"
    lib = (lua / "_lib.lua").read_text(encoding="utf-8")
    body = (lua / f"{name}.lua").read_text(encoding="utf-8")
    return f"{lib}\n{body}"


def _s(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _raise_caller_error(exc: ResponseError) -> None:
    """Map a script's coded error reply to the typed error a caller expects."""
    text = str(exc)
    head = text.split(" ", 1)[0]
    message = text.split(" script:", 1)[0]
    if head == "INVALID_AMOUNT":
        raise InvalidAmount(message) from None
    if head == "INVALID_ARGUMENT":
        raise InvalidArgument(message) from None
    if head == "IDEMPOTENCY_CONFLICT":
        raise IdempotencyConflict(message) from None


def _cluster_client(
    url: str, timeout_s: float, pool_size: int, extra: dict[str, Any]
) -> RedisCluster:
    """Redis Cluster client: ``url`` names any node, the others are discovered. Every
    script touches the keys of one campaign, which share a slot (``{campaign}`` hash
    tag), so each call goes to exactly one node. Few cluster retries: a node that is
    down must turn into a fast denial (fail closed), not a long retry loop."""
    return RedisCluster.from_url(
        url,
        max_connections=pool_size,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        cluster_error_retry_attempts=1,
        decode_responses=True,
        **extra,
    )


class RedisStore:
    """Redis implementation of :class:`~pacer_stream.adapters.store.AllowanceStore`.

    ``timeout_s`` bounds connect, each socket read/write and the wait for a pooled
    connection; with the default of 50 ms a dead Redis turns into denials quickly
    instead of stalling the bidder's auction. A broken connection is retried once at
    once (safe: every operation is idempotent); timeouts are not retried, since that
    would double the worst-case latency. Callers may retry with the same ids.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        pool_size: int = DEFAULT_POOL_SIZE,
        username: str | None = None,
        password: str | None = None,
        ssl_ca_certs: str | None = None,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        prefix: str = keys.DEFAULT_PREFIX,
        on_fail_closed: FailClosedHook | None = None,
        client: aioredis.Redis | RedisCluster | None = None,
        cluster: bool = False,
    ) -> None:
        if pool_size < 1:
            raise InvalidArgument("pool_size must be at least 1")
        seconds_to_ms(timeout_s, "timeout_s", minimum=0.001)
        self.prefix = prefix
        self.timeout_s = timeout_s
        self._on_fail_closed = on_fail_closed or _noop_hook
        self._owns_client = client is None
        if client is None:
            extra: dict[str, Any] = {}
            if username is not None:
                extra["username"] = username
            if password is not None:
                extra["password"] = password
            if url.startswith("rediss://"):
                # TLS: verify the server against a CA bundle (settings.redis_ssl_ca_certs).
                extra["ssl_cert_reqs"] = "required"
                if ssl_ca_certs is not None:
                    extra["ssl_ca_certs"] = ssl_ca_certs
                if ssl_certfile is not None:
                    extra["ssl_certfile"] = ssl_certfile
                if ssl_keyfile is not None:
                    extra["ssl_keyfile"] = ssl_keyfile
            if cluster:
                client = _cluster_client(url, timeout_s, pool_size, extra)
        if client is None:
            pool = aioredis.BlockingConnectionPool.from_url(
                url,
                max_connections=pool_size,
                timeout=timeout_s,
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                # One immediate retry, on connection errors only: a pooled connection
                # that died with a restarted server fails fast and a fresh one usually
                # works. Safe because every script is idempotent. Timeouts are not
                # retried (that would double the worst-case latency).
                retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
                retry_on_error=[RedisConnectionError],
                decode_responses=True,
                **extra,
            )
            client = aioredis.Redis.from_pool(pool)
        self.redis: aioredis.Redis | RedisCluster = client
        self._scripts: dict[str, AsyncScript] = {
            name: client.register_script(script_source(name)) for name in SCRIPT_NAMES
        }

    @classmethod
    def from_settings(cls, settings: Any = None, **overrides: Any) -> RedisStore:
        """Build from :class:`pacer_stream.settings.Settings` (URL, ACL user, TLS CA and
        client certificate)."""
        if settings is None:
            from pacer_stream.settings import get_settings

            settings = get_settings()
        kwargs = {**redis_options(settings), **overrides}
        return cls(settings.redis_url, **kwargs)

    # ------------------------------------------------------------------ plumbing
    def _keys(self, campaign_id: str, channel: ChannelType | str) -> keys.ChannelKeys:
        return keys.channel_keys(campaign_id, channel, prefix=self.prefix)

    async def _run(self, name: str, keys_: Sequence[str], args: Sequence[str]) -> Any:
        """EVALSHA a script; caller errors become typed errors, anything else from Redis
        becomes :class:`StoreUnavailable` (the callers decide how to fail closed)."""
        try:
            return await self._scripts[name](keys=list(keys_), args=list(args))
        except ResponseError as exc:
            _raise_caller_error(exc)
            raise StoreUnavailable(f"redis rejected {name}: {exc}") from exc
        except (TimeoutError, RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis unavailable during {name}: {exc!r}") from exc
        except (AttributeError, TypeError) as exc:
            # The cluster client, when a node times out, re-reads the topology and closes
            # connections other calls are still using; those surface as AttributeError
            # on a closed stream. Whatever the client library trips over is a denial,
            # never a crash of the bid engine.
            raise StoreUnavailable(f"redis client failed during {name}: {exc!r}") from exc

    async def load_scripts(self) -> list[str]:
        """SCRIPT LOAD every script (worker side), so bid engines that may not load
        scripts find them. Returns the SHAs."""
        shas = []
        try:
            for script in self._scripts.values():
                script.sha = await self.redis.script_load(script.script)
                shas.append(script.sha)
        except (TimeoutError, RedisError, OSError) as exc:
            raise StoreUnavailable(f"could not load scripts: {exc!r}") from exc
        return shas

    def script_shas(self) -> dict[str, str]:
        return {name: s.sha for name, s in self._scripts.items()}

    # ------------------------------------------------------------------ reserve
    async def reserve(
        self, campaign_id: str, channel: ChannelType | str, amount_micros: int, request_id: str
    ) -> Reservation:
        cid, ch, amount, rid = check_reserve_args(campaign_id, channel, amount_micros, request_id)
        try:
            reply = await self._run("reserve", self._keys(cid, ch).all(), [rid, str(amount)])
            allowed = int(reply[0]) == 1
            code = Code.OK if allowed else code_of(_s(reply[1]))
            if allowed and _s(reply[1]) != "ok":
                raise StoreUnavailable(f"inconsistent reserve reply {reply!r}")
            epoch = _s(reply[5])
            replayed = int(reply[7]) == 1
            result = Reservation(
                allowed=allowed,
                code=code,
                # a replayed answer names the original reservation, even when it ended
                reservation_id=(
                    keys.reservation_id(cid, ch, epoch, rid) if allowed or replayed else None
                ),
                remaining_micros=int(reply[2]),
                reason=_s(reply[6]),
                generation=int(reply[3]) if allowed else None,
                expires_at_ms=int(reply[4]) if allowed else None,
                replayed=replayed,
            )
        except StoreUnavailable as exc:
            result = Reservation(False, Code.STORE_UNAVAILABLE, None, 0, str(exc))
        except InvalidArgument:
            raise  # the caller's mistake (e.g. IdempotencyConflict), not the store's
        except (IndexError, ValueError, TypeError) as exc:
            result = Reservation(
                False, Code.STORE_UNAVAILABLE, None, 0, f"unexpected reply from redis: {exc!r}"
            )
        if result.code in (Code.STORE_UNAVAILABLE, Code.STATE_STALE):
            self._on_fail_closed(result.code)
        return result

    # ------------------------------------------------------------------ settle/release
    async def settle(self, reservation_id: str, actual_micros: int) -> Settlement:
        ref = keys.parse_reservation_id(reservation_id)
        actual = check_actual(actual_micros)
        reply = await self._run(
            "settle",
            self._keys(ref.campaign_id, ref.channel).all(),
            [ref.request_id, str(actual), ref.epoch],
        )
        return Settlement(
            status=SettleStatus(_s(reply[0])),
            reservation_id=reservation_id,
            reserved_micros=int(reply[1]),
            actual_micros=int(reply[2]),
            refunded_micros=int(reply[3]),
            excess_micros=int(reply[4]),
            remaining_micros=int(reply[5]),
            replayed=int(reply[6]) == 1,
        )

    async def release(self, reservation_id: str) -> Release:
        ref = keys.parse_reservation_id(reservation_id)
        reply = await self._run(
            "release",
            self._keys(ref.campaign_id, ref.channel).all(),
            [ref.request_id, ref.epoch],
        )
        return Release(
            status=ReleaseStatus(_s(reply[0])),
            reservation_id=reservation_id,
            refunded_micros=int(reply[1]),
            remaining_micros=int(reply[2]),
            replayed=int(reply[3]) == 1,
        )

    # ------------------------------------------------------------------ publish
    async def publish(self, request: PublishRequest) -> PublishResult:
        p = check_publish_args(request, prefix=self.prefix)
        reply = await self._run(
            "publish",
            p.keys.all(),
            [
                str(p.gross),
                p.state.value,
                str(p.ttl_ms),
                str(p.reservation_ttl_ms),
                str(p.retention_ms),
                "" if p.generation is None else str(p.generation),
                "" if p.reported is None else str(p.reported),
                p.limit_code.value,
                p.expected_epoch or "",
                str(p.quarantine_ms),
                new_epoch(),
                str(p.ledger_ttl_ms),
            ],
        )
        return PublishResult(
            accepted=int(reply[0]) == 1,
            generation=int(reply[1]),
            net_micros=int(reply[2]),
            outstanding_micros=int(reply[3]),
            unreported_micros=int(reply[4]),
            previous_generation=int(reply[5]),
            previous_remaining_micros=int(reply[6]),
            settled_micros=int(reply[7]),
            excess_micros=int(reply[8]),
            epoch=_s(reply[9]),
            created=int(reply[10]) == 1,
            lost=int(reply[11]) == 1,
            quarantined=int(reply[12]) == 1,
            quarantine_until_ms=int(reply[13]),
            expires_at_ms=int(reply[14]),
        )

    async def publish_breaker(
        self,
        campaign_id: str,
        channel: ChannelType | str,
        state: CircuitBreakerState | str,
        ttl_s: float,
    ) -> int:
        st = check_breaker_state(state)
        ttl_ms = seconds_to_ms(ttl_s, "ttl_s", minimum=0.001)
        reply = await self._run(
            "publish_breaker", [self._keys(campaign_id, channel).breaker], [st.value, str(ttl_ms)]
        )
        return int(reply[0])

    # ------------------------------------------------------------------ reads
    async def breaker_state(
        self, campaign_id: str, channel: ChannelType | str
    ) -> CircuitBreakerState | None:
        """The published breaker state, or ``None`` when it is missing, stale, or Redis
        cannot be asked -- callers must treat ``None`` as OPEN (fail closed)."""
        k = self._keys(campaign_id, channel)
        try:
            reply = await self._run("breaker", [k.breaker], [])
            state, exp, now = _s(reply[0]), int(reply[1]), int(reply[2])
        except StoreUnavailable:
            self._on_fail_closed(Code.STORE_UNAVAILABLE)
            return None
        if not state or exp <= now:
            self._on_fail_closed(Code.STATE_STALE)
            return None
        try:
            return CircuitBreakerState(state)
        except ValueError:
            self._on_fail_closed(Code.STATE_STALE)
            return None

    async def usage(self, campaign_id: str, channel: ChannelType | str) -> Usage:
        reply = await self._run("usage", self._keys(campaign_id, channel).all(), [])
        state = _s(reply[10])
        return Usage(
            epoch=_s(reply[0]),
            generation=int(reply[1]),
            granted_micros=int(reply[2]),
            consumed_micros=int(reply[3]),
            remaining_micros=int(reply[4]),
            outstanding_micros=int(reply[5]),
            settled_micros=int(reply[6]),
            excess_micros=int(reply[7]),
            expires_at_ms=int(reply[8]),
            quarantine_until_ms=int(reply[9]),
            breaker_state=CircuitBreakerState(state) if state else None,
            now_ms=int(reply[11]),
        )

    async def aclose(self) -> None:
        if self._owns_client:
            await self.redis.aclose()

    async def __aenter__(self) -> RedisStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
