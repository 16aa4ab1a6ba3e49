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
# the separator recipe of pretrained/README.md (learning rate, schedule, impairment), at the demo's step budget
RECIPE = ["--learning_rate", "2e-3", "--lr_scheduler_type", "cosine", "--warmup_steps", "200", "--impair_probability", "0.3"]


def spectrogram_image(waveform: np.ndarray, height: int = 128) -> np.ndarray:
    """Log-magnitude STFT (512-point, hop 128) as a uint8 image, low frequencies at the bottom, 80 dB range."""
    spectrum = torch.stft(torch.as_tensor(waveform, dtype=torch.float32), 512, 128, window=torch.hann_window(512),
                          return_complex=True).abs()
    decibels = 20 * torch.log10(spectrum[:height * 2 : 2] + 1e-8)  # every other bin: 0-8 kHz in `height` rows
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
    from training.evaluate_model import evaluate_model

    results = evaluate_model(model_dir, data, ["test"], out, perceptual=False)
    test = results["splits"]["test"]
    print(f"== {label}: SI-SDRi {test['systems']['model']['si_sdri']:.2f} dB on the test split ({test['examples']} "
          f"mixtures; oracle mask on the same encoder {test['systems']['oracle']['si_sdri']:.2f} dB); details in {out}", flush=True)
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
    panels = [("mixture", example["mixture"]), (f"estimate ({os.path.basename(model_dir)})", estimate), ("reference", example["target"])]
    for label, waveform in panels:
        soundfile.write(os.path.join(out, label.split()[0] + ".wav"), np.asarray(waveform, dtype=np.float32), 16000)
    png = write_spectrograms(os.path.join(out, "spectrograms.png"), panels)
    print(f"== wrote {out}/mixture.wav, estimate.wav, reference.wav and {png}", flush=True)
    return png


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/default")
    parser.add_argument("--out", default="outputs")
    parser.add_argument("--pretrained", default="pretrained", help="folder of the shipped models")
    parser.add_argument("--guidance", default="input")
    parser.add_argument("--max_steps", type=int, default=DEMO_STEPS)
    parser.add_argument("--pslm_steps", type=int, default=200)
    args = parser.parse_args(argv)

    from training.export import export_guidance_free
    from training.train import main as train

    shipped = os.path.join(args.pretrained, "usev-tiny")
    lip_reader = os.path.join(args.pretrained, "lip-reader")
    score(shipped, args.data, os.path.join(args.out, "evaluation-shipped.json"), f"shipped {shipped}")
    write_samples(shipped, args.data, os.path.join(args.out, "samples"))

    pslm = os.path.join(args.out, "pslm", "pslm")
    if "output" in args.guidance and not os.path.isfile(os.path.join(pslm, "model.safetensors")):
        from training.pslm_pretraining import main as pretrain_pslm
        from transformers.trainer_utils import get_last_checkpoint

        print(f"== pretraining the offline PSLM ({args.pslm_steps} steps) into {pslm}", flush=True)
        pslm_dir = os.path.dirname(pslm)
        last = get_last_checkpoint(pslm_dir) if os.path.isdir(pslm_dir) else None
        pretrain_pslm(["--data", args.data, "--output_dir", pslm_dir, "--max_steps", str(args.pslm_steps),
                       "--eval_split", "none", "--save_steps", "100", "--disable_tqdm", "true", "--logging_steps", "50"]
                      + (["--resume_from_checkpoint", last] if last else []))
    run = os.path.join(args.out, "usev-tiny-guided")
    export = os.path.join(args.out, "usev-tiny-guidance-free")
    print(f"== training usev-tiny with {args.guidance} guidance for {args.max_steps} steps from the shipped lip encoder "
          f"{lip_reader} into {run}", flush=True)
    train(["--backbone", "usev-tiny", "--data", args.data, "--guidance", args.guidance, "--lip_encoder", lip_reader,
           "--output_dir", run, "--export_dir", export, "--max_steps", str(args.max_steps), "--save_steps", "500",
           "--logging_steps", "100", "--embedding_cache_dir", os.path.join(args.out, "cache"), "--eval_split", "none",
           "--resume_from_checkpoint", "last", "--disable_tqdm", "true", *RECIPE]
          + (["--pslm", pslm] if "output" in args.guidance else []))
    results = score(export, args.data, os.path.join(args.out, "evaluation.json"), f"usev-tiny trained here ({args.max_steps} steps, {args.guidance} guidance)")
    export_guidance_free(run, export, evaluation=results)  # again, with the evaluation in the model card
    print(f"== guidance-free model with its model card in {export}; load it with AutoModel.from_pretrained({export!r}) "
          f"after `import modeling_elegance, processing`")
    print(f"== to publish it on the Hub (one commit, verified first): elegance-push {export} YOUR_NAME/usev-tiny-elegance "
          f"[--private] (log in first with `hf auth login`, or set HF_TOKEN)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
