"""A dataset's table: import a release download, export a version, list the history, migrate.

    python flows/dataset_table.py import /data/CapOnImage2M          # the release files as its table
    python flows/dataset_table.py import /data/download --into s3://bucket/CapOnImage2M
    python flows/dataset_table.py export data/synthetic /tmp/release --version 3   # release files back
    python flows/dataset_table.py history data/synthetic              # versions, tags, partitions
    python flows/dataset_table.py migrate /data/old-layout [--remove-old]   # versions/ folders as tags

Every flow that reads a folder of release files without a table imports it first, so ``import`` is
for doing it ahead of a job. The table is the dataset from then on: versions are its commits,
``--set data.version=`` takes a number or a tag.
"""

from __future__ import annotations

import argparse
import sys
import time

from components.cli import HelpFormatter, run
from components.data.release.migration import migrate
from components.data.release.table import (
    DatasetTable,
    describe_sizes,
    export_release,
    history,
    import_release,
    open_table,
)
from components.data.synthetic.truth import export_truth, import_truth


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    importing = commands.add_parser("import", help="a release-format folder or URI as a dataset's table")
    importing.add_argument("source", help="a release-format folder or URI (ref_captions.json, *_names.npy)")
    importing.add_argument("--into", default=None, help="the dataset the table goes to (default: the source)")
    importing.add_argument("--replace", action="store_true", help="a new version replacing an existing table's rows")
    exporting = commands.add_parser("export", help="a version's release files")
    exporting.add_argument("dataset")
    exporting.add_argument("out", help="the folder the release files go to (images stay the dataset's)")
    exporting.add_argument("--version", default=None, help="a version number or tag (default: the latest)")
    commands.add_parser("history", help="every version with its tags and partitions").add_argument("dataset")
    migrating = commands.add_parser("migrate", help="an earlier dataset folder (versions/<v>/) as a table")
    migrating.add_argument("dataset")
    migrating.add_argument("--remove-old", action="store_true", help="delete versions/, index/ and the old ledger")
    return parser.parse_args(argv)


def describe(table: DatasetTable) -> str:
    lines = [f"version {table.version} of {table.uri}; {table.unsplit} records in no split"]
    for name, split in table.splits.items():
        lines.append(
            f"  {name:<6}{split.rows:>10} images in {len(table.files(name))} files; "
            f"{split.duplicate_count} listed twice, {split.missing_records} without a record"
        )
    return "\n".join(lines)


def print_history(dataset: str) -> None:
    for commit in history(dataset):
        tags = f" tags {', '.join(commit.tags)}" if commit.tags else ""
        parts = f" partitions {', '.join(commit.partitions)}" if commit.partitions else ""
        print(f"{commit.number:>5}  {commit.created}  {commit.operation:<8}{tags}{parts}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    if args.command == "import":  # 1. the release files streamed into the table
        table = import_release(args.into or args.source, args.source, replace=args.replace)
        import_truth(args.into or args.source, args.source)  # a synthetic release's sidecar, where there is one
    elif args.command == "export":  # 1. a version's release files
        table = open_table(args.dataset, args.version)
        export_release(table, args.out)
        export_truth(args.dataset, args.out)
        print(f"version {table.version} ({describe_sizes(table)}) exported to {args.out}")
    elif args.command == "migrate":  # 1. the earlier layout's versions as commits
        table = migrate(args.dataset, remove_old=args.remove_old)
    else:
        print_history(args.dataset)  # 1. versions, tags, partitions
        table = open_table(args.dataset)
    print(describe(table))  # 2. what the version holds
    print(f"{args.command} done ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
