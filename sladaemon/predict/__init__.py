"""Breach prediction: queue statistics, queue forecasts and per-ticket breach risk.

Pure, like calendar/ and sla/: values and ``now`` in, values out; no clock, no I/O.

* weekly — arrivals and services per hour of the local week, exponentially decayed;
* survival — time to met in business time per queue × priority (shrunk towards policy ×
  priority and policy), open cycles counted as censored: a life-table Kaplan–Meier;
* calibration — the probabilities checked against the outcomes known so far;
* predictor — ``BreachPredictor``: replays in, predictions and queue alerts out; when to warn
  (at the threshold in force for the precision asked; or the fixed rule of ``threshold`` and
  ``early``);
* activity — what each ticket's handling and each queue's last day have been;
* features — the feature rows of running metrics at an instant;
* learning — the boosted side: scores, snapshots, outcomes, retraining, thresholds;
* snapshots — feature rows waiting for their outcome, then labelled for training;
* training, boosted — fitting the gradient-boosted trees (off the event loop) and judging with
  them as plain arrays;
* operating — the threshold whose measured precision meets the one asked;
* reasons — why, in words: the feature groups that raise a score most;
* curves — every fixed threshold and the predictor's own as curves, at equal precision;
* tracking — the rows of open cycles kept in step with the replays, arrivals and services
  counted;
* columns — open cycles as numpy columns, ticket slots, the ids of calendars, zones, queues
  and policy × metric pairs;
* risk — the vectorised probability of every running metric, the hour-of-week factor;
* queues — queue forecasts, place in queue, queue alerts;
* wording — the English of reasons and queue summaries;
* results — ``Prediction``, ``Assessment``, ``QueueForecast``, ``QueueAlert``,
  ``TickResult``, ``ReasonCode``;
* learnt — ``LearntCycle`` and ``learnt_cycles``: what a restart keeps of closed tickets;
* backtest, quality — the whole history in time order with predictions made only from what
  was known at each instant, and how the warnings compare with the fixed 75 % level;
* settings — the ``predict:`` knobs and their defaults.

The model is described in the README ("Breach prediction"); each module states its contract.
"""
