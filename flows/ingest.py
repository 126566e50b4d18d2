"""Ingest fresh crawl partitions into a dataset: OCR, the paper's cleaning, dedup, a new version.

    python flows/ingest.py --crawl data/crawls --dataset data/synthetic
    python flows/ingest.py --crawl s3://bucket/crawls --dataset s3://bucket/caponimage --partition crawl_date=2026-11-22

Every complete partition (crawl_date=YYYY-MM-DD/ with products.jsonl, its images and _SUCCESS) not yet
ingested is read once through Ray Data: its images OCR'd at their crawled size, the texts cleaned,
duplicates dropped, the images resized to short side 256 and the new training records published as
the dataset's next version (val and test never change). A partition ingested before is skipped; one
that changed since is refused unless --reingest. One MLflow run records the counts and examples.
"""

from __future__ import annotations

import sys

from components.cli import run
from components.config import job_parser, parse_job
from components.data.ingest.partitions import added_table
from components.data.prepare import prepare_data


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__)
    parser.add_argument("--crawl", required=True, help="the crawl root: a local folder or a URI")
    parser.add_argument("--dataset", help="the release-format dataset to add to (default: data.dataset)")
    parser.add_argument("--partition", help="only this partition, e.g. crawl_date=2026-11-22")
    parser.add_argument("--reingest", action="store_true", help="ingest a partition again although it changed")
    args = parser.parse_args(argv)
    if args.dataset:
        args.overrides.append(f"data.dataset={args.dataset}")
    job = prepare_data(parse_job(args, task="ingest"))  # 1. config; 2. the dataset to add to
    # torch, Ray and MLflow load from here on: --help, a bad config and a missing dataset answer at once
    from components.retraining.tracked_ingest import tracked_ingest

    result = tracked_ingest(job, args.crawl, only=args.partition, reingest=args.reingest)  # 3. ingest, tracked
    print(result.summary())  # 4. what happened, and the version the dataset is now
    if result.partitions:
        print(added_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
