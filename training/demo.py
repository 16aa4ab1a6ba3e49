"""The main job of `make demo` (also ``python -m training.demo``), after the corpus exists:

1. pretrain the offline PSLM of output guidance (``elegance-pretrain-pslm``) unless it is there;
2. train ``usev-tiny`` with ELEGANCE's three guidance strategies (output, intermediate, input) for a fixed number
   of steps (resuming if interrupted), and export the guidance-free model;
3. reload the export with ``from_pretrained``, extract the target of a test mixture (WAVs and a PNG of the
   mixture, estimate and reference spectrograms), evaluate it on the test split (``elegance-evaluate``'s JSON);
4. export it again with the evaluation in its model card, and print how to push it to the Hub.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch



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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/default")
    parser.add_argument("--out", default="outputs")
    parser.add_argument("--guidance", default="output,intermediate,input")
    parser.add_argument("--max_steps", type=int, default=400)
    parser.add_argument("--pslm_steps", type=int, default=200)
    args = parser.parse_args(argv)

    from training.pslm_pretraining import main as pretrain_pslm
    from training.train import main as train

    pslm_dir = os.path.join(args.out, "pslm")
    pslm = os.path.join(pslm_dir, "pslm")
    if "output" in args.guidance and not os.path.isfile(os.path.join(pslm, "model.safetensors")):
        print(f"== pretraining the offline PSLM ({args.pslm_steps} steps) into {pslm}", flush=True)
        from transformers.trainer_utils import get_last_checkpoint

        last = get_last_checkpoint(pslm_dir) if os.path.isdir(pslm_dir) else None
        pretrain_pslm(["--data", args.data, "--output_dir", pslm_dir, "--max_steps", str(args.pslm_steps),
                       "--eval_split", "none", "--save_steps", "100", "--disable_tqdm", "true", "--logging_steps", "50"]
                      + (["--resume_from_checkpoint", last] if last else []))
    run = os.path.join(args.out, "usev-tiny-guided")
    export = os.path.join(args.out, "usev-tiny-guidance-free")
    print(f"== training usev-tiny with guidance {args.guidance} for {args.max_steps} steps into {run}", flush=True)
    train(["--backbone", "usev-tiny", "--data", args.data, "--guidance", args.guidance, "--pslm", pslm,
           "--output_dir", run, "--export_dir", export, "--max_steps", str(args.max_steps), "--save_steps", "100",
           "--logging_steps", "25", "--embedding_cache_dir", os.path.join(args.out, "cache"),
           "--eval_split", "none", "--resume_from_checkpoint", "last", "--disable_tqdm", "true",
           "--learning_rate", "2e-3", "--lr_scheduler_type", "cosine", "--warmup_steps", "20"])

    from datasets import load_from_disk
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(export).eval()
    processor = AutoProcessor.from_pretrained(export)
    test = load_from_disk(args.data)["test"].with_format("numpy")
    example = test[0]
    inputs = processor(audio=example["mixture"], videos=example["lips"], return_tensors="pt")
    with torch.inference_mode():
        estimate = model(**inputs).waveform[0].numpy()
    import soundfile

    samples = os.path.join(args.out, "samples")
    os.makedirs(samples, exist_ok=True)
    panels = [("mixture", example["mixture"]), ("estimate (guidance-free usev-tiny)", estimate), ("reference", example["target"])]
    for label, waveform in panels:
        soundfile.write(os.path.join(samples, label.split()[0] + ".wav"), np.asarray(waveform, dtype=np.float32), 16000)
    png = write_spectrograms(os.path.join(samples, "spectrograms.png"), panels)
    from training.evaluate_model import evaluate_model
    from training.export import export_guidance_free

    evaluation_path = os.path.join(args.out, "evaluation.json")
    results = evaluate_model(export, args.data, ["test"], evaluation_path, perceptual=False)
    test = results["splits"]["test"]
    print(f"== wrote {samples}/mixture.wav, estimate.wav, reference.wav and {png}")
    print(f"== SI-SDRi on the test split ({test['examples']} mixtures): {test['systems']['model']['si_sdri']:.2f} dB "
          f"(oracle mask on the same encoder: {test['systems']['oracle']['si_sdri']:.2f} dB); details in {evaluation_path}")
    export_guidance_free(run, export, evaluation=results)  # again, with the evaluation in the model card
    print(f"== guidance-free model with its model card in {export}; load it with AutoModel.from_pretrained({export!r}) "
          f"after `import modeling_elegance, processing`")
    print(f"== to publish it on the Hub (one commit, verified first): elegance-push {export} YOUR_NAME/usev-tiny-elegance "
          f"[--private] (log in first with `hf auth login`, or set HF_TOKEN)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
