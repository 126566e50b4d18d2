"""Does the Ray Data pipeline keep the training step fed?

    python bench/pipeline_bench.py [--dataset data/synthetic] [--steps 30] [--actors 1]

Side by side in one run, the same StepRunner.train_step on the same model preset:
  1. streamed: Ray Data reads, masks, resizes and tokenises images in an actor pool while training;
  2. in memory: the same number of batches collated in advance, already tensors.
Prints boxes/s for both and their ratio (the goal is at least 0.9). Builds the synthetic dataset
if it is missing.

First, without Ray: the per-image encoding (read, mask, resize, tokenise) on one core, as images/s
per core, and the cores a GPU needs to keep a training step at ``--target-boxes`` boxes/s fed
(the paper's recipe in 5 hours on one GPU: 4,450 boxes/s). ``--encode-only`` stops there (a GPU
machine without Ray).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from components import storage
from components.config import load_job_config
from components.data.pipeline.stream import EncodeImages, build_dataset
from components.data.prepare import prepare_dataset
from components.data.release.format import IMAGES_DIR
from components.data.release.table import read_split
from components.data.transforms.encoding import EncodeSpec
from components.model import build_model
from components.model.batches import collate
from components.training.steps import StepRunner


def run_steps(runner: StepRunner, batches, first_step: int, warmup: int, steps: int) -> float:
    """boxes/s over ``steps`` steps after ``warmup`` steps; ``batches`` yields numpy rows or collated pairs."""
    boxes, started = 0, None
    for i, item in enumerate(batches):
        if i == warmup:
            started = time.perf_counter()
        batch, images = collate(item) if isinstance(item, dict) else item
        runner.train_step(first_step + i, batch, images)
        if i >= warmup:
            boxes += batch.num_boxes
        if i + 1 == warmup + steps:
            break
    return boxes / (time.perf_counter() - started)


def encoding_per_core(dataset: str, job, tokenizer, images: int) -> tuple[float, float]:
    """(images/s, boxes per image) of the pipeline's encoder in this process on one thread."""
    spec = EncodeSpec.for_model(job.model, max_boxes=job.data.max_boxes)
    index = read_split(dataset, "train", limit=images)
    encode = EncodeImages(storage.join(dataset, IMAGES_DIR), tokenizer, spec)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = {"image_id": np.array([r["image_id"] for r in index]), "record": np.array([r["record"] for r in index])}
    encode({k: v[:8] for k, v in rows.items()})  # warm-up: imports, font and file caches
    started = time.perf_counter()
    encoded = encode(rows)
    seconds = time.perf_counter() - started
    torch.set_num_threads(threads)
    return len(index) / seconds, float(np.mean(encoded["n_boxes"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--dataset", default="data/synthetic")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--actors", type=int, default=1)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--shuffle-buffer", type=int, default=None, help="default: the preset's")
    parser.add_argument("--prefetch", type=int, default=None, help="default: the preset's")
    parser.add_argument("--repeats", type=int, default=3, help="alternating streamed / in-memory phases")
    parser.add_argument("--encode-images", type=int, default=400, help="images encoded on one core")
    parser.add_argument("--target-boxes", type=float, default=4450.0, help="boxes/s one GPU trains")
    parser.add_argument("--encode-only", action="store_true", help="only the per-core encoding (no Ray)")
    args = parser.parse_args()
    job, prepared = prepare_dataset(
        load_job_config(args.preset, [f"data.dataset={os.path.abspath(args.dataset)}", "data.build_if_missing=true"])
    )
    tokenizer = prepared.tokenizer
    per_core, boxes_per_image = encoding_per_core(job.data.dataset, job, tokenizer, args.encode_images)
    needed = args.target_boxes / boxes_per_image / per_core
    print(
        f"encoding (read, mask, resize, tokenise) on one core: {per_core:.1f} images/s "
        f"({1000 / per_core:.1f} ms per image, {boxes_per_image:.1f} boxes per image, {os.cpu_count()} cores here); "
        f"{args.target_boxes:,.0f} boxes/s per GPU = {args.target_boxes / boxes_per_image:,.0f} images/s "
        f"= {needed:.1f} cores per GPU"
    )
    if args.encode_only:
        return
    import ray

    torch.set_num_threads(args.threads)
    ray.init(address="local", num_cpus=max(4, os.cpu_count() or 1), include_dashboard=False, log_to_driver=False)
    spec = EncodeSpec(grid=job.model.grid, neighbours=job.model.neighbours, max_boxes=job.data.max_boxes)
    dataset = build_dataset(prepared, "train", spec, actors=args.actors, shuffle=True)
    per_batch = job.train.images_per_batch
    total = args.warmup + args.steps

    def fresh_runner() -> StepRunner:
        torch.manual_seed(0)
        model = build_model(job.model.with_overrides(vocab_size=len(tokenizer)))
        return StepRunner(model, job.train, torch.device("cpu"))

    in_memory = [
        collate(rows)
        for _, rows in zip(range(total), dataset.iter_batches(batch_size=per_batch, batch_format="numpy"), strict=False)
    ]
    buffer = job.data.shuffle_buffer if args.shuffle_buffer is None else args.shuffle_buffer
    prefetch = job.data.prefetch_batches if args.prefetch is None else args.prefetch
    streamed_rows = iter(
        dataset.iter_batches(
            batch_size=per_batch,
            batch_format="numpy",
            prefetch_batches=prefetch,
            local_shuffle_buffer_size=buffer or None,
        )
    )
    streamed_runner, memory_runner = fresh_runner(), fresh_runner()
    rates: dict[str, list[float]] = {"streamed": [], "memory": []}
    for repeat in range(args.repeats):  # alternate, so that machine noise hits both alike
        first = 1 + repeat * total
        rates["streamed"].append(run_steps(streamed_runner, streamed_rows, first, args.warmup, args.steps))
        rates["memory"].append(run_steps(memory_runner, in_memory, first, args.warmup, args.steps))
    streamed, memory = statistics.median(rates["streamed"]), statistics.median(rates["memory"])
    print(
        f"pipeline bench: preset {args.preset}, {per_batch} images/step, {args.steps} timed steps after "
        f"{args.warmup}, x{args.repeats} alternating, {args.actors} decode actor(s), prefetch {prefetch}, "
        f"shuffle buffer {buffer}, {args.threads} torch threads, {os.cpu_count()} cores"
    )
    print(
        f"  each phase: streamed {', '.join(f'{r:.1f}' for r in rates['streamed'])}; "
        f"in memory {', '.join(f'{r:.1f}' for r in rates['memory'])} boxes/s"
    )
    print(f"  streamed through Ray Data   {streamed:8.1f} boxes/s (median)")
    print(f"  already in memory           {memory:8.1f} boxes/s (median)")
    print(f"  streamed / in memory        {streamed / memory:8.2f}")
    ray.shutdown()


if __name__ == "__main__":
    main()
