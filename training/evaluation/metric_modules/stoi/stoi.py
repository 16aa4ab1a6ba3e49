"""`evaluate` module: STOI (extended=True: ESTOI), per example and mean. The maths lives in `training.evaluation.metrics.stoi`."""

import evaluate

from training.evaluation import metrics
from training.evaluation.metric_info import waveform_metric_info


class Stoi(evaluate.Metric):
    def _info(self):
        return waveform_metric_info("STOI (extended=True: ESTOI), per example and mean.")

    def _compute(self, predictions, references, **kwargs):
        return metrics.summarize_metric(metrics.stoi, "stoi", predictions, references, **kwargs)
