"""The main job of `make demo` (also ``python -m training.demo``), after the corpus exists:

1. score the shipped ``usev-tiny`` (``pretrained/usev-tiny``, trained by the recipe in ``pretrained/README.md``) on
   the test split, and write WAVs and spectrograms of one test mixture: a newcomer hears a real extraction;
2. train ``usev-tiny`` itself with LLM guidance (input guidance by default: the cheapest of ELEGANCE's three),
   starting from the shipped lip encoder (``pretrained/lip-reader``), for a fixed number of steps (resuming if
   interrupted), export the guidance-free model, and score it on the test split;
3. export that model again with its evaluation in the model card, and print how to push it to the Hub.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

DEMO_STEPS = 2000


def flags(**values) -> list[str]:
    """``flags(max_steps=10, data="d")`` -> ``["--max_steps", "10", "--data", "d"]``: arguments of the package's CLIs."""
    return [item for name, value in values.items() for item in (f"--{name}", str(value))]


def spectrogram_image(waveform: np.ndarray, height: int = 128) -> np.ndarray:
    """Log-magnitude STFT (512-point, hop 128) as a uint8 image, low frequencies at the bottom, 80 dB range."""
    spectrum = torch.stft(
        torch.as_tensor(waveform, dtype=torch.float32), 512, 128, window=torch.hann_window(512), return_complex=True
    ).abs()
    decibels = 20 * torch.log10(spectrum[: height * 2 : 2] + 1e-8)  # every other bin: 0-8 kHz in `height` rows
    decibels = (decibels - decibels.max() + 80).clamp_min(0) / 80
    return (255 * (1 - decibels.flip(0))).to(torch.uint8).numpy()


def write_spectrograms(path: str, panels: list[tuple[str, np.ndarray]]) -> str:
    from PIL import Image, ImageDraw

    rows = []
    for _, waveform in panels:
        image = spectrogram_image(waveform)
        rows.append(np.concatenate([np.full((16, image.shape[1]), 255, np.uint8), image], axis=0))
    sheet = Image.fromarray(np.concatenate(rows, axis=0))
    draw = ImageDraw.Draw(sheet)
    for index, (label, _) in enumerate(panels):
        draw.text((4, index * rows[0].shape[0] + 2), label, fill=0)
    sheet.save(path)
    return path


def score(model_dir: str, data: str, out: str, label: str) -> dict:
    from training.evaluation.cli import evaluate_model

    results = evaluate_model(model_dir, data, ["test"], out, perceptual=False)
    test = results["splits"]["test"]
    print(
        f"== {label}: SI-SDRi {test['systems']['model']['si_sdri']:.2f} dB on the test split ({test['examples']} "
        f"mixtures; oracle mask on the same encoder {test['systems']['oracle']['si_sdri']:.2f} dB); details in {out}",
        flush=True,
    )
    return results


def write_samples(model_dir: str, data: str, out: str) -> str:
    """WAVs of the first test mixture, its estimate and its reference, and a PNG of their spectrograms."""
    import soundfile
    from datasets import load_from_disk
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(model_dir).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    example = load_from_disk(data)["test"].with_format("numpy")[0]
    inputs = processor(audio=example["mixture"], videos=example["lips"], return_tensors="pt")
    with torch.inference_mode():
        estimate = model(**inputs).waveform[0].numpy()
    os.makedirs(out, exist_ok=True)
    panels = [
        ("mixture", example["mixture"]),
        (f"estimate ({os.path.basename(model_dir)})", estimate),
        ("reference", example["target"]),
    ]
    for label, waveform in panels:
        soundfile.write(os.path.join(out, label.split()[0] + ".wav"), np.asarray(waveform, dtype=np.float32), 16000)
    png = write_spectrograms(os.path.join(out, "spectrograms.png"), panels)
    print(f"== wrote {out}/mixture.wav, estimate.wav, reference.wav and {png}", flush=True)
    return png


def pretrain_pslm_once(data: str, out: str, steps: int) -> str:
    """The offline PSLM that output guidance needs, pretrained into ``out`` unless it is there (resumes)."""
    from transformers.trainer_utils import get_last_checkpoint

    from training.pretraining.pslm import main as pretrain_pslm

    pslm = os.path.join(out, "pslm")
    if not os.path.isfile(os.path.join(pslm, "model.safetensors")):
        print(f"== pretraining the offline PSLM ({steps} steps) into {pslm}", flush=True)
        last = get_last_checkpoint(out) if os.path.isdir(out) else None
        pretrain_pslm(
            flags(data=data, output_dir=out, max_steps=steps, eval_split="none", save_steps=100, logging_steps=50)
            + flags(disable_tqdm="true")
            + (flags(resume_from_checkpoint=last) if last else [])
        )
    return pslm


def train_guided(data: str, out: str, guidance: str, lip_reader: str, steps: int, pslm: str | None) -> tuple[str, str]:
    """usev-tiny trained with ``guidance`` from the lip reader by the default recipe; returns (run, export) folders."""
    from training.train import main as train

    run, export = os.path.join(out, "usev-tiny-guided"), os.path.join(out, "usev-tiny-guidance-free")
    print(
        f"== training usev-tiny with {guidance} guidance for {steps} steps from the lip encoder {lip_reader}",
        flush=True,
    )
    train(
        flags(backbone="usev-tiny", data=data, guidance=guidance, lip_encoder=lip_reader, output_dir=run)
        + flags(export_dir=export, max_steps=steps, save_steps=500, logging_steps=100, eval_split="none")
        + flags(embedding_cache_dir=os.path.join(out, "cache"), resume_from_checkpoint="last", disable_tqdm="true")
        + (flags(pslm=pslm) if pslm else [])
    )
    return run, export


def release(run: str, export: str, results: dict) -> None:
    """Exports the run again with its evaluation in the model card, and says how to publish it."""
    from training.release.export import export_guidance_free

    export_guidance_free(run, export, evaluation=results)
    print(
        f"== guidance-free model with its model card in {export}: AutoModel.from_pretrained({export!r}) after `import modeling_elegance`"
    )
    print(
        f"== to publish it on the Hub (one commit, verified first): elegance-push {export} YOUR_NAME/usev-tiny-elegance "
        f"[--private] (log in first with `hf auth login`, or set HF_TOKEN)"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/default")
    parser.add_argument("--out", default="outputs")
    parser.add_argument("--pretrained", default="pretrained", help="folder of the shipped models")
    parser.add_argument("--guidance", default="input")
    parser.add_argument("--max_steps", type=int, default=DEMO_STEPS)
    parser.add_argument("--pslm_steps", type=int, default=200)
    args = parser.parse_args(argv)

    shipped, lip_reader = os.path.join(args.pretrained, "usev-tiny"), os.path.join(args.pretrained, "lip-reader")
    score(shipped, args.data, os.path.join(args.out, "evaluation-shipped.json"), f"shipped {shipped}")
    write_samples(shipped, args.data, os.path.join(args.out, "samples"))
    pslm = (
        pretrain_pslm_once(args.data, os.path.join(args.out, "pslm"), args.pslm_steps)
        if "output" in args.guidance
        else None
    )
    run, export = train_guided(args.data, args.out, args.guidance, lip_reader, args.max_steps, pslm)
    label = f"usev-tiny trained here ({args.max_steps} steps, {args.guidance} guidance)"
    release(run, export, score(export, args.data, os.path.join(args.out, "evaluation.json"), label))
    return 0


if __name__ == "__main__":
    sys.exit(main())
