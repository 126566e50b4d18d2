"""Negative controls: does the model read each input? No Ray, no MLflow.

    python bench/negative_controls.py                        # data/synthetic, preset ablation, seed 0
    python bench/negative_controls.py --steps 800 --seeds 0 1 2 --json controls.json

Trains the study's ``context`` variant (info, image, places and neighbours; generation only) as
``bench/ablation_bench.py`` does, then writes the val captions again with one input silently removed
from every batch (``components.bench.study.CONTROLS``): the info ids set to padding, every box
given another box's neighbours, the images blanked. For each input X it prints the field accuracy on
V_X (the boxes that need X) as built and without X: a model that reads X loses there, a model that
ignores X (a disconnected input, a pathway that has not learned) loses nothing. ``--on train`` reads
them on the images it trained on (with ``--train-images 8``: a model that has memorised its few
images, in seconds; what it memorised through an input it loses without it).
"""

from __future__ import annotations

import argparse
import json

import torch

from components.bench.study import EncodedSplits, control_text, train_variant
from components.config import load_job_config
from components.data.prepare import load_vocabulary
from components.data.release.table import ensure_table
from components.evaluation.ablation import VARIANTS
from components.evaluation.oracle import split_field_sheet


def main(argv: list[str] | None = None) -> dict[int, dict[str, tuple[float, float]]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="data/synthetic", help="a synthetic dataset with its truth sidecar")
    parser.add_argument("--preset", default="ablation")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--finetune-steps", type=int, default=100)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--val-images", type=int, default=64)
    parser.add_argument("--train-images", type=int, default=None, help="train images to use (default: all)")
    parser.add_argument("--on", choices=("val", "train"), default="val", help="the images the controls are read on")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads on a CPU")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    job = load_job_config(args.preset, [f"data.dataset={args.dataset}", f"train.steps={args.steps}", *args.overrides])
    dataset_table = ensure_table(args.dataset)
    fields = split_field_sheet(dataset_table, "val", args.val_images)
    train_fields = split_field_sheet(dataset_table, "train", args.train_images) if args.on == "train" else None
    tokenizer = load_vocabulary(args.dataset)
    splits = EncodedSplits(args.dataset, tokenizer, args.val_images, args.train_images, fields, train_fields)
    if splits.fields is None:
        raise SystemExit(f"{args.dataset} has no truth sidecar: no V_X to read the controls on")
    device, out = torch.device(args.device), {}
    for seed in args.seeds:
        run = train_variant(
            job, VARIANTS["context"], seed, splits, args.finetune_steps, args.steps, device, controls=args.on
        )
        out[seed] = run.controls
        print(f"seed {seed}: V_X field accuracy as built -> without X: {control_text(run.controls)}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"argv": argv, "controls": out}, handle, indent=2)
    return out


if __name__ == "__main__":
    main()
