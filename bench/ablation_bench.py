"""The paper's ablations (Tables 2 and 3) on one device, equal budgets, several seeds: no Ray, no MLflow.

    python bench/ablation_bench.py [--preset ablation] [--steps 600] [--finetune-steps 200]
        [--seeds 0 1 2] [--variants ...] [--val-images 64] [--every 100] [--device cuda] [--out FILE.md]
    python bench/ablation_bench.py --tier cpu --threads 2    # docs/ablation.md: this machine's study
    python bench/ablation_bench.py --tier gpu                # docs/ablation_gpu.md: the paper preset, 40k images
    python bench/ablation_bench.py --from-json docs/ablation.json --out docs/ablation.md   # rebuilt, no training

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
import os
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from components.bench.study import EncodedSplits, VariantRun, curve_markdown, train_variant
from components.config import load_job_config
from components.data.prepare import load_vocabulary
from components.data.release.table import ensure_table
from components.data.synthetic.build import SyntheticSpec, build_release, is_release_folder
from components.evaluation.ablation import VARIANTS, markdown
from components.evaluation.oracle import field_sheet, split_examples, variant_ceilings

# The study's two tiers: this machine's (2 CPU threads, about an hour) and a GPU's (the paper preset on
# the 40k-image synthetic crawl, drawn first if missing). Any option given on the command line wins.
TIERS = {
    "cpu": dict(preset="ablation", dataset="data/synthetic", steps=400, finetune_steps=100, val_images=64,
                every=50, out="docs/ablation.md", json="docs/ablation.json"),
    "gpu": dict(preset="paper", dataset="data/synthetic-40k", steps=3000, finetune_steps=1000, val_images=500,
                every=500, out="docs/ablation_gpu.md", json="docs/ablation_gpu.json"),
}  # fmt: skip
GPU_TIER_IMAGES = 40_000


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tier", choices=sorted(TIERS), default=None, help="a whole study's settings at once")
    parser.add_argument("--preset", default=None, help="default: ablation")
    parser.add_argument("--dataset", default=None, help="default: data/synthetic")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=None, help="pre-training steps of every variant (600)")
    parser.add_argument("--finetune-steps", type=int, default=None, help="fine-tuning steps of every variant (200)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--images", type=int, default=None, help="images per step (default: the preset's)")
    parser.add_argument("--val-images", type=int, default=None, help="val images scored (64)")
    parser.add_argument("--train-images", type=int, default=None, help="train images to use (default: all)")
    parser.add_argument("--every", type=int, default=None, help="steps between matching-accuracy readings (100)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads on a CPU")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", default=None, help="the markdown report (default: printed only)")
    parser.add_argument("--json", default=None, help="also the raw figures, per variant and seed")
    args = parser.parse_args(argv)
    plain = dict(preset="ablation", dataset="data/synthetic", steps=600, finetune_steps=200, val_images=64, every=100)
    for key, value in {**plain, **TIERS.get(args.tier, {})}.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def ensure_gpu_tier_dataset(args: argparse.Namespace) -> None:
    """The GPU tier's 40k-image synthetic crawl, drawn (seed 0, as ``flows/make_dataset.py`` would) when
    its folder holds no dataset yet: the tier is one command on a machine that has only torch."""
    if args.tier != "gpu" or is_release_folder(Path(args.dataset)):
        return
    print(f"drawing the GPU tier's {GPU_TIER_IMAGES} synthetic images into {args.dataset} (minutes)")
    build_release(SyntheticSpec(GPU_TIER_IMAGES, 0, "zh", 0.1, 0.1), Path(args.dataset), workers=os.cpu_count() or 1)


def main(argv: list[str] | None = None) -> None:
    if "--from-json" in (argv if argv is not None else sys.argv[1:]):
        return rebuild(argv)
    args = parse_args(argv)
    ensure_gpu_tier_dataset(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = [f"data.dataset={args.dataset}", f"train.steps={args.steps}", *args.overrides]
    if args.images:
        overrides.append(f"train.images_per_batch={args.images}")
    job = load_job_config(args.preset, overrides)
    tokenizer = load_vocabulary(args.dataset)
    # the truth of the scored images, if any
    examples = split_examples(ensure_table(args.dataset), "val", args.val_images)
    fields = None if examples is None else field_sheet(*examples)
    splits = EncodedSplits(args.dataset, tokenizer, args.val_images, args.train_images, fields)
    device = torch.device(args.device)
    started, runs = time.perf_counter(), []
    for seed in args.seeds:  # seed-major: a cut-short study still has every variant of its first seeds
        for name in args.variants:
            runs.append(train_variant(job, VARIANTS[name], seed, splits, args.finetune_steps, args.every, device))
    hours = (time.perf_counter() - started) / 3600
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
    study = {
        "command": "python bench/ablation_bench.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        "setting": setting,
        "seeds": args.seeds,
        "ceilings": variant_ceilings(examples, {name: VARIANTS[name].oracle for name in args.variants}),
        "args": vars(args),
        "runs": [asdict(run) for run in runs],
    }
    write_report(study, args.out, args.json)


def study_report(study: dict) -> str:
    """The markdown report of a study (as ``main`` keeps it in its JSON): tables, fields, orderings, curves."""
    runs = [VariantRun(**{**run, "curve": [tuple(point) for point in run["curve"]]}) for run in study["runs"]]
    results: dict[str, list[dict[str, float]]] = {}
    human: dict[str, float] = {}
    for run in runs:
        results.setdefault(run.variant, []).append({k: v for k, v in run.scores.items() if not k.startswith("human_")})
        human = {k.removeprefix("human_"): v for k, v in run.scores.items() if k.startswith("human_")}
    table = markdown(results, human, study["seeds"], study["command"], study["setting"], study["ceilings"])
    return table + "\n" + curve_markdown(runs)


def write_report(study: dict, out: str | None, raw: str | None) -> None:
    report = study_report(study)
    print(report)
    if out:
        Path(out).write_text(report, "utf-8")
    if raw:
        Path(raw).write_text(json.dumps(study, indent=2), "utf-8")


def rebuild(argv: list[str] | None = None) -> None:
    """``--from-json STUDY.json [--out FILE.md]``: the report of a finished study, rebuilt without training."""
    parser = argparse.ArgumentParser(description="rebuild a study's report from its JSON")
    parser.add_argument("--from-json", required=True)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    write_report(json.loads(Path(args.from_json).read_text("utf-8")), args.out, None)


if __name__ == "__main__":
    main()
