"""``elegance-data``: generate the embedded audio-visual corpus and look at it."""

from __future__ import annotations

import argparse
import json
import sys

from .corpus_generation import CORPUS_PRESETS, SPLITS, generate_corpus


def _generate(args) -> int:
    stats = generate_corpus(
        args.out,
        preset=args.preset,
        seed=args.seed,
        num_workers=args.num_workers,
        splits=None if args.splits is None else [name for item in args.splits for name in item.split(",") if name],
        overwrite=args.overwrite,
    )
    print(json.dumps(stats, indent=2))
    return 0


def _summary(args) -> int:
    from .corpus_summary import summarize_corpus, write_contact_sheet

    print(summarize_corpus(args.data))
    if args.contact_sheet:
        write_contact_sheet(args.data, args.contact_sheet, split=args.split, num_examples=args.num_examples)
        print(f"contact sheet written to {args.contact_sheet}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="elegance-data", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="generate the embedded corpus as a datasets.DatasetDict")
    generate.add_argument(
        "--preset",
        choices=sorted(CORPUS_PRESETS),
        default="default",
        help="size: tiny (tests), default (demo), many-speakers (the default with 200 training speakers), full",
    )
    generate.add_argument("--out", required=True, help="output folder (load it with datasets.load_from_disk)")
    generate.add_argument("--seed", type=int, default=0, help="corpus seed; the same seed gives the same corpus")
    generate.add_argument(
        "--num_workers", "--num-workers", type=int, default=None, help="worker processes (default: all cores)"
    )
    generate.add_argument(
        "--splits",
        nargs="+",
        default=None,
        help=f"generate only these splits, space- or comma-separated (of {', '.join(SPLITS)})",
    )
    generate.add_argument("--overwrite", action="store_true", help="replace an existing corpus at --out")
    generate.set_defaults(run=_generate)

    summary = commands.add_parser(
        "summary", help="print what a generated corpus holds; optionally draw a contact sheet"
    )
    summary.add_argument("data", help="corpus folder written by `elegance-data generate`")
    summary.add_argument(
        "--contact_sheet",
        "--contact-sheet",
        default=None,
        help="PNG path for lip clips and waveforms of a few examples",
    )
    summary.add_argument("--split", default="test", help="split to draw the contact sheet from")
    summary.add_argument("--num_examples", "--num-examples", type=int, default=4)
    summary.set_defaults(run=_summary)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (FileExistsError, FileNotFoundError, ValueError) as error:
        print(f"elegance-data: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
