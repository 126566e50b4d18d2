"""The real training step, plain against fast, side by side in one run.

    python bench/train_step_bench.py [--preset paper] [--device cuda] [--steps 64] [--images 80]

Encodes images of a release-format folder with the pipeline's own encoder (no Ray), then runs
``StepRunner.train_step`` (generation and matching 3:1 with curriculum negatives, loss, optimiser
step) from the same initial weights on the same batches, twice:

- plain: eager, every speed switch off (bfloat16 autocast on a GPU, as the presets train);
- fast: ``torch.compile`` with box buckets, fused Adam, a channels-last backbone, TF32 and pinned,
  non-blocking copies (the last two on a GPU only).

For each it prints boxes/s, MFU (model FLOPs counted by torch's FlopCounterMode over every step's
forward and backward, against a matmul peak measured in this run: bfloat16 on a GPU, float32 on a
CPU), the hours the paper's recipe would take (200K steps of ~400 boxes = 80M box samples), peak
memory, the warm-up (compile) time apart from the timed steps, and the learning check: the mean
generation loss of the last steps, which must agree between the two paths within noise.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import time
from dataclasses import dataclass

import numpy as np
import torch
from timing import matmul_peak, sync, training_dtype  # bench/timing.py, beside this script
from torch.utils.flop_counter import FlopCounterMode

from components.bench.study import encoded_rows, stacked
from components.config import load_job_config
from components.data.prepare import load_vocabulary
from components.data.transforms.encoding import EncodeSpec
from components.model import build_model
from components.model.batches import collate
from components.training.matching import matching_batch
from components.training.schedule import task_for_step
from components.training.steps import StepRunner, generation_loss, prepare_for_training

PAPER_BOX_SAMPLES = 200_000 * 400  # the paper's pre-training: 200K steps of about 400 boxes
PLAIN = {"compile": False, "box_bucket": 0, "fused_adam": False, "channels_last": False, "tf32": False}
FAST = {"compile": True, "fused_adam": True, "channels_last": True, "tf32": True, "pin_memory": True}


@dataclass
class PathResult:
    boxes_per_s: float
    flops_per_s: float
    warmup_s: float
    peak_memory_gib: float
    last_loss: float


def encoded_batches(dataset: str, job, tokenizer, count: int, per_batch: int, pin: bool):
    """``count`` collated batches of ``per_batch`` training images (fewer if the split is smaller)."""
    spec = EncodeSpec.for_model(job.model, max_boxes=job.data.max_boxes)
    rows = encoded_rows(dataset, "train", tokenizer, spec, count * per_batch)
    batches = []
    for start in range(0, len(rows) - per_batch + 1, per_batch):
        batch, images = collate(stacked(rows[start : start + per_batch]))
        batches.append((batch.pin_memory() if pin else batch, images))
    if not batches:
        raise SystemExit(f"{dataset}: fewer than {per_batch} training images")
    return batches


def period(job, batches) -> int:
    """Steps after which (batch, task) pairs repeat: step i trains batch i mod len(batches) on the
    task of step i. A warm-up of one period compiles every graph the timed steps use."""
    return math.lcm(len(batches), sum(job.train.generation_per_matching))


def cycle_flops(job, tokenizer, batches, device) -> int:
    """Model FLOPs (forward and backward) of one pass over ``batches``, each with the task its step
    has in the timed runs, over one ``period``."""
    torch.manual_seed(0)
    model = build_model(job.model.with_overrides(vocab_size=len(tokenizer), dropout=0.0)).to(device)
    runner = StepRunner(model, job.train.with_overrides(**PLAIN), device)
    total = 0
    for step in range(1, period(job, batches) + 1):
        batch, images = batches[(step - 1) % len(batches)]
        batch = batch.to(device)
        task = task_for_step(step - 1, job.train.generation_per_matching)
        with FlopCounterMode(display=False) as counter:
            if task == "generation":
                loss, _ = generation_loss(model(batch, task="generation").logits, batch.captions)
            else:
                matched, _ = matching_batch(batch, images, runner.probabilities(step), runner.rng, 0.4)
                loss = model(matched, task="matching").match_logits.float().sum()
            loss.backward()
        model.zero_grad(set_to_none=True)
        total += counter.get_total_flops()
    return total


def run_path(job, tokenizer, batches, device, switches: dict, steps: int, flops: int) -> PathResult:
    """Train from the seed-0 weights: one warm-up period (every task and box bucket
    compiled), then ``steps`` timed steps (whole periods)."""
    train = job.train.with_overrides(**switches)
    torch.manual_seed(0)
    model = build_model(job.model.with_overrides(vocab_size=len(tokenizer), dropout=0.0))
    prepare_for_training(model, train)
    runner = StepRunner(model.to(device), train, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    losses: list[float] = []
    started = time.perf_counter()
    warmup = period(job, batches)
    for step in range(1, warmup + steps + 1):
        if step == warmup + 1:
            sync(device)
            warmup_s, started = time.perf_counter() - started, time.perf_counter()
        batch, images = batches[(step - 1) % len(batches)]
        metrics = runner.train_step(step, batch, images)
        if "loss_generation" in metrics:
            losses.append(metrics["loss_generation"])
    sync(device)
    seconds = time.perf_counter() - started
    boxes = sum(batches[(s - 1) % len(batches)][0].num_boxes for s in range(warmup + 1, warmup + steps + 1))
    if device.type == "cuda":
        memory = torch.cuda.max_memory_allocated() / 2**30
    else:
        memory = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # the process's, so far
    last = float(np.mean(losses[-max(3, len(losses) // 4) :]))
    return PathResult(boxes / seconds, flops * steps / warmup / seconds, warmup_s, memory, last)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default=None, help="default: paper on a GPU, small on a CPU")
    parser.add_argument("--dataset", default="data/synthetic")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=64, help="timed steps (rounded up to whole passes)")
    parser.add_argument("--batches", type=int, default=16, help="distinct batches the steps cycle through")
    parser.add_argument("--images", type=int, default=None, help="images per step (default: the preset's)")
    parser.add_argument("--bucket", type=int, default=32, help="box bucket of the fast path")
    parser.add_argument("--matmul-size", type=int, default=None, help="default: 8192 on a GPU, 1024 on a CPU")
    parser.add_argument("--threads", type=int, default=None, help="torch threads on a CPU")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    device = torch.device(args.device)
    preset = args.preset or ("paper" if device.type == "cuda" else "small")
    if args.threads:
        torch.set_num_threads(args.threads)
    job = load_job_config(preset, [f"data.dataset={args.dataset}"])
    tokenizer = load_vocabulary(args.dataset)
    per_batch = args.images or job.train.images_per_batch
    batches = encoded_batches(args.dataset, job, tokenizer, args.batches, per_batch, pin=device.type == "cuda")
    steps = -(-args.steps // period(job, batches)) * period(job, batches)  # whole periods
    flops = cycle_flops(job, tokenizer, batches, device)
    peak = matmul_peak(device, args.matmul_size or (8192 if device.type == "cuda" else 1024), repeats=10)
    peak_dtype = str(training_dtype(device)).removeprefix("torch.")
    fast = {**FAST, "box_bucket": args.bucket}
    if device.type != "cuda":
        fast = {**fast, "tf32": False, "pin_memory": False}
    results = {
        "plain": run_path(job, tokenizer, batches, device, PLAIN, steps, flops),
        "fast": run_path(job, tokenizer, batches, device, fast, steps, flops),
    }
    report(args, preset, device, batches, steps, peak, peak_dtype, results)


def report(args, preset, device, batches, steps, peak, peak_dtype, results: dict[str, PathResult]) -> None:
    boxes = np.mean([b.num_boxes for b, _ in batches])
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(
        f"train step bench: preset {preset}, {batches[0][0].images.shape[0]} images/step (~{boxes:.0f} boxes), "
        f"{steps} timed steps after a warm-up period over {len(batches)} batches, {name}, torch {torch.__version__}, "
        f"{time.strftime('%Y-%m-%d')}"
    )
    print(f"  matmul peak ({peak_dtype}, same run): {peak / 1e12:.1f} TFLOP/s")
    header = f"{'boxes/s':>10}{'MFU':>8}{'paper recipe':>15}{'peak mem':>11}{'warm-up':>10}{'last gen. loss':>16}"
    print(f"  {'path':<7}{header}")
    for path, r in results.items():
        print(
            f"  {path:<7}{r.boxes_per_s:>10.1f}{100 * r.flops_per_s / peak:>7.1f}%"
            f"{PAPER_BOX_SAMPLES / r.boxes_per_s / 3600:>13.1f} h{r.peak_memory_gib:>8.2f} GiB"
            f"{r.warmup_s:>9.1f}s{r.last_loss:>16.4f}"
        )
    plain, fast = results["plain"], results["fast"]
    print(
        f"  fast / plain: {fast.boxes_per_s / plain.boxes_per_s:.2f}x boxes/s; "
        f"loss difference {fast.last_loss - plain.last_loss:+.4f} "
        f"({100 * (fast.last_loss / plain.last_loss - 1):+.2f}%)"
    )
    if args.json:
        with open(args.json, "w") as handle:
            figures = {path: vars(r) for path, r in results.items()}
            json.dump({"args": vars(args), "preset": preset, "peak_flops": peak, **figures}, handle, indent=2)


if __name__ == "__main__":
    main()
