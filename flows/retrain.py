"""Retrain on fresh crawls, as a scheduler runs it: ingest, a data gate, a candidate, a gated promotion.

    python flows/retrain.py --crawl data/crawls --dataset data/synthetic
    python flows/retrain.py --crawl s3://bucket/crawls --dataset s3://bucket/caponimage --preset paper
    python flows/retrain.py --crawl data/crawls --retry crawl_date=2026-11-22   # a partition a person fixed

One run, start to end: the complete crawl partitions not yet ingested become the dataset's next
version if they pass the data gate; the champion (models:/caponimage@champion) is fine-tuned on the
new images plus replayed old ones (no champion yet: pre-training, then fine-tuning); candidate and
champion are scored on the fixed test split; the candidate is registered and becomes `champion` only
if a paired bootstrap over test images puts its CIDEr gain above the margin and Div@2 and BLEU@4 stay
within their guardrails (else `challenger`). One MLflow parent run per retrain, tagged with its run
key. A crash resumes where it stopped on the next run; another retrain holding the lock is left alone.

Exit codes: 0 done (promoted or not) or nothing to do; 3 the data gate failed (or a partition
changed since it was ingested); 75 another retrain holds the lock (try later); 2 a bad config;
anything else is a failure worth an alert.
"""

from __future__ import annotations

import sys

from components import storage
from components.cli import run
from components.config import job_parser, parse_job
from components.data.prepare import prepare_data
from components.errors import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = job_parser(__doc__)
    parser.add_argument("--crawl", required=True, help="the crawl root: a local folder or a URI")
    parser.add_argument("--dataset", help="the release-format dataset to grow (default: data.dataset)")
    parser.add_argument(
        "--retry", action="append", default=[], metavar="PARTITION", help="try a partition the gate refused again"
    )
    args = parser.parse_args(argv)
    if args.dataset:
        args.overrides.append(f"data.dataset={args.dataset}")
    job = parse_job(args, task="retrain")  # 1. config, validated
    if not storage.is_uri(args.crawl) and not storage.is_folder(args.crawl):
        raise ConfigError("--crawl", f"{args.crawl} is not a folder")
    job = prepare_data(job)  # 2. the dataset to grow
    # torch, Ray and MLflow load from here on: --help and a bad config answer at once
    from components.retraining.driver import retrain

    outcome = retrain(job, args.crawl, retry=args.retry)  # 3. plan, lock, ingest, gate, train, compare, register
    print(outcome.summary())  # 4. what was decided and why
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
