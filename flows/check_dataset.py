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

from components.cli import run
from components.data.release import (
    ReadResult,
    available_splits,
    check_records,
    load_captions_file,
    resolve_images_root,
    split_ids,
)
from components.data.stats import format_summary, summarize_split
from components.data.tokenizer import Tokenizer, guess_mode
from components.errors import CapOnImageError

EXAMPLES_PER_REASON = 3


class NothingUsable(CapOnImageError):
    exit_code = 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path, help="a release-format folder (ref_captions.json, *_names.npy, images/)")
    parser.add_argument("--strict", action="store_true", help="stop at the first bad record with an error")
    parser.add_argument("--images-root", type=Path, default=None, help="where <id>.png live (default DATASET/images)")
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1), help="threads reading images")
    return parser.parse_args(argv)


def read_all(args: argparse.Namespace) -> dict[str, ReadResult]:
    """Every split that has a names file (or all records as 'all' when none has)."""
    data = load_captions_file(args.dataset)
    images_root = resolve_images_root(args.dataset, args.images_root)
    splits = available_splits(args.dataset)
    groups = {split: split_ids(args.dataset, split) for split in splits} or {"all": list(data)}
    in_splits = {i for ids in groups.values() for i in ids}
    unsplit = sum(1 for i in data if i not in in_splits)
    if unsplit and splits:
        print(f"note: {unsplit} records are in no split file")
    return {
        name: check_records(data, ids, images_root, strict=args.strict, workers=args.workers)
        for name, ids in groups.items()
    }


def vocabulary(dataset: Path, results: dict[str, ReadResult]) -> Tokenizer:
    if (dataset / "word2int.json").is_file():
        return Tokenizer.load(dataset)
    source = results.get("train") or next(iter(results.values()))
    texts = [c for r in source.records for c in r.captions] + [r.info for r in source.records]
    return Tokenizer.build(texts, mode=guess_mode(texts))


def print_rejections(results: dict[str, ReadResult]) -> int:
    rejections = [r for result in results.values() for r in result.rejections]
    print(f"rejected: {len(rejections)}")
    counts: dict[str, int] = {}
    for rejection in rejections:
        counts[rejection.reason] = counts.get(rejection.reason, 0) + 1
    for reason, count in sorted(counts.items()):
        print(f"  {reason:<16}{count:>8}")
        for example in [r for r in rejections if r.reason == reason][:EXAMPLES_PER_REASON]:
            print(f"      e.g. {example.error()}")
    return len(rejections)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = read_all(args)
    tokenizer = vocabulary(args.dataset, results)
    summaries = [summarize_split(name, result.records, tokenizer) for name, result in results.items()]
    print(format_summary(summaries, len(tokenizer), unit="chars" if tokenizer.mode == "char" else "words"))
    print_rejections(results)
    if not any(result.records for result in results.values()):
        raise NothingUsable(f"{args.dataset}: no usable record")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
