"""A look at a generated corpus: a text summary and a PNG contact sheet of lip clips with their waveforms."""

from __future__ import annotations

import os

import numpy as np


def summarize_corpus(path: str) -> str:
    """Examples, hours, speakers and languages of every split, as a table."""
    from datasets import load_from_disk

    corpus = load_from_disk(path)
    lines = [
        f"corpus at {path}",
        f"{'split':<18}{'examples':>9}{'hours':>8}{'speakers':>10}  languages  mean SIR dB  lips",
    ]
    for split, dataset in corpus.items():
        columns = dataset.select_columns(["target_speaker", "language", "sir_db", "sampling_rate"])
        # clips of a corpus all have one length: one row gives the total without reading every waveform
        hours = len(dataset[0]["mixture"]) * len(dataset) / columns[0]["sampling_rate"] / 3600 if len(dataset) else 0.0
        speakers = len(set(columns["target_speaker"]))
        languages = ",".join(sorted(set(columns["language"])))
        sir = np.mean([value for row in columns["sir_db"] for value in row]) if len(dataset) else float("nan")
        lips_shape = tuple(np.asarray(dataset[0]["lips"]).shape) if len(dataset) else ()
        lines.append(
            f"{split:<18}{len(dataset):>9}{hours:>8.2f}{speakers:>10}  {languages:<10} {sir:>11.1f}  {lips_shape}"
        )
    return "\n".join(lines)


def _waveform_image(waveform: np.ndarray, width: int, height: int, reference: np.ndarray | None = None) -> np.ndarray:
    """Min/max envelope of ``waveform`` (grey) and ``reference`` (black) drawn into a white image."""
    image = np.full((height, width), 255, dtype=np.uint8)
    scale = max(float(np.abs(waveform).max()), 1e-6)
    for signal, shade in ((waveform, 170), (reference, 40)):
        if signal is None:
            continue
        columns = np.array_split(signal, width)
        for x, column in enumerate(columns):
            low, high = float(column.min()), float(column.max())
            top = int((1 - high / scale) * (height - 1) / 2)
            bottom = int((1 - low / scale) * (height - 1) / 2)
            image[max(top, 0) : min(bottom + 1, height), x] = shade
    return image


def write_contact_sheet(
    path: str, out_png: str, split: str = "test", num_examples: int = 4, frames_shown: int = 10
) -> str:
    """Draw ``num_examples`` examples of ``split``: evenly spaced lip frames above the mixture (grey) and target
    (black) waveforms."""
    from datasets import load_from_disk
    from PIL import Image, ImageDraw

    dataset = load_from_disk(path)[split].with_format("numpy")
    rows = []
    for index in range(min(num_examples, len(dataset))):
        example = dataset[index]
        lips = example["lips"]
        picks = np.linspace(0, len(lips) - 1, frames_shown).round().astype(int)
        strip = np.concatenate([np.pad(lips[k], 1, constant_values=255) for k in picks], axis=1)
        wave = _waveform_image(example["mixture"], strip.shape[1], 60, reference=example["target"])
        label = np.full((14, strip.shape[1]), 255, dtype=np.uint8)
        rows.append(np.concatenate([label, strip, wave, np.full((6, strip.shape[1]), 255, np.uint8)], axis=0))
    sheet = Image.fromarray(np.concatenate(rows, axis=0).astype(np.uint8))
    draw = ImageDraw.Draw(sheet)
    y = 0
    for index, row in enumerate(rows):
        example = dataset[index]
        draw.text((2, y + 1), f"{example['target_speaker']}: {str(example['transcript'])[:60]}", fill=0)
        y += row.shape[0]
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    sheet.save(out_png)
    return out_png
