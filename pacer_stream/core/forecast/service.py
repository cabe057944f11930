"""Versioned trained models and the forecaster that uses them (never trains).

The split keeps training off the event-processing path:

* :func:`~.training.train` (pure, slow-ish) turns a :class:`~.dataset.HistorySnapshot`
  into a :class:`~.training.TrainedModel`; an adapter runs it in an executor.
* :class:`ModelRegistry` holds the current model per (campaign, channel). Installing a
  new version is one dict assignment (atomic for readers); a result trained on older
  data than the installed one is refused, so out-of-order completions cannot roll a
  model back.
* :class:`RegistryForecaster` is the ``Forecaster`` PREDICTIVE_ML calls while planning a
  day: it looks the model up and predicts ~25 rows. With no usable model it answers with
  :class:`~.predictor.BaselineForecaster` and says why in ``model_version``
  (``baseline:hour-mean-v1 (untrained)``, ``(stale)``, ...).

Install from one thread (the event loop); reads may come from anywhere.

Which campaign/channel a planning context belongs to comes from ``ctx.key`` when the
``AllocationContext`` carries one (``(campaign_id, channel value)``), else from the key
the forecaster was bound to (:meth:`ModelRegistry.bound`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import replace as dc_replace
from datetime import datetime
from typing import TYPE_CHECKING

from pacer_stream.core.allocation.base import AllocationContext
from pacer_stream.core.forecast.dataset import HistorySnapshot
from pacer_stream.core.forecast.predictor import BaselineForecaster, Forecast
from pacer_stream.core.history import HourlyHistory
from pacer_stream.core.state import CampaignState
from pacer_stream.core.validation import epoch_s

if TYPE_CHECKING:
    from pacer_stream.core.forecast.training import TrainedModel

#: (campaign_id, channel value)
ModelKey = tuple[str, str]
#: A model whose data ends more than this many hours before the planned day is stale.
MAX_MODEL_AGE_HOURS = 72

_BASELINE = BaselineForecaster()


def context_key(ctx: AllocationContext) -> ModelKey | None:
    """The (campaign_id, channel) of a planning context, when the context carries one."""
    key = getattr(ctx, "key", None)
    if isinstance(key, tuple) and len(key) == 2:
        return (str(key[0]), str(key[1]))
    return None


def snapshot(history: HourlyHistory, tz: str, now: datetime) -> HistorySnapshot:
    """Copy a channel's history for training (cheap; do it on the event loop).

    Only complete hours (before ``now``'s hour) are included. Raises
    :class:`~.dataset.InvalidHistory` on corrupt buckets.
    """
    until = int(epoch_s(now, what="now") // 3600)
    return HistorySnapshot.from_history(history.buckets, tz, until)


def snapshots_of(
    state: CampaignState,
    now: datetime,
    *,
    drop_invalid: bool = True,
    wanted: Callable[[ModelKey, int, int], bool] | None = None,
) -> list[tuple[ModelKey, HistorySnapshot]]:
    """One training snapshot per channel of a campaign, keyed ``(campaign_id, channel)``.

    With ``drop_invalid`` (default) corrupt buckets are dropped and counted in
    ``snapshot.dropped`` instead of raising :class:`~.dataset.InvalidHistory`.
    ``wanted(key, until_hour, hours_held)``, when given, picks the channels to copy
    before any is copied: a channel's copy costs milliseconds with weeks of history.
    """
    until = int(epoch_s(now, what="now") // 3600)
    out: list[tuple[ModelKey, HistorySnapshot]] = []
    for ch in state.channels.values():
        key = (state.campaign_id, ch.channel.value)
        if wanted is None or wanted(key, until, len(ch.history)):
            snap = HistorySnapshot.from_history(
                ch.history.buckets, state.timezone, until, drop_invalid=drop_invalid
            )
            out.append((key, snap))
    return out


class ModelRegistry:
    """Current trained model per (campaign, channel), with monotone versions."""

    def __init__(self) -> None:
        self._models: dict[ModelKey, TrainedModel] = {}
        self._versions: dict[ModelKey, int] = {}

    def get(self, key: ModelKey) -> TrainedModel | None:
        return self._models.get(key)

    def version(self, key: ModelKey) -> int:
        return self._versions.get(key, 0)

    def keys(self) -> list[ModelKey]:
        return list(self._models)

    def install(self, key: ModelKey, model: TrainedModel) -> TrainedModel | None:
        """Make ``model`` the current one for ``key``; returns it with its version, or
        None when the installed model already learned from newer data."""
        current = self._models.get(key)
        if current is not None and model.data_until_hour < current.data_until_hour:
            return None
        version = self._versions.get(key, 0) + 1
        installed = dc_replace(model, version=version)
        self._versions[key] = version
        self._models[key] = installed  # the swap: readers see old or new, never a mix
        return installed

    def remove(self, key: ModelKey) -> None:
        self._models.pop(key, None)

    def forecaster(self) -> RegistryForecaster:
        """A forecaster that finds the model through ``ctx.key``."""
        return RegistryForecaster(self)

    def bound(self, key: ModelKey) -> RegistryForecaster:
        """A forecaster for one campaign/channel (when contexts carry no key)."""
        return RegistryForecaster(self, key)


@dataclass(frozen=True, slots=True)
class RegistryForecaster:
    registry: ModelRegistry
    key: ModelKey | None = None
    key_of: Callable[[AllocationContext], ModelKey | None] = context_key

    def model_for(self, ctx: AllocationContext) -> tuple[TrainedModel | None, str]:
        """The model to use for ``ctx``, or None and the reason for the baseline."""
        key = self.key if self.key is not None else self.key_of(ctx)
        if key is None:
            return None, "no model key"
        model = self.registry.get(key)
        if model is None:
            return None, "untrained"
        if not model.usable:
            return None, f"insufficient data v{model.version}"
        if model.tz != ctx.day.tz:
            return None, "time zone changed"
        if ctx.day_start_hour - model.data_until_hour > MAX_MODEL_AGE_HOURS:
            return None, f"stale v{model.version}"
        return model, ""

    def predict(self, ctx: AllocationContext) -> Forecast:
        model, reason = self.model_for(ctx)
        if model is not None:
            return model.forecast(ctx)
        f = _BASELINE.predict(ctx)
        return dc_replace(f, model_version=f"baseline:{_BASELINE.version} ({reason})")
