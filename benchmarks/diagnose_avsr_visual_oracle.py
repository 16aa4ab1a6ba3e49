"""Why do the lips not reach AVUR's transcripts? The fusion, or what the lip reader gives it.

    python benchmarks/diagnose_avsr_visual_oracle.py --output_dir outputs/avsr/oracle [--max_steps 300] [--seed 0]
        [--visual_lr_scale 10] [--fusion_auxiliary_weight 1.0] [--fusion_read aligned] [--sma_output_norm]
        [--fusion_layer 0] [--whisper_lora_rank 0] [--sma_layers none] [--batch_centered_read] [--freeze_probe]

The benchmark's AV recognisers (`make benchmark-recognition`) transcribe `test_noisy` as well with another clip's
lips as with their own: the visual path is unused. This trains the same recogniser (SMA + AMF around the frozen
offline Whisper tiny.en, rank-8 LoRA on its decoder, the benchmark's steps, batch, schedule and seed) on a visual
stream that cannot be the problem: the **oracle**, a one-hot of the phone the target speaks at each 25-fps video
frame (from the corpus's `phoneme_timings`), passed as `visual_embeds` instead of the lip reader's embeddings.
It is then scored greedy on `test_noisy` like the benchmark's runs: with its oracle (`av`), with another clip's
(`av_other_lips`) and without (`audio_only`), WER per SNR. A finer measure comes with it: the teacher-forced
next-token loss on the same clips with each of the three visual streams, with the gate as trained and with the
gate forced fully open (tanh = 1), which shows whether the fusion's read carries anything about the clip's own
phones before it is strong enough to change a transcript. ``--whisper_lora_rank 0`` trains without Whisper's LoRA,
so that the visual path is the only way to lower the loss. ``--sma_layers none`` leaves out the alignment blocks:
the one-hot stream then reaches the fusion as it is, with no route by which the visual path can read the audio.
``--batch_centered_read`` makes the fusion inject, for each clip, what it would inject minus the mean over the clips
of its batch: whatever it adds to every clip alike cancels, so only the clip's own phones can lower the loss.
``--freeze_probe`` keeps AMF's acoustic probe at what it starts as, Whisper's last cross-attention (five of its six
heads are tiny.en's alignment heads), so the aligned read pools the phones where Whisper listens, and the
unreliability that scales the injection stays Whisper's.

- If the oracle lowers the WER, the fusion can learn to use a visual stream in this budget, and what the lip reader
  gives it is what fails.
- If it does not, the fusion (or the budget) is the bottleneck, whatever the visual features.

A diagnostic, not a system: no real lips carry phone labels. Writes ``OUTPUT_DIR/oracle-test_noisy.json`` and prints
the table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from contextlib import contextmanager, nullcontext

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def oracle_embeds(examples, vocabulary: dict[str, int], width: int, frames: int) -> torch.Tensor:
    """``(batch, frames, width)``: at each video frame, a one-hot of the target's phone (silence included); zeros on
    padding and on phones outside ``vocabulary``."""
    from training.pretraining.lip_reading import frame_labels

    embeds = torch.zeros(len(examples), frames, width)
    for row, example in enumerate(examples):
        clip = min(len(example["lips"]), frames)
        labels = frame_labels(example["phoneme_timings"], clip, float(example["fps"]), vocabulary)
        known = np.flatnonzero(labels >= 0)
        embeds[row, known, labels[known]] = 1.0
    return embeds


@contextmanager
def gate_forced_open(model):
    """The fusion's gate at tanh = 1 inside (the visual read injected at full strength), as trained after."""
    trained = model.fusion.gate.detach().clone()
    with torch.no_grad():
        model.fusion.gate.fill_(20.0)
    try:
        yield
    finally:
        with torch.no_grad():
            model.fusion.gate.copy_(trained)


def center_the_fusion_on_the_batch(model) -> None:
    """Makes ``model.fusion`` inject, for each clip of a batch, what it would inject minus the mean of that over the
    batch's clips (those that keep their visual stream), and likewise for the open-gate state. Whatever the fusion
    would add to every clip alike (an output bias, the positions, the mean phone) then cancels exactly, and only
    what tells a clip's stream from the others' can lower the loss. A diagnostic: a clip's output depends on its
    batch (8 clips, in training and scoring alike)."""
    fusion, full_read = model.fusion, model.fusion.forward

    def centered(injection, keep):
        mean = (injection * keep).sum(0, keepdim=True) / keep.sum().clamp_min(1.0)
        return (injection - mean) * keep

    def forward(hidden, audio, visual, visual_keep=None, audio_mask=None, probe_input=None, open_gate=False):
        fused, reliability, opened = full_read(hidden, audio, visual, visual_keep, audio_mask, probe_input, open_gate)
        keep = hidden.new_ones(hidden.shape[0], 1, 1) if visual_keep is None else visual_keep[:, None, None]
        keep = keep.to(hidden.dtype)
        fused = hidden + centered(fused - hidden, keep)
        opened = None if opened is None else hidden + centered(opened - hidden, keep)
        return fused, reliability, opened

    fusion.forward = forward


def teacher_forced_losses(model, collator, split, batch_size: int = 8) -> dict[str, dict[str, float]]:
    """Mean next-token loss over ``split`` (weighted by tokens) with the clip's own oracle, another clip's and none,
    for the gate as trained and forced open: ``{"trained": {"own": ..., "other": ..., "none": ...}, "open": {...}}``."""
    model.eval()
    totals = {gate: defaultdict(float) for gate in ("trained", "open")}
    tokens = 0
    for start in range(0, len(split), batch_size):
        batch = collator([split[index] for index in range(start, min(start + batch_size, len(split)))])
        own = batch.pop("visual_embeds")
        count = int((batch["labels"] != -100).sum())
        tokens += count
        with torch.inference_mode():
            audio_only = float(model(**batch, visual_embeds=None).loss) * count  # no visual stream: no gate either
            for gate in totals:
                totals[gate]["none"] += audio_only
                with gate_forced_open(model) if gate == "open" else nullcontext():
                    for system, visual in (("own", own), ("other", own.roll(1, 0))):
                        totals[gate][system] += float(model(**batch, visual_embeds=visual).loss) * count
    return {gate: {system: total / tokens for system, total in row.items()} for gate, row in totals.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.path.join(ROOT, "data", "default-noisy"))
    parser.add_argument("--output_dir", default=os.path.join(ROOT, "outputs", "avsr", "oracle"))
    parser.add_argument("--max_steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--visual_lr_scale", type=float, default=1.0, help="as elegance-train-avsr's")
    parser.add_argument("--fusion_auxiliary_weight", type=float, default=0.0, help="as elegance-train-avsr's")
    parser.add_argument("--fusion_read", default="attention", help="as elegance-train-avsr's")
    parser.add_argument("--sma_output_norm", action="store_true", help="as elegance-train-avsr's")
    parser.add_argument("--fusion_layer", type=int, default=None, help="as elegance-train-avsr's")
    parser.add_argument("--whisper_lora_rank", type=int, default=8, help="0: no LoRA, Whisper wholly frozen")
    parser.add_argument("--sma_layers", default=None, help="as elegance-train-avsr's ('none': no alignment block)")
    parser.add_argument("--batch_centered_read", action="store_true", help="inject minus the batch's mean injection")
    parser.add_argument("--freeze_probe", action="store_true", help="as elegance-train-avsr's --freeze_acoustic_probe")
    parser.add_argument(
        "--state_cache",
        default=os.path.join(ROOT, "outputs", "avsr", "states"),
        help="the float32 encoder states the benchmark's evaluations keep (so the scores are comparable)",
    )
    args = parser.parse_args(argv)

    from transformers import TrainingArguments

    from modeling_elegance import AvurForConditionalGeneration
    from processing import AvurProcessor
    from training.data import load_split
    from training.evaluation.metrics import word_error_rate
    from training.evaluation.recognition import max_new_tokens_for
    from training.offline_whisper import offline_whisper
    from training.pretraining.lip_reading import phone_vocabulary
    from training.staged_folder import resolve_resume
    from training.train_avsr import (
        TRAINING_DEFAULTS,
        RecognitionCollator,
        RecognitionRun,
        parse_sma_layers,
        recognition_speech,
        visual_path_optimizer,
    )
    from training.trainer import GuidanceTrainer
    from training.transcript_embedding_cache import default_cache_dir
    from training.whisper_lora import add_decoder_lora
    from training.whisper_state_cache import WhisperStateCache

    torch.manual_seed(args.seed)
    columns = ["mixture", "target", "lips", "fps", "transcript", "noise_type", "phoneme_timings"]
    train = load_split(args.data, "train_noisy").select_columns(columns)
    phones = phone_vocabulary(train["phoneme_timings"])
    vocabulary = {phone: index for index, phone in enumerate(phones)}
    width = 8 * ((len(phones) + 7) // 8)
    whisper = offline_whisper()
    model = AvurForConditionalGeneration.from_whisper(
        whisper,
        visual_dim=width,
        modality_dropout=0.3,
        fusion_auxiliary_weight=args.fusion_auxiliary_weight,
        fusion_read=args.fusion_read,
        sma_output_norm=args.sma_output_norm,
        fusion_layer=args.fusion_layer,
        sma_layers=parse_sma_layers(args.sma_layers),
    )
    for parameter in model.whisper.parameters():
        parameter.requires_grad_(False)
    if args.whisper_lora_rank > 0:
        add_decoder_lora(model.whisper, args.whisper_lora_rank)
    if args.batch_centered_read:
        center_the_fusion_on_the_batch(model)
    if args.freeze_probe:
        model.fusion.freeze_probe()
    processor = AvurProcessor.from_whisper(whisper)
    audio_states = WhisperStateCache(model, processor.feature_extractor, default_cache_dir())

    class OracleCollator(RecognitionCollator):
        def __call__(self, examples):
            batch = super().__call__(examples)
            frames = batch.pop("lip_frames").shape[1]
            batch.pop("video_attention_mask")
            batch["visual_embeds"] = oracle_embeds(examples, vocabulary, width, frames)
            return batch

    training_args = TrainingArguments(  # elegance-train-avsr's, with the benchmark's steps and checkpoints
        **{**TRAINING_DEFAULTS, "max_steps": args.max_steps, "save_steps": 50, "save_total_limit": 1},
        output_dir=args.output_dir,
        disable_tqdm=True,
        seed=args.seed,
    )
    run = RecognitionRun(model)
    trainer = GuidanceTrainer(
        optimizers=(visual_path_optimizer(run, training_args, args.visual_lr_scale), None),
        model=run,
        args=training_args,
        train_dataset=train,
        data_collator=OracleCollator(processor, audio_states),
        training_record={"oracle": vars(args)},
    )
    trainer.train(resume_from_checkpoint=resolve_resume("last", args.output_dir))
    model.eval()
    audio_states = WhisperStateCache(model, processor.feature_extractor, args.state_cache, dtype=torch.float32)
    test = load_split(args.data, "test_noisy").select_columns([*columns, "snr_db"])
    losses = teacher_forced_losses(model, OracleCollator(processor, audio_states), test)
    transcripts, references, snrs = defaultdict(list), [], []
    for start in range(0, len(test), 8):
        examples = [test[index] for index in range(start, min(start + 8, len(test)))]
        speech = [recognition_speech(example) for example in examples]
        inputs = processor(
            audio=speech, videos=[e["lips"] for e in examples], return_tensors="pt", audio_features=False
        )
        embeds = oracle_embeds(examples, vocabulary, width, inputs["lip_frames"].shape[1])
        states = audio_states(speech)
        for system, visual in (("av", embeds), ("av_other_lips", embeds.roll(1, 0)), ("audio_only", None)):
            with torch.inference_mode():
                ids = model.generate(
                    audio_states=states,
                    attention_mask=inputs["attention_mask"],
                    visual_embeds=visual,
                    do_sample=False,
                    max_new_tokens=max_new_tokens_for(max(len(s) for s in speech) / 16000),
                )
            transcripts[system] += processor.batch_decode(ids)
        references += [str(example["transcript"]) for example in examples]
        snrs += [f"{float(example['snr_db']):g}" for example in examples]
    by_snr = {
        snr: {
            system: word_error_rate(
                [t for t, s in zip(texts, snrs) if s == snr], [r for r, s in zip(references, snrs) if s == snr]
            )
            for system, texts in transcripts.items()
        }
        for snr in sorted(set(snrs), key=float)
    }
    result = {
        "examples": len(references),
        "phones": len(phones),
        "wer": {system: word_error_rate(texts, references) for system, texts in transcripts.items()},
        "by_snr": by_snr,
        "gate": float(model.fusion.gate.detach().tanh().abs().mean()),
        "teacher_forced_loss": losses,
    }
    with open(os.path.join(args.output_dir, "oracle-test_noisy.json"), "w") as stream:
        json.dump(result, stream, indent=2)
    snr_list = list(by_snr)
    print("| visual stream | all | " + " | ".join(f"{snr} dB" for snr in snr_list) + " |")
    print("|---" * (2 + len(snr_list)) + "|")
    for system in transcripts:
        cells = " | ".join(f"{100 * by_snr[snr][system]:.1f}%" for snr in snr_list)
        print(f"| {system} | {100 * result['wer'][system]:.1f}% | {cells} |")
    print("\nteacher-forced next-token loss (nats), visual stream: own oracle / another clip's / none")
    for gate, row in losses.items():
        print(f"  gate {gate}: " + " / ".join(f"{row[system]:.4f}" for system in ("own", "other", "none")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
