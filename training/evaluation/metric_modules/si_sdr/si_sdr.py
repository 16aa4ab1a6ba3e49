"""`evaluate` module: Scale-invariant SDR in dB (zero-mean signals), per example and mean. The maths lives in `training.evaluation.metrics.si_sdr`."""

import evaluate

from training.evaluation import metrics
from training.evaluation.metric_info import waveform_metric_info


class SiSdr(evaluate.Metric):
    def _info(self):
        return waveform_metric_info("Scale-invariant SDR in dB (zero-mean signals), per example and mean.")

    def _compute(self, predictions, references, **kwargs):
        return metrics.summarize_metric(metrics.si_sdr, "si_sdr", predictions, references, **kwargs)
