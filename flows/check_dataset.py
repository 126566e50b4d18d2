"""Validate a release-format dataset folder (ours or a CapOnImage2M copy) and summarise it.

    python flows/check_dataset.py data/synthetic [--strict]

Prints the Table 1 summary per split and the rejected records counted by reason. Exit status is
non-zero only with --strict and a rejection (naming the image id and field), or when no record is usable.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from components.cli import HelpFormatter, run
from components.data.release import check_release
from components.data.stats import dataset_vocabulary, format_rejections, format_summary, summarize_split
from components.errors import NothingUsable


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("dataset", type=Path, help="a release-format folder (ref_captions.json, *_names.npy, images/)")
    parser.add_argument("--strict", action="store_true", help="stop at the first bad record with an error")
    parser.add_argument("--images-root", type=Path, default=None, help="where <id>.png live (default DATASET/images)")
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1), help="threads reading images")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    checked = check_release(args.dataset, args.images_root, strict=args.strict, workers=args.workers)  # 1. check
    if checked.unsplit:
        print(f"note: {checked.unsplit} records are in no split file")
    results = checked.by_split
    tokenizer = dataset_vocabulary(args.dataset, results)  # 2. summarise
    summaries = [summarize_split(name, result.records, tokenizer) for name, result in results.items()]
    print(format_summary(summaries, len(tokenizer), unit="chars" if tokenizer.mode == "char" else "words"))
    print(format_rejections(results))  # 3. what was rejected, and why
    if not any(result.records for result in results.values()):
        raise NothingUsable(f"{args.dataset}: no usable record")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
