"""Evaluation: metrics (plain functions and their `evaluate` modules in ``metric_modules/``), scoring of a saved
model on corpus splits (``scoring``), summaries and reports (``report``), word error rates by a recogniser
(``recognition``), and the ``elegance-evaluate`` CLI (``cli``)."""
