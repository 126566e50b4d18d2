"""The paper's ablations (Tables 2 and 3) on one device, equal budgets, several seeds: no Ray, no MLflow.

    python bench/ablation_bench.py [--preset ablation] [--steps 600] [--finetune-steps 200]
        [--seeds 0 1 2] [--variants ...] [--val-images 64] [--every 100] [--device cuda] [--out FILE.md]

Every variant (``components.evaluation.ablation``) pre-trains ``--steps`` steps through the shared
step runner (matching variants: generation and matching 3:1, the paper's whole curriculum spread over
their own matching steps, easy first), then fine-tunes ``--finetune-steps`` generation steps, the same
for every variant, and is scored on the first ``--val-images`` val images (greedy decoding). Matching
accuracy per negative level is logged every ``--every`` steps. Writes the markdown report (tables,
the paper's orderings judged seed by seed, the matching curves) to ``--out``; ``--json`` keeps the
raw figures. ``flows/ablate.py`` is the same study as tracked Ray Train jobs on a cluster.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import asdict

import torch

from components.config import load_job_config
from components.data.prepare import load_vocabulary
from components.evaluation.ablation import VARIANTS, markdown
from components.training.study import EncodedSplits, curve_markdown, train_variant


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="ablation")
    parser.add_argument("--dataset", default="data/synthetic")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=600, help="pre-training steps of every variant")
    parser.add_argument("--finetune-steps", type=int, default=200, help="generation fine-tuning of every variant")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--images", type=int, default=None, help="images per step (default: the preset's)")
    parser.add_argument("--val-images", type=int, default=64)
    parser.add_argument("--train-images", type=int, default=None, help="train images to use (default: all)")
    parser.add_argument("--every", type=int, default=100, help="steps between matching-accuracy readings")
    parser.add_argument("--threads", type=int, default=None, help="torch threads on a CPU")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", default=None, help="the markdown report (default: printed only)")
    parser.add_argument("--json", default=None, help="also the raw figures, per variant and seed")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = [f"data.dataset={args.dataset}", f"train.steps={args.steps}", *args.overrides]
    if args.images:
        overrides.append(f"train.images_per_batch={args.images}")
    job = load_job_config(args.preset, overrides)
    tokenizer = load_vocabulary(args.dataset)
    splits = EncodedSplits(args.dataset, tokenizer, args.val_images, args.train_images)
    device = torch.device(args.device)
    started, runs = time.perf_counter(), []
    for seed in args.seeds:  # seed-major: a cut-short study still has every variant of its first seeds
        for name in args.variants:
            runs.append(train_variant(job, VARIANTS[name], seed, splits, args.finetune_steps, args.every, device))
    hours = (time.perf_counter() - started) / 3600
    results: dict[str, list[dict[str, float]]] = {}
    human: dict[str, float] = {}
    for run in runs:
        results.setdefault(run.variant, []).append({k: v for k, v in run.scores.items() if not k.startswith("human_")})
        human = {k.removeprefix("human_"): v for k, v in run.scores.items() if k.startswith("human_")}
    device_name = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    )
    setting = (
        f"Setting: preset `{args.preset}`, every variant {args.steps} pre-training steps then "
        f"{args.finetune_steps} generation fine-tuning steps of {job.train.images_per_batch} images "
        f"(matching variants: a quarter of the pre-training steps matching, the paper's curriculum spread "
        f"over them); {len(splits.rows(job)[0])} train images, greedy decoding on {args.val_images} val images; "
        f"{device_name}, torch {torch.__version__}, {hours:.1f} h, {time.strftime('%Y-%m-%d')}."
    )
    command = "python bench/ablation_bench.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    report = markdown(results, human, args.seeds, command, setting) + "\n" + curve_markdown(runs)
    print(report)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(report)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"args": vars(args), "runs": [asdict(run) for run in runs]}, handle, indent=2)


if __name__ == "__main__":
    main()
