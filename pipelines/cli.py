"""`elegance-extract` (also ``python -m pipelines.cli``): each visible speaker's voice from a video file.

    elegance-extract talk.mp4 --model pretrained/usev-tiny --out talk-voices/ [--faces all|0,2] [--device cpu]

Writes into ``--out``: ``face_N.wav`` (one per tracked face, 16 kHz mono, on the video's timeline),
``face_N_mouths.png`` (a contact sheet of the mouth crops the model read), ``STEM_faces.mp4`` (the video with the
original audio and one audio track per face) and ``summary.json`` (faces, coverage, time per stage). Needs the
``[video]`` extra: ``pip install 'elegance[video]'``.
"""

from __future__ import annotations

import argparse
import json

from .chunked_extraction import DEFAULT_CHUNK_SECONDS, DEFAULT_OVERLAP_SECONDS
from .video_extraction import DEFAULT_MIN_COVERAGE, extract_from_video, write_extraction


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="elegance-extract", description=__doc__.split("\n\n")[0])
    parser.add_argument("video", help="a video file with audio (any container PyAV/FFmpeg reads)")
    parser.add_argument("--model", required=True, help="an audio-visual extraction model: a folder or a Hub id")
    parser.add_argument("--out", required=True, help="folder for the WAVs, contact sheets, MP4 and summary")
    parser.add_argument("--faces", default="all", help="'all' or face numbers in order of appearance, e.g. '0,2'")
    parser.add_argument("--device", default=None, help="torch device for the model (default: cuda if available)")
    parser.add_argument(
        "--min_coverage",
        type=float,
        default=DEFAULT_MIN_COVERAGE,
        help="least share of the clip in which a face must be found to be extracted",
    )
    parser.add_argument("--chunk_seconds", type=float, default=DEFAULT_CHUNK_SECONDS)
    parser.add_argument("--overlap_seconds", type=float, default=DEFAULT_OVERLAP_SECONDS)
    parser.add_argument("--detect_every", type=int, default=5, help="run the face detector every N frames")
    parser.add_argument("--no_mp4", action="store_true", help="skip the MP4 with a track per face")
    return parser


def run(argv=None) -> dict:
    """Parse ``argv``, extract and write; returns the summary that ``summary.json`` holds."""
    args = build_parser().parse_args(argv)
    import torch
    from transformers import AutoModel, AutoProcessor

    import modeling_elegance  # noqa: F401  (registers the Auto classes)
    import processing  # noqa: F401

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = AutoModel.from_pretrained(args.model).to(device).eval()
    processor = AutoProcessor.from_pretrained(args.model)
    result = extract_from_video(
        args.video,
        model,
        processor,
        faces=args.faces,
        min_coverage=args.min_coverage,
        chunk_seconds=args.chunk_seconds,
        overlap_seconds=args.overlap_seconds,
        detect_every=args.detect_every,
    )
    return write_extraction(result, args.video, args.out, write_mp4=not args.no_mp4)


def main(argv=None) -> None:
    print(json.dumps(run(argv), indent=2))


if __name__ == "__main__":
    main()
