"""The shared training step on real synthetic batches: fp32 against bfloat16 autocast, side by side.

    python bench/train_step_bench.py [--preset small|paper] [--device cuda] [--steps 40]

Encodes images from a release-format folder with the pipeline's own encoder (no Ray), then runs
StepRunner.train_step (the 3:1 generation/matching mix with curriculum negatives) from the same
initial weights twice: once in fp32, once with bfloat16 autocast (GPU only). Prints boxes/s and the
loss at the start and end of each run, so that speed and learning are compared in one run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from components.config import load_job_config
from components.data.encoding import EncodeSpec
from components.data.index import read_index
from components.data.pipeline import EncodeImages
from components.data.prepare import load_vocabulary
from components.model import build_model
from components.model.batches import collate
from components.training.runner import StepRunner


def encoded_batches(dataset: str, job, tokenizer, count: int, per_batch: int):
    spec = EncodeSpec(grid=job.model.grid, neighbours=job.model.neighbours)
    index = read_index(dataset, "train", limit=count * per_batch)
    encode = EncodeImages(dataset, None, tokenizer.word2int, tokenizer.mode, spec)
    batches = []
    for start in range(0, len(index) - per_batch + 1, per_batch):
        part = index[start : start + per_batch]
        rows = encode(
            {"image_id": np.array([r["image_id"] for r in part]), "record": np.array([r["record"] for r in part])}
        )
        batches.append(collate(rows))
    return batches


def run(job, tokenizer, batches, device, mixed: bool, steps: int) -> dict[str, float]:
    torch.manual_seed(0)
    model = build_model(job.model.with_overrides(vocab_size=len(tokenizer), dropout=0.0)).to(device)
    train = job.train.with_overrides(mixed_precision=mixed)
    runner = StepRunner(model, train, device)
    losses, boxes, started = [], 0, None
    for step in range(1, steps + 1):
        batch, images = batches[(step - 1) % len(batches)]
        if step == 6:  # after warm-up (cuDNN autotuning, allocator)
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
        metrics = runner.train_step(step, batch.to(device), images)
        if "loss_generation" in metrics:
            losses.append(metrics["loss_generation"])
        if step >= 6:
            boxes += batch.num_boxes
    if device.type == "cuda":
        torch.cuda.synchronize()
    return {
        "boxes_per_s": boxes / (time.perf_counter() - started),
        "first": losses[0],
        "last": float(np.mean(losses[-3:])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--dataset", default="data/synthetic")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--images", type=int, default=None, help="images per step (default: the preset's)")
    args = parser.parse_args()
    job = load_job_config(args.preset, ["train.warmup_steps=10", "train.lr=0.0005"])
    tokenizer = load_vocabulary(args.dataset)
    per_batch = args.images or job.train.images_per_batch
    batches = encoded_batches(args.dataset, job, tokenizer, 16, per_batch)
    device = torch.device(args.device)
    results = {"fp32": run(job, tokenizer, batches, device, False, args.steps)}
    if device.type == "cuda":
        results["bf16 autocast"] = run(job, tokenizer, batches, device, True, args.steps)
    print(
        f"train step bench: preset {args.preset}, {per_batch} images/step "
        f"(~{np.mean([b.num_boxes for b, _ in batches]):.0f} boxes), {args.steps} steps, device {args.device}"
    )
    for name, r in results.items():
        print(f"  {name:<14} {r['boxes_per_s']:9.1f} boxes/s   generation loss {r['first']:.3f} -> {r['last']:.3f}")
    if len(results) == 2:
        print(f"  bf16 / fp32    {results['bf16 autocast']['boxes_per_s'] / results['fp32']['boxes_per_s']:9.2f}x")


if __name__ == "__main__":
    main()
