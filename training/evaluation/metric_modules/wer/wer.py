"""`evaluate` module: corpus word error rate (word edits over reference words, lower-cased, punctuation removed).
The maths lives in `training.evaluation.metrics.word_error_rate`."""

import datasets
import evaluate

from training.evaluation import metrics


class Wer(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Corpus word error rate after lower-casing and removing punctuation.",
            citation="",
            inputs_description="predictions, references: lists of transcripts",
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references):
        return {"wer": metrics.word_error_rate(predictions, references)}
