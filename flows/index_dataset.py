"""Build (or verify) a dataset's Parquet index: once, for a downloaded CapOnImage2M.

    python flows/index_dataset.py /data/CapOnImage2M            # build it when missing, stale or corrupt
    python flows/index_dataset.py /data/CapOnImage2M --rebuild  # build it anew
    python flows/index_dataset.py s3://bucket/CapOnImage2M --check   # current and every page intact? exit 3 if not

Every flow that reads a dataset builds its index itself when needed (and ``make_dataset.py`` and
ingest write it with every version), so this is for doing it ahead of a job, on a machine with room
for the split files' ids (the records stream through local scratch disk). Prints the dataset
version and each split's images, files and the ids it counted (listed twice, without a record).
"""

from __future__ import annotations

import argparse
import sys
import time

from components.cli import HelpFormatter, run
from components.data.release.index import DatasetIndex, build_index, ensure_index, load_index


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("dataset", help="a release-format folder or URI (ref_captions.json, *_names.npy)")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--rebuild", action="store_true", help="build the index even when it is current")
    action.add_argument("--check", action="store_true", help="only say whether the index is current")
    return parser.parse_args(argv)


def describe(index: DatasetIndex) -> str:
    lines = [f"version {index.version} ({index.build}); {index.unsplit} records in no split"]
    for name, split in index.splits.items():
        lines.append(
            f"  {name:<6}{split.rows:>10} images in {len(split.files)} files; "
            f"{split.duplicate_count} listed twice, {split.missing_records} without a record"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    if args.check:
        index = load_index(args.dataset, pages=True)  # 1. missing, stale or corrupt (any page): exit 3
    else:
        index = build_index(args.dataset) if args.rebuild else ensure_index(args.dataset)  # 1. build
    print(describe(index))  # 2. what it holds
    print(f"{args.dataset}: index current ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
