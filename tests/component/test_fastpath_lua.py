"""The Lua scripts themselves: strict parsing, key layout, script loading.

These call the scripts directly (raw EVALSHA arguments), bypassing the Python
validation, because the scripts must defend themselves: any client in any language
may call them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from redis.crc import key_slot
from redis.exceptions import ResponseError

from pacer_stream.adapters import keys
from pacer_stream.adapters.redis_store import SCRIPT_NAMES, RedisStore, script_source
from pacer_stream.adapters.store import PublishRequest
from pacer_stream.core.types import ChannelType

pytestmark = pytest.mark.redis

CH = ChannelType.SEARCH

BAD_MICROS = [
    "1.5",
    "1e3",
    "1E3",
    "0x10",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "-5",
    "+5",
    " 5",
    "5 ",
    "5\n",
    "\t5",
    "",
    "9007199254740992",
    "9007199254740993",
    "99999999999999999999",
    "007",
    "00",
    "1_000",
    "1,000",
    "５",
    "5.",
    ".5",
    "-0",
    "0b101",
    "true",
]


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisStore]:
    s = RedisStore(redis_url, timeout_s=2.0)
    yield s
    await s.aclose()


async def run(store: RedisStore, name: str, cid: str, args: list[str]) -> object:
    k = keys.channel_keys(cid, CH)
    ks = [k.breaker] if name in ("publish_breaker", "breaker") else k.all()
    return await store._scripts[name](keys=ks, args=args)


def publish_args(gross: str = "1000", ttl: str = "30000") -> list[str]:
    return [gross, "closed", ttl, "60000", "300000", "", "", "hourly_cap_reached", "", "0",
            "abc123", "172800000"]  # fmt: skip


@pytest.mark.parametrize("bad", BAD_MICROS)
async def test_reserve_rejects_non_canonical_amounts(
    store: RedisStore, unique_id: str, bad: str
) -> None:
    await run(store, "publish", unique_id, publish_args())
    with pytest.raises(ResponseError, match=r"^INVALID_AMOUNT"):
        await run(store, "reserve", unique_id, ["req", bad])
    usage = await store.usage(unique_id, CH)
    assert usage.consumed_micros == 0


@pytest.mark.parametrize("bad", BAD_MICROS)
async def test_settle_and_publish_reject_non_canonical_amounts(
    store: RedisStore, unique_id: str, bad: str
) -> None:
    await run(store, "publish", unique_id, publish_args())
    epoch = (await store.usage(unique_id, CH)).epoch
    with pytest.raises(ResponseError, match=r"^INVALID_AMOUNT"):
        await run(store, "settle", unique_id, ["req", bad, epoch])
    with pytest.raises(ResponseError, match=r"^INVALID_AMOUNT"):
        await run(store, "publish", unique_id, publish_args(gross=bad))
    assert (await store.usage(unique_id, CH)).generation == 1


async def test_reserve_zero_is_rejected_but_settle_zero_is_fine(
    store: RedisStore, unique_id: str
) -> None:
    await run(store, "publish", unique_id, publish_args())
    with pytest.raises(ResponseError, match=r"^INVALID_AMOUNT .*positive"):
        await run(store, "reserve", unique_id, ["req", "0"])
    reply = await run(store, "reserve", unique_id, ["req", "1000"])
    assert reply[0] == 1
    epoch = (await store.usage(unique_id, CH)).epoch
    settled = await run(store, "settle", unique_id, ["req", "0", epoch])
    assert settled[0] == "settled" and settled[3] == 1000


@pytest.mark.parametrize("good", ["1", "10", "9007199254740991", "1000000000000000"])
async def test_canonical_amounts_are_exact(store: RedisStore, unique_id: str, good: str) -> None:
    await run(store, "publish", unique_id, publish_args(gross="9007199254740991"))
    reply = await run(store, "reserve", unique_id, ["req", good])
    assert reply[0] == 1 and reply[2] == 9007199254740991 - int(good)


@pytest.mark.parametrize("bad", ["1.5", "1e3", " 5", "+5", "", "x", "-0", "007"])
async def test_durations_are_parsed_strictly(store: RedisStore, unique_id: str, bad: str) -> None:
    with pytest.raises(ResponseError, match=r"^INVALID_ARGUMENT"):
        await run(store, "publish", unique_id, publish_args(ttl=bad))
    with pytest.raises(ResponseError, match=r"^INVALID_ARGUMENT"):
        await run(store, "publish_breaker", unique_id, ["open", bad])


@pytest.mark.parametrize(
    "args",
    [
        ["", "5"],  # empty request id
        ["x" * 129, "5"],  # too long
    ],
)
async def test_reserve_rejects_bad_request_ids(
    store: RedisStore, unique_id: str, args: list[str]
) -> None:
    await run(store, "publish", unique_id, publish_args())
    with pytest.raises(ResponseError, match=r"^INVALID_ARGUMENT"):
        await run(store, "reserve", unique_id, args)


async def test_publish_rejects_unknown_breaker_state_and_bad_tokens(
    store: RedisStore, unique_id: str
) -> None:
    args = publish_args()
    args[1] = "CLOSED"
    with pytest.raises(ResponseError, match=r"^INVALID_ARGUMENT"):
        await run(store, "publish", unique_id, args)
    args = publish_args()
    args[10] = "not a token!"
    with pytest.raises(ResponseError, match=r"^INVALID_ARGUMENT"):
        await run(store, "publish", unique_id, args)
    args = publish_args()
    args[7] = "Robert'); DROP"
    with pytest.raises(ResponseError, match=r"^INVALID_ARGUMENT"):
        await run(store, "publish", unique_id, args)


def test_all_keys_of_a_campaign_share_one_cluster_slot() -> None:
    for cid in ("c1", "a:b", "ünïcode", "x" * 128):
        for ch in ChannelType:
            k = keys.channel_keys(cid, ch)
            slots = {key_slot(key.encode()) for key in k.all()}
            assert len(slots) == 1
            assert all(key.startswith(f"pacer:{{{cid}}}:{ch.value}:") for key in k.all())


def test_scripts_are_self_contained_lua_files() -> None:
    for name in SCRIPT_NAMES:
        src = script_source(name)
        assert "local function parse_micros" in src
        code = [line.split("--", 1)[0] for line in src.splitlines()]
        # tostring() of a large integer prints 9.007199254741e+15: never used on numbers.
        assert not any("tostring(" in line for line in code)


async def test_scripts_are_called_by_sha_and_reloaded_after_script_flush(
    redis_server_factory: Callable[..., object], unique_id: str
) -> None:
    server = redis_server_factory()
    s = RedisStore(server.url, timeout_s=2.0)  # type: ignore[attr-defined]
    try:
        await s.publish(PublishRequest(unique_id, CH, 1_000, "closed", 30))
        assert (await s.reserve(unique_id, CH, 10, "a")).allowed
        shas = s.script_shas()
        assert all(await s.redis.script_exists(shas["publish"], shas["reserve"]))
        await s.redis.script_flush()
        assert not any(await s.redis.script_exists(s.script_shas()["reserve"]))
        r = await s.reserve(unique_id, CH, 10, "b")  # NOSCRIPT -> SCRIPT LOAD -> EVALSHA
        assert r.allowed
        assert any(await s.redis.script_exists(s.script_shas()["reserve"]))
    finally:
        await s.aclose()
