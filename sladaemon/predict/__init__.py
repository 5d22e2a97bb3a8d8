"""Breach prediction: queue statistics, queue forecasts and per-ticket breach risk.

Pure, like calendar/ and sla/: values and ``now`` in, values out; no clock, no I/O.

* weekly — arrivals and services per hour of the local week, exponentially decayed;
* survival — time to met in business time per queue × priority (shrunk towards policy ×
  priority and policy), open cycles counted as censored: a life-table Kaplan–Meier;
* calibration — the probabilities checked against the outcomes known so far;
* engine — ``BreachPredictor``: open cycles as numpy columns, the vectorised risk of every
  running metric, when to warn (early when nearly certain, else at the last call that still
  leaves ``lead``), queue forecasts and queue alerts;
* backtest, quality — the whole history in time order with predictions made only from what
  was known at each instant, and how the warnings compare with the fixed 75 % level;
* settings — the ``predict:`` knobs and their defaults.

What it knows, and where its information comes from, is documented in each module and in the
README ("Breach prediction").
"""
