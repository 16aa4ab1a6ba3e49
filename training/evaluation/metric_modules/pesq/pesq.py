"""`evaluate` module: Wide-band PESQ (ITU-T P.862.2) at 16 kHz, per example and mean. The maths lives in `training.evaluation.metrics.pesq_wideband`."""

import evaluate

from training.evaluation import metrics
from training.evaluation.metric_info import waveform_metric_info


class Pesq(evaluate.Metric):
    def _info(self):
        return waveform_metric_info("Wide-band PESQ (ITU-T P.862.2) at 16 kHz, per example and mean.")

    def _compute(self, predictions, references, **kwargs):
        return metrics.summarize_metric(metrics.pesq_wideband, "pesq", predictions, references, **kwargs)
