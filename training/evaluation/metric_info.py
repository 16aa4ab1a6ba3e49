"""What the waveform `evaluate` modules of ``training/evaluation/metric_modules/`` share: their input description."""


def waveform_metric_info(description: str):
    import datasets
    import evaluate

    return evaluate.MetricInfo(
        description=description,
        citation="",
        inputs_description="predictions, references: lists of 1-D float waveforms at 16 kHz, pairwise of equal length",
        features=datasets.Features(
            {
                "predictions": datasets.Sequence(datasets.Value("float32")),
                "references": datasets.Sequence(datasets.Value("float32")),
            }
        ),
    )
