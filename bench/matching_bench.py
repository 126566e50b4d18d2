"""Does caption matching learn? The shared step runner on synthetic images, matching accuracy per level.

    python bench/matching_bench.py [--preset small] [--steps 300] [--images 12] [--every 50] [--set k=v ...]

Trains from scratch in one process (no Ray, CPU or GPU) with ``StepRunner.train_step``: generation and
matching 3:1 with the curriculum's negatives, as every flow trains. ``--images`` is the global batch
(the default run's 2 workers x 6 images is 12). Every ``--every`` steps it scores caption matching on
the first 48 val images the way validation does (``components.training.validation``): on true
captions, and on negatives of level I, II and III alone. Chance is 0.5 on each; a head that answers
"no" to everything scores 0 on positives and 1 on every level.
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
import torch

from components.bench.study import LEVELS, encoded_rows, matching_by_level, stacked
from components.config import load_job_config
from components.data.prepare import load_vocabulary
from components.data.transforms.encoding import EncodeSpec
from components.model import build_model
from components.model.batches import collate
from components.training.steps import StepRunner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--dataset", default="data/synthetic")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--images", type=int, default=12, help="images per step (the global batch)")
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    job = load_job_config(args.preset, args.overrides)
    tokenizer = load_vocabulary(args.dataset)
    spec = EncodeSpec.for_model(job.model, job.data.max_boxes, seed=job.train.seed)
    started = time.perf_counter()
    train_rows = encoded_rows(args.dataset, "train", tokenizer, spec, None)
    val_rows = encoded_rows(args.dataset, "val", tokenizer, spec, 48)
    val_batches = [collate(stacked(val_rows[i : i + 12])) for i in range(0, len(val_rows), 12)]
    print(f"encoded {len(train_rows)} train and {len(val_rows)} val images in {time.perf_counter() - started:.0f} s")

    device = torch.device(args.device)
    torch.manual_seed(job.train.seed)
    model = build_model(job.model.with_overrides(vocab_size=len(tokenizer))).to(device)
    runner = StepRunner(model, job.train, device)
    order, rng = list(range(len(train_rows))), random.Random(job.train.seed)
    print(f"matching bench: preset {args.preset}, {args.images} images/step, {args.steps} steps, device {args.device}")
    print("step  seconds  loss_gen  loss_match  " + "  ".join(f"{v:>8}" for v in LEVELS))
    started, window = time.perf_counter(), {"loss_generation": [], "loss_matching": []}
    for step in range(1, args.steps + 1):
        start = (step - 1) * args.images % (len(order) - args.images + 1)
        if start < args.images:
            rng.shuffle(order)  # a new epoch
        batch, images = collate(stacked([train_rows[i] for i in order[start : start + args.images]]))
        metrics = runner.train_step(step, batch.to(device), images)
        for key in window:
            if key in metrics:
                window[key].append(metrics[key])
        if step % args.every == 0 or step == args.steps:
            views = matching_by_level(model, val_batches, runner.probabilities(step), job.train.positive_rate, device)
            losses = [np.mean(window[k]) if window[k] else float("nan") for k in window]
            print(
                f"{step:>4}  {time.perf_counter() - started:7.0f}  {losses[0]:8.3f}  {losses[1]:10.3f}  "
                + "  ".join(f"{views.get(v, float('nan')):8.3f}" for v in LEVELS),
                flush=True,
            )
            window = {key: [] for key in window}


if __name__ == "__main__":
    main()
