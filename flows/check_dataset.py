"""Validate a release-format dataset folder (ours or a CapOnImage2M copy) and summarise it.

    python flows/check_dataset.py data/synthetic [--version V] [--strict] [--workers N]

Checks every record and image in parallel through Ray Data (the cluster's under ``ray job submit``,
else a local one), reading the splits from a version of the dataset's table (a folder of release
files without one is imported first). Prints the Table 1 summary per split and the rejected records
counted by reason. Exit status is non-zero only with --strict and a rejection (naming the image id
and field), or when no record is usable.
"""

from __future__ import annotations

import argparse
import os
import sys

from components.cli import HelpFormatter, run
from components.cluster import init_ray
from components.data.pipeline.check import check_dataset
from components.data.release.stats import format_rejections, format_summary
from components.data.release.table import ensure_table
from components.errors import NothingUsable


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("dataset", help="a release-format folder or URI (ref_captions.json, *_names.npy, images/)")
    parser.add_argument("--strict", action="store_true", help="stop at the first bad record with an error")
    parser.add_argument("--images-root", default=None, help="where <id>.png live (default DATASET/images)")
    parser.add_argument("--version", default=None, help="a version number or tag (default: the latest)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="Ray Data actors checking records")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    table = ensure_table(args.dataset, args.version)  # 1. the table (a missing dataset fails before Ray starts)
    init_ray()  # 2. Ray
    checked = check_dataset(table, args.images_root, strict=args.strict, workers=args.workers)  # 3. check
    if checked.unsplit:
        print(f"note: {checked.unsplit} records are in no split file")
    unit = "chars" if checked.tokenizer.mode == "char" else "words"
    print(format_summary(checked.summaries(), len(checked.tokenizer), unit=unit))  # 4. summarise
    print(format_rejections(checked.rejections()))  # 5. what was rejected, and why
    if not any(totals.images for totals in checked.splits.values()):
        raise NothingUsable(f"{args.dataset}: no usable record")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
