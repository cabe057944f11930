"""The value of the worker's ``campaigns`` table: one campaign's whole state, plus the
few facts only the stream layer needs, serialised together so they change atomically.

Why one value: a campaign lives on one partition, and the table's changelog records a
campaign's value as one message. Keeping the input-offset high-water marks (inside
:class:`CampaignState`), the accepted command nonces and the fast-path accounting in that
same message means a crash can never persist one without the others.

The campaign's event-id window is the one part of its state that is not in this value:
it grows with the campaign's events, so each id is a record of its own
(:mod:`.event_ids`) and the value stays the same size all day.

* ``partition`` -- the input partition the campaign lives on, so the timers can write
  the changelog and tell active from standby campaigns without an event in hand.
* ``nonces`` -- accepted signed-command nonces -> expiry (replay protection, see
  :mod:`.auth`).
* ``fastpath`` -- per channel, fast-path spend the core has already seen, by Redis
  ledger epoch (``reported_micros`` of the ``RedisPublisher`` contract).
* ``config_applied_at`` / ``config_updated_at`` -- when (worker clock) the last budget
  record was applied, and that record's own ``updated_at``: the operator page shows when
  the configuration last changed, and that must survive restarts. Optional in the
  serialised form (values written before it existed load as ``None``).

A value above :data:`COMPRESS_ABOVE` bytes of JSON is stored zlib-compressed (level 1)
behind a one-byte tag, :data:`COMPRESSED`, that no JSON text starts with: a campaign
value is mostly numbers and keys that repeat per channel, so it shrinks ~4-9x for ~30
µs -- the changelog, its compaction, the RocksDB store and a recovery read that much
less. Uncompressed values still load.

The faust codec wrapping :func:`dumps`/:func:`loads` lives in :mod:`.app` (this module
does not import faust) and is registered as :data:`CODEC_NAME`.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from pacer_stream.core import serde
from pacer_stream.core.state import CampaignState

CODEC_NAME: Final = "pacer-campaign"
#: 2: the event-id window is no longer part of the value (each id is its own record,
#: :mod:`.event_ids`); values of format 1 still load, with their ids.
FORMAT_VERSION: Final = 2
_READABLE: Final = frozenset({1, FORMAT_VERSION})
#: First byte of a compressed value (JSON values start with ``{``, side records ``[``).
COMPRESSED: Final = b"\x01"
#: Values up to this many bytes of JSON are stored as they are (not worth the CPU).
COMPRESS_ABOVE: Final = 512
#: Ledger epochs remembered per channel (a new epoch appears only when Redis lost data).
MAX_EPOCHS: Final = 4


@dataclass(slots=True)
class Stored:
    state: CampaignState
    partition: int
    nonces: dict[str, float] = field(default_factory=dict)
    fastpath: dict[str, dict[str, int]] = field(default_factory=dict)
    config_applied_at: float | None = None
    config_updated_at: float | None = None

    @property
    def campaign_id(self) -> str:
        return self.state.campaign_id

    def add_fastpath_spend(self, channel: str, epoch: str, micros: int) -> None:
        epochs = self.fastpath.setdefault(channel, {})
        epochs[epoch] = epochs.get(epoch, 0) + micros
        while len(epochs) > MAX_EPOCHS:
            del epochs[next(iter(epochs))]

    def fastpath_reported(self, channel: str, epoch: str) -> int:
        return self.fastpath.get(channel, {}).get(epoch, 0)


def dumps(value: Stored) -> bytes:
    data = orjson.dumps(
        {
            "v": FORMAT_VERSION,
            "p": value.partition,
            "s": serde.to_dict(value.state, dedupe=False),
            "n": value.nonces,
            "f": value.fastpath,
            "c": [value.config_applied_at, value.config_updated_at],
        }
    )
    if len(data) > COMPRESS_ABOVE:
        return COMPRESSED + zlib.compress(data, 1)
    return data


def json_of(data: bytes) -> bytes:
    """A stored value's JSON text (decompressed when it was stored compressed)."""
    if data[:1] == COMPRESSED:
        try:
            return zlib.decompress(data[1:])
        except zlib.error as exc:
            raise serde.SerdeError(f"stored campaign does not decompress: {exc}") from exc
    return data


def loads(data: bytes) -> Stored:
    try:
        obj: Any = orjson.loads(json_of(data))
    except orjson.JSONDecodeError as exc:
        raise serde.SerdeError(f"stored campaign is not JSON: {exc}") from exc
    if not isinstance(obj, dict) or obj.get("v") not in _READABLE:
        raise serde.SerdeError("unknown stored campaign format")
    config = obj.get("c") or [None, None]
    return Stored(
        state=serde.from_dict(obj["s"]),
        partition=int(obj["p"]),
        nonces={str(k): float(v) for k, v in obj.get("n", {}).items()},
        fastpath={
            str(c): {str(e): int(m) for e, m in epochs.items()}
            for c, epochs in obj.get("f", {}).items()
        },
        config_applied_at=_opt_float(config[0]),
        config_updated_at=_opt_float(config[1]),
    )


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
