#!/usr/bin/env python3
"""Submit one scheduled retrain to a Ray cluster (what ``ray job submit`` does) and exit with its code.

    infra/submit_retrain.py --env-file /etc/caponimage/retrain.env
    infra/submit_retrain.py --address http://ray-head:8265 --crawl s3://b/crawls --dataset s3://b/ds -- --preset paper

The submission id is fixed for the schedule slot (``caponimage-retrain-YYYY-MM-DD`` by default), so a
second start in the same slot (systemd's catch-up after downtime, a retried cron run, a person) finds
the job already submitted and follows it instead of running it again. The exit code is the
retrain's own (0 done or nothing to do, 3 data gate failed, 75 another retrain holds the lock);
1 when the job ended without one (stopped, or its driver never started); 69 when the cluster's
dashboard does not answer, 77 when it wants a token this host lacks (both said in one line).

Settings come from the flags or the environment (an ``--env-file`` of KEY=VALUE lines is read first):
RAY_ADDRESS, CAPONIMAGE_CRAWL, CAPONIMAGE_DATASET, CAPONIMAGE_ARGS (more retrain.py arguments), and the
MLFLOW_* and AWS_ENDPOINT_URL* variables, which are handed to the job.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import time
from datetime import UTC, datetime

ENTRYPOINT = "python /home/ray/caponimage/flows/retrain.py"  # the project's image (infra/Dockerfile)
FORWARDED = ("MLFLOW_", "AWS_ENDPOINT_URL")  # the job reads these; credentials come from the nodes' IAM role
EXIT_UNREACHABLE = 69  # sysexits' EX_UNAVAILABLE: the cluster's dashboard did not answer
EXIT_NO_TOKEN = 77  # EX_NOPERM: token auth is on and this host has no token (RAY_AUTH_TOKEN_PATH)


def read_env_file(path: str) -> dict[str, str]:
    """KEY=VALUE lines (blank lines and # comments skipped; values may be quoted)."""
    values = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.partition("=")
            if not sep or not key.strip().isidentifier():
                raise SystemExit(f"error: {path} line {number}: expected KEY=VALUE")
            values[key.strip()] = value.strip().strip("'\"")
    return values


def submission_id(slot: str) -> str:
    return f"caponimage-retrain-{slot}"


def entrypoint(crawl: str, dataset: str, extra: list[str]) -> str:
    return " ".join(
        [ENTRYPOINT, "--crawl", shlex.quote(crawl), "--dataset", shlex.quote(dataset), *map(shlex.quote, extra)]
    )


def job_env(environ: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if k.startswith(FORWARDED)}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-file", help="KEY=VALUE lines read into the environment first")
    parser.add_argument("--address", help="the cluster's dashboard (default: RAY_ADDRESS)")
    parser.add_argument("--crawl", help="the crawl root (default: CAPONIMAGE_CRAWL)")
    parser.add_argument("--dataset", help="the dataset (default: CAPONIMAGE_DATASET)")
    parser.add_argument("--slot", default=datetime.now(UTC).strftime("%Y-%m-%d"), help="the schedule slot")
    parser.add_argument("extra", nargs="*", help="after --: more flows/retrain.py arguments")
    args = parser.parse_args(argv)
    if args.env_file:
        os.environ.update(read_env_file(args.env_file))
    args.address = args.address or os.environ.get("RAY_ADDRESS")
    args.crawl = args.crawl or os.environ.get("CAPONIMAGE_CRAWL")
    args.dataset = args.dataset or os.environ.get("CAPONIMAGE_DATASET")
    args.extra = shlex.split(os.environ.get("CAPONIMAGE_ARGS", "")) + args.extra
    for name in ("address", "crawl", "dataset"):
        if not getattr(args, name):
            parser.error(f"--{name} (or its environment variable) is required")
    return args


def connect(address: str):
    """Ray's job client for ``address``, or ``Unreachable`` saying in one line why not."""
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except AuthenticationError as err:  # token auth on, and no token here (RAY_AUTH_TOKEN_PATH)
        raise Unreachable(EXIT_NO_TOKEN, f"the Ray cluster at {address} wants its token: {err}") from err
    except ConnectionError as err:
        raise Unreachable(EXIT_UNREACHABLE, f"cannot reach the Ray cluster at {address}: {err}") from err


class Unreachable(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from ray.job_submission import JobStatus

    try:
        client = connect(args.address)
    except Unreachable as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return err.code
    job_id = submission_id(args.slot)
    try:
        status = client.get_job_status(job_id)
        print(f"{job_id} was submitted before ({status}): following it, not submitting again", flush=True)
    except RuntimeError as err:  # 404: no such job, this slot's first start
        if "404" not in str(err):
            raise
        client.submit_job(
            entrypoint=entrypoint(args.crawl, args.dataset, args.extra),
            submission_id=job_id,
            runtime_env={"env_vars": job_env(dict(os.environ))},
        )
        print(f"submitted {job_id}", flush=True)

    async def follow() -> None:
        async for lines in client.tail_job_logs(job_id):
            print(lines, end="", flush=True)

    asyncio.run(follow())
    while not client.get_job_status(job_id).is_terminal():
        time.sleep(5)
    info = client.get_job_info(job_id)
    code = info.driver_exit_code
    print(f"{job_id}: {info.status}, exit code {code}", flush=True)
    if code is None:
        return 0 if info.status == JobStatus.SUCCEEDED else 1
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
