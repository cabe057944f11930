"""Forecasts of conversion rate and cost per click by hour (PREDICTIVE_ML, ADAPTIVE_HYBRID).

Modules (import them directly; this package stays import-light so the engine does not
load numpy / scikit-learn until forecasting is used):

``predictor``  the ``Forecaster`` port, ``Forecast`` record, ``BaselineForecaster``,
               ``data_confidence`` and the 24 h / 168 h thresholds
``dataset``    ``HistorySnapshot`` (plain-data training input), validation
               (``InvalidHistory``), hourly frames and day-ahead features
``models``     candidate models (hour-mean, ridge, Poisson GLM, gradient boosting)
``training``   ``train(snapshot, now, *, seed, budget_s, clock) -> TrainedModel``
``service``    ``ModelRegistry`` (versioned, atomic swap) and ``RegistryForecaster``

See docs/forecasting.md.
"""
