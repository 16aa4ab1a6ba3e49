"""`evaluate` module: SDR in dB as BSS Eval defines it (512-tap distortion filter), per example and mean. The maths lives in `training.evaluation.metrics.sdr`."""

import evaluate

from training.evaluation import metrics
from training.evaluation.metric_info import waveform_metric_info


class Sdr(evaluate.Metric):
    def _info(self):
        return waveform_metric_info(
            "SDR in dB as BSS Eval defines it (512-tap distortion filter), per example and mean."
        )

    def _compute(self, predictions, references, **kwargs):
        return metrics.summarize_metric(metrics.sdr, "sdr", predictions, references, **kwargs)
