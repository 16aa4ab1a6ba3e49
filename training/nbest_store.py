"""The first half of `elegance-train-vur`, kept: the fitted visual units and the N-best lists, stored in
``OUTPUT_DIR/nbest-lists`` so that a resumed or repeated run does not make them again.

Making them is most of the cost of a small VUR run: a beam search of the recogniser on every training clip (about
ten seconds a clip at beam 5 on one CPU thread). The folder is written atomically (:func:`staged_folder`) once the
last list is made, and it is reused only when everything that decided it is the same: the recogniser's weights,
the corpus and splits, the number of examples, the beam width, K and the seed of the k-means. Anything else makes
the lists again, and says why.

    nbest-lists/
        nbest.json               {"settings": {...}, "examples": [{"units", "hypotheses", "word_error_rates"}]}
        visual_units.safetensors the quantizer (VisualUnitQuantizer.save_pretrained)
        visual_units.json
"""

from __future__ import annotations

import json
import os

from modeling_elegance.visual_units import VisualUnitQuantizer

from .staged_folder import staged_folder

NBEST_FOLDER = "nbest-lists"
NBEST_FILE = "nbest.json"


def load_nbest_lists(output_dir: str, settings: dict, log=print) -> tuple[VisualUnitQuantizer, list[dict]] | None:
    """The stored quantizer and N-best examples of ``output_dir`` if they were made with ``settings``; else None."""
    folder = os.path.join(output_dir, NBEST_FOLDER)
    path = os.path.join(folder, NBEST_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as stream:
        stored = json.load(stream)
    if stored["settings"] != settings:
        changed = sorted(
            key
            for key in settings.keys() | stored["settings"].keys()
            if settings.get(key) != stored["settings"].get(key)
        )
        log(f"{folder} was made with other settings ({', '.join(changed)}): making the N-best lists again")
        return None
    log(f"visual units and {len(stored['examples'])} N-best lists loaded from {folder}")
    return VisualUnitQuantizer.from_pretrained(folder), stored["examples"]


def save_nbest_lists(output_dir: str, settings: dict, quantizer: VisualUnitQuantizer, examples: list[dict]) -> str:
    """Store the quantizer and the N-best examples (atomically); returns the folder."""
    folder = os.path.join(output_dir, NBEST_FOLDER)
    with staged_folder(folder) as staging:
        quantizer.save_pretrained(staging)
        with open(os.path.join(staging, NBEST_FILE), "w") as stream:
            json.dump({"settings": settings, "examples": examples}, stream)
    return folder
