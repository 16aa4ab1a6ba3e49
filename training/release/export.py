"""`elegance-export RUN_OR_CHECKPOINT_DIR OUT_DIR`: the guidance-free model of a training run.

The folder holds the backbone's config and weights only (with the prior fusion module when input guidance trained
it), the processor and a model card: no LLM, PSLM, adapter or cross-attention weight. Before it is moved into
place, it is reloaded and checked: no missing or unexpected keys, no training-only weight, the same outputs as the
trained backbone. The folder appears complete or not at all.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import safetensors.torch
import torch

from hub_cards import render_model_card
from modeling_elegance import MODEL_CLASSES
from modeling_elegance.random_inputs import random_inputs
from processing import EleganceProcessor

from ..staged_folder import staged_folder
from ..trainer import TRAINING_RECORD, WEIGHTS_NAME

BACKBONE_PREFIX = "backbone."
OUTPUT_RTOL, OUTPUT_ATOL = 1e-5, 1e-6
TRAINING_ONLY_MARKERS = ("llm", "language_model", "speech_encoder", "pslm", "adapter", "cross_attention", "heads.")


def find_checkpoint(run_or_checkpoint: str) -> str:
    """The folder itself when it holds a saved run, else its newest ``checkpoint-N``."""
    if os.path.isfile(os.path.join(run_or_checkpoint, TRAINING_RECORD)):
        return run_or_checkpoint
    from transformers.trainer_utils import get_last_checkpoint

    last = get_last_checkpoint(run_or_checkpoint) if os.path.isdir(run_or_checkpoint) else None
    if last is None:
        raise FileNotFoundError(
            f"{run_or_checkpoint} holds no elegance training run: expected {TRAINING_RECORD} there or in a "
            f"checkpoint-N subfolder (the output_dir of elegance-train)"
        )
    return last


def load_trained_backbone(checkpoint: str):
    """The backbone of a checkpoint, guidance stripped: ``(model, training record)``."""
    with open(os.path.join(checkpoint, TRAINING_RECORD)) as stream:
        record = json.load(stream)
    config_classes = {config_class.model_type: config_class for config_class in MODEL_CLASSES}
    config_class = config_classes[record["backbone_model_type"]]
    config = config_class.from_dict(record["backbone_config"])
    # the checkpoint holds the lip encoder the run started from: the released model must not look for its folder
    config.lip_encoder = None
    model = MODEL_CLASSES[config_class](config)
    state = safetensors.torch.load_file(os.path.join(checkpoint, WEIGHTS_NAME))
    backbone_state = {
        name[len(BACKBONE_PREFIX) :]: tensor for name, tensor in state.items() if name.startswith(BACKBONE_PREFIX)
    }
    missing, unexpected = model.load_state_dict(backbone_state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{checkpoint}: backbone weights do not match its config (missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    return model.eval(), record


def probe_inputs(config, seconds: float = 1.0, seed: int = 0) -> dict:
    """A fixed random input for comparing two copies of a model (an extractor, or an audio-visual recogniser)."""
    if getattr(config, "model_type", None) == "avur":
        return recognition_probe_inputs(config, seed=seed)
    return random_inputs(config, seconds=seconds, seed=seed, amplitude=0.1)


def recognition_probe_inputs(config, seed: int = 0, frames: int = 25) -> dict:
    """Whisper's ``input_features`` (a 30 s window), ``frames`` of lips (mouth clips or visual embeddings, as the
    recogniser takes them) and the decoder's start token, all fixed by ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    whisper = config.whisper_config
    inputs = {
        "input_features": torch.randn(1, whisper.num_mel_bins, 2 * whisper.max_source_positions, generator=generator),
        "decoder_input_ids": torch.tensor([[whisper.decoder_start_token_id]]),
    }
    if config.lip_input == "frames":
        size = config.lip_roi_size
        inputs["lip_frames"] = torch.randn(1, frames, size, size, generator=generator)
        inputs["video_attention_mask"] = torch.ones(1, frames, dtype=torch.long)
    else:
        inputs["visual_embeds"] = torch.randn(1, frames, config.visual_dim, generator=generator)
    return inputs


def trained_steps(checkpoint: str) -> int | None:
    """The optimisation steps behind a checkpoint, from the Trainer's ``trainer_state.json``."""
    path = os.path.join(checkpoint, "trainer_state.json")
    if not os.path.isfile(path):
        return None
    with open(path) as stream:
        return json.load(stream).get("global_step")


def export_guidance_free(
    run_or_checkpoint: str, out_dir: str, *, evaluation: dict | None = None, repo_id: str | None = None
) -> str:
    """Write the guidance-free model of a run to ``out_dir`` (atomically) and return ``out_dir``.

    The folder holds the backbone, the processor, their code (for ``trust_remote_code``) and a model card from
    ``hub_cards`` whose model-index comes from ``evaluation`` (the JSON of ``elegance-evaluate``) when given.
    """
    checkpoint = find_checkpoint(run_or_checkpoint)
    model, record = load_trained_backbone(checkpoint)
    with staged_folder(out_dir) as staging:
        model.save_pretrained(staging)
        EleganceProcessor.from_pretrained(checkpoint).save_pretrained(staging)
        card = render_model_card(
            record,
            steps=trained_steps(checkpoint),
            evaluation=evaluation,
            repo_id=repo_id,
            num_parameters=model.num_parameters(),
        )
        card.save(os.path.join(staging, "README.md"))
        verify_export(staging, model)
    return out_dir


def load_released_model(folder: str):
    """The model of an exported folder, after checking that it loads with no missing or unexpected keys and holds
    no training-only weight; raise ValueError otherwise."""
    from transformers import AutoModel

    model, info = AutoModel.from_pretrained(folder, output_loading_info=True)
    problems = {key: sorted(value) for key, value in info.items() if key != "error_msgs" and value}
    if problems:
        raise ValueError(f"the model in {folder} does not load cleanly: {problems}")
    keys = safetensors.torch.load_file(os.path.join(folder, "model.safetensors")).keys()
    leaked = [key for key in keys if any(marker in key for marker in TRAINING_ONLY_MARKERS)]
    if leaked:
        raise ValueError(f"the model in {folder} holds training-only weights: {leaked[:5]}")
    return model.eval()


def _probe_output(model, inputs: dict) -> torch.Tensor:
    output = model.eval()(**inputs)
    return output.waveform if hasattr(output, "waveform") else output.logits  # an extractor, or a recogniser


def check_same_outputs(expected_model, model, what: str) -> None:
    """Raise ValueError unless both models give the same waveform (an extractor) or logits (a recogniser) on a fixed
    probe input (up to float rounding: BLAS kernels may round differently for differently aligned weight buffers)."""
    inputs = probe_inputs(expected_model.config)
    with torch.inference_mode():
        expected, got = _probe_output(expected_model, inputs), _probe_output(model, inputs)
    if not torch.allclose(expected, got, rtol=OUTPUT_RTOL, atol=OUTPUT_ATOL):
        raise ValueError(f"{what} differs by {(expected - got).abs().max():.3g}")


def verify_export(folder: str, trained) -> None:
    """Reload ``folder`` and check it against the trained backbone; raise ValueError on any difference."""
    reloaded = load_released_model(folder)
    check_same_outputs(trained, reloaded, f"the exported model's output in {folder} and the trained backbone's")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="elegance-export", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_or_checkpoint", help="output_dir of elegance-train, or one of its checkpoint-N folders")
    parser.add_argument("out_dir", help="where the guidance-free model goes")
    parser.add_argument(
        "--evaluation", default=None, help="the JSON of elegance-evaluate, for the model card's model-index"
    )
    args = parser.parse_args(argv)
    evaluation = None
    if args.evaluation is not None:
        with open(args.evaluation) as stream:
            evaluation = json.load(stream)
    print(
        f"guidance-free model written to {export_guidance_free(args.run_or_checkpoint, args.out_dir, evaluation=evaluation)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
