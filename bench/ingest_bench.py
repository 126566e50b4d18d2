"""Ingest against known ground truth: OCR and cleaning accuracy, then speed with 1 and 2 Ray Data actors.

    python bench/ingest_bench.py [--images 200] [--seed 3] [--base data/synthetic] [--actors 1 2]

Renders one seed of the synthetic crawl twice: as a crawl partition (images 2 to 3 times the
release's size, text drawn on them) and as the ground truth (every caption's and every price's box and
text). Then, in one run:
  1. accuracy, one engine in this process, the ingest's own per-image code (OCR, cleaning with the
     base dataset's fluency filter): exact caption text of the ground-truth captions the rules keep
     (goal >= 0.95), box recall at IoU >= 0.5 (goal >= 0.95), the share of every ground-truth text
     box (captions and prices) covered by the mask (goal >= 0.9 each), price or discount texts among
     the kept captions (goal 0), and the fluency filter's report;
  2. speed: images/s per core in this process, and the same partition through the Ray Data actor
     pool with 1 and with 2 actors (goal >= 1.8x), side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from components.config import load_job_config
from components.data.boxes import Box
from components.data.cleaning import normalise, text_rejection
from components.data.crawl import Partition, parse_product, read_products
from components.data.images import open_image
from components.data.ingest import OcrJob, load_fluency, prepare_fluency, process_product, stream_outcomes
from components.data.masking import box_pixel_bounds
from components.data.ocr import build_engine
from components.data.prepare import prepare_data
from components.data.synthetic.build import SyntheticSpec, build_crawl, image_id
from components.data.synthetic.generate import fraction_box, plan_image
from components.data.synthetic.lexicon import LEXICONS
from components.data.versions import read_state


def iou(a: Box, b: Box) -> float:
    w = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    h = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    inter = w * h
    union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter
    return inter / union if union > 0 else 0.0


def coverage(truth: Box, masks: list[Box], size: tuple[int, int]) -> float:
    """The share of a ground-truth box's pixels (at the release size) that the masks cover."""
    width, height = size
    covered = np.zeros((height, width), dtype=bool)
    for box in masks:
        x1, y1, x2, y2 = box_pixel_bounds(box, width, height)
        covered[y1 : y2 + 1, x1 : x2 + 1] = True
    x1, y1, x2, y2 = box_pixel_bounds(truth, width, height)
    return float(covered[y1 : y2 + 1, x1 : x2 + 1].mean())


def truth(seed: int, index: int):
    """(caption boxes and texts, price boxes and texts, release size) drawn on image ``index``."""
    _, layout, _ = plan_image(LEXICONS["zh"], seed, index, image_id(seed, index))
    captions = [(fraction_box(s.rect, layout.size), s.text) for s in layout.captions]
    prices = [(fraction_box(s.rect, layout.size), s.text) for s in layout.distractors]
    return captions, prices, layout.size


def accuracy(partition: Partition, products, section, fluency, seed: int, scratch: str) -> dict[str, float]:
    engine = build_engine("rapidocr", threads=1)
    fluent = load_fluency(fluency)
    exact = recalled = kept_truth = price_kept = 0
    covers, seconds = [], []
    for product in products:
        started = time.perf_counter()
        outcome = process_product(product, partition.location, engine, fluent, section, scratch)
        seconds.append(time.perf_counter() - started)
        fates = [(Box(*box), text, reason) for box, text, reason in json.loads(outcome["fates"])]
        captions, prices, size = truth(seed, product.line - 1)
        for box, text in captions:
            if text_rejection(normalise(text)) is not None:
                continue
            kept_truth += 1
            best = max(fates, key=lambda f: iou(f[0], box), default=None)
            if best is not None and iou(best[0], box) >= 0.5:
                recalled += 1
                exact += best[2] is None and best[1] == text
        masks = [f[0] for f in fates]
        covers += [coverage(box, masks, size) for box, _ in captions + prices]
        for box, _ in prices:
            price_kept += any(reason is None and iou(b, box) >= 0.5 for b, _, reason in fates)
    return {
        "exact_match": exact / kept_truth,
        "box_recall": recalled / kept_truth,
        "mask_coverage_min": min(covers),
        "mask_coverage_share_at_0.9": float(np.mean([c >= 0.9 for c in covers])),
        "prices_kept": price_kept,
        "captions": kept_truth,
        "seconds_per_image": statistics.mean(seconds),
    }


def ray_speed(products, partition: Partition, section, fluency, actors: int, scratch: str) -> tuple[float, float]:
    """(images/s from the call to the last image, actor start-up included as a user pays it;
    images/s from the first image out to the last: the pool's steady rate)."""
    job = OcrJob({partition.name: partition.location}, scratch, section.with_overrides(actors=actors), fluency)
    started = time.perf_counter()
    times = [time.perf_counter() for _ in stream_outcomes(products, job)]
    assert len(times) == len(products)
    return len(products) / (times[-1] - started), (len(products) - 1) / (times[-1] - times[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--base", default="data/synthetic", help="the dataset whose fluency filter is used")
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], help="job config, e.g. ingest.box_padding=3"
    )
    args = parser.parse_args()
    job = prepare_data(load_job_config("small", [f"data.dataset={os.path.abspath(args.base)}", *args.overrides]))
    section = job.ingest
    fluency, report = prepare_fluency(job.data.dataset, read_state(job.data.dataset), section)
    scratch = tempfile.mkdtemp(prefix="ingest-bench-")
    partition_path = build_crawl(
        SyntheticSpec(args.images, args.seed), Path(scratch) / "crawl", "2026-11-23", workers=2
    )
    partition = Partition(partition_path.name, str(partition_path), True)
    products = [parse_product(partition.name, n, text) for n, text in read_products(partition)]
    sizes = [open_image(partition.location, p.image).image.size for p in products[:20]]
    print(f"ingest bench: {args.images} crawled images (seed {args.seed}), e.g. {sizes[:3]}; base {args.base}")
    result = accuracy(partition, products, section, fluency, args.seed, os.path.join(scratch, "images-1"))
    print(f"  caption text exact match          {result['exact_match']:.3f}   (of {result['captions']} captions)")
    print(f"  box recall at IoU >= 0.5          {result['box_recall']:.3f}")
    least = f"(least covered box {result['mask_coverage_min']:.3f})"
    print(f"  mask covers >= 0.9 of a true box  {result['mask_coverage_share_at_0.9']:.3f}   {least}")
    print(f"  prices or discounts kept          {result['prices_kept']}")
    print("  fluency filter: " + ", ".join(f"{k.removeprefix('fluency_')} {v:.3f}" for k, v in report.items()))
    print(f"  one engine, one thread            {1 / result['seconds_per_image']:.2f} images/s per core")
    import ray

    ray.init(address="local", num_cpus=max(args.actors), include_dashboard=False)
    speeds = {
        n: ray_speed(products, partition, section, fluency, n, os.path.join(scratch, f"out-{n}")) for n in args.actors
    }
    ray.shutdown()
    for n, (total, steady) in speeds.items():
        print(f"  Ray Data, {n} actor(s)             {total:.2f} images/s ({steady:.2f} once the actors are up)")
    if len(speeds) > 1:
        low, high = min(speeds), max(speeds)
        ratios = [speeds[high][k] / speeds[low][k] for k in (0, 1)]
        print(f"  {high} actors / {low} actor           {ratios[0]:.2f}x ({ratios[1]:.2f}x once the actors are up)")


if __name__ == "__main__":
    main()
