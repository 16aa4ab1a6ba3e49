"""Peak memory of chunked extraction on a long input, in a fresh process (so nothing else shares the peak).

    python benchmarks/long_input_memory.py SECONDS FOLDER MODEL

Writes SECONDS of noise and as many blank 48 x 48 lip frames as memory-mapped ``.npy`` files into FOLDER, runs
`extract_in_chunks` on them with the default chunking and a sink that only counts samples, and prints one JSON
line: the growth of the peak anonymous resident memory during extraction over its level just before (KiB; sampled
every 5 ms from /proc/self/status, RssAnon), the wall time, and the samples written. Anonymous memory is what the
process allocates; the pages of the memory-mapped inputs that it reads are file cache, which the kernel reclaims,
so they are left out (they would otherwise count the input once more, however little of it is in use).
Used by benchmarks/bench_video.py and tests/test_video_extraction.py.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import torch
from bench_report import peak_growth

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write_inputs(seconds: float, folder: str) -> tuple[np.ndarray, np.ndarray]:
    samples = int(seconds * 16000)
    mixture = np.lib.format.open_memmap(os.path.join(folder, "mixture.npy"), "w+", np.float32, (samples,))
    lips = np.lib.format.open_memmap(os.path.join(folder, "lips.npy"), "w+", np.uint8, (-(-samples // 640), 48, 48))
    block = np.random.default_rng(0).normal(0, 0.1, 16000 * 10).astype(np.float32)
    for start in range(0, samples, len(block)):
        mixture[start : start + len(block)] = block[: samples - start]
    lips[:] = 128
    mixture.flush()
    lips.flush()
    del mixture, lips
    return (
        np.load(os.path.join(folder, "mixture.npy"), mmap_mode="r"),
        np.load(os.path.join(folder, "lips.npy"), mmap_mode="r"),
    )


def anonymous_resident_kib() -> int:
    with open("/proc/self/status") as stream:
        for line in stream:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise RuntimeError("/proc/self/status has no RssAnon line (this measurement needs Linux)")


def main(argv=None) -> None:
    seconds, folder, model_path = argv or sys.argv[1:]
    torch.set_num_threads(1)
    from transformers import AutoModel, AutoProcessor

    import modeling_elegance  # noqa: F401
    import processing  # noqa: F401
    from pipelines.chunked_extraction import extract_in_chunks

    mixture, lips = write_inputs(float(seconds), folder)
    model, processor = AutoModel.from_pretrained(model_path).eval(), AutoProcessor.from_pretrained(model_path)
    written = [0]

    def sink(block):
        written[0] += len(block)

    started = time.perf_counter()
    growth = peak_growth(
        lambda: extract_in_chunks(model, processor, mixture, lips, sink=sink), anonymous_resident_kib, interval=0.005
    )
    result = {
        "peak_growth_kib": int(growth),
        "wall_seconds": time.perf_counter() - started,
        "samples": written[0],
        "expected_samples": len(mixture),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
