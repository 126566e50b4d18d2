"""Ingest against known ground truth: OCR and cleaning accuracy, then speed with 1 and 2 Ray Data actors.

    python bench/ingest_bench.py [--images 200] [--seed 3] [--base data/synthetic] [--actors 1 2]

Renders one seed of the synthetic crawl as a crawl partition (images 2 to 3 times the release's size,
text drawn on them, a few caption texts drawn with labelled OCR-like noise: merged with their
neighbour, clipped, a character dropped or swapped for a look-alike) and reads the ground truth back
from the generator (every caption's and price's box, the text drawn, its noise label). Then, in one run:
  1. accuracy, one engine in this process, the ingest's own per-image code (OCR, cleaning with the
     base dataset's fluency filter): OCR's exact reading of the clean captions the rules keep (goal
     >= 0.95) and the share of them ingest keeps, box recall at IoU >= 0.5 (goal >= 0.95), the share
     of every ground-truth text box (captions and prices) covered by the mask (goal >= 0.9 each),
     price or discount texts among the kept captions (goal 0), the fluency filter's report, and per
     kind of labelled noise the share ingest does not keep (merged and clipped ones should go);
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
from components.data.ingest.cleaning import normalise, text_rejection
from components.data.ingest.crawl import Partition, parse_product, read_products
from components.data.ingest.ocr import build_engine
from components.data.ingest.partitions import OcrJob, load_fluency, prepare_fluency, process_product, stream_outcomes
from components.data.prepare import prepare_data
from components.data.record.boxes import Box
from components.data.record.images import open_image
from components.data.release.table import ensure_table
from components.data.synthetic.build import SyntheticSpec, build_crawl, crawl_image, image_id
from components.data.synthetic.generate import plan_image
from components.data.synthetic.lexicon import LEXICONS
from components.data.transforms.masking import box_pixel_bounds


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


def truth(spec: SyntheticSpec, index: int):
    """(caption boxes, the texts drawn in them and their noise labels, price boxes, release size) of
    crawled image ``index``."""
    made = crawl_image(spec, index, draw=False)
    _, layout = plan_image(LEXICONS[spec.lang], spec.seed, index, image_id(spec.seed, index))
    record = made.record
    captions = [
        (box, text, t.noise)
        for box, text, t in zip(record.caption_boxes, record.captions, made.truth.boxes, strict=True)
    ]
    prices = [box for box in record.all_boxes if box not in record.caption_boxes]
    return captions, prices, layout.size


def accuracy(partition: Partition, products, section, fluency, spec: SyntheticSpec, scratch: str) -> dict[str, float]:
    """OCR and cleaning against what was drawn: clean captions read exactly and kept, boxes found,
    masks covering every text, labelled noise caught."""
    engine = build_engine("rapidocr", threads=1)
    fluent = load_fluency(fluency)
    counts: dict[str, int] = {k: 0 for k in ("clean", "read", "kept", "recalled", "prices_kept")}
    noise: dict[str, list[bool]] = {}
    covers, seconds = [], []
    for product in products:
        started = time.perf_counter()
        outcome = process_product(product, partition.location, engine, fluent, section, scratch)
        seconds.append(time.perf_counter() - started)
        fates = [(Box(*box), text, reason) for box, text, reason in json.loads(outcome["fates"])]
        captions, prices, size = truth(spec, product.line - 1)
        for box, text, kind in captions:
            best = max(fates, key=lambda f: iou(f[0], box), default=None)
            found = best is not None and iou(best[0], box) >= 0.5
            if kind is not None:  # labelled noise: caught when no kept caption holds it
                noise.setdefault(kind, []).append(not (found and best[2] is None))
                continue
            if text_rejection(normalise(text)) is not None:
                continue
            counts["clean"] += 1
            counts["recalled"] += found
            counts["read"] += found and best[1] == text
            counts["kept"] += found and best[1] == text and best[2] is None
        masks = [f[0] for f in fates]
        covers += [coverage(box, masks, size) for box, _, _ in captions] + [
            coverage(box, masks, size) for box in prices
        ]
        for box in prices:
            counts["prices_kept"] += any(reason is None and iou(b, box) >= 0.5 for b, _, reason in fates)
    clean = counts["clean"]
    return {
        "ocr_exact_match": counts["read"] / clean,
        "clean_kept": counts["kept"] / clean,
        "box_recall": counts["recalled"] / clean,
        "mask_coverage_min": min(covers),
        "mask_coverage_share_at_0.9": float(np.mean([c >= 0.9 for c in covers])),
        "prices_kept": counts["prices_kept"],
        "captions": clean,
        "seconds_per_image": statistics.mean(seconds),
        **{f"noise_{kind}_dropped": float(np.mean(v)) for kind, v in sorted(noise.items())},
        **{f"noise_{kind}_count": len(v) for kind, v in sorted(noise.items())},
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
    fluency, report = prepare_fluency(job.data.dataset, ensure_table(job.data.dataset), section)
    scratch = tempfile.mkdtemp(prefix="ingest-bench-")
    spec = SyntheticSpec(args.images, args.seed)
    partition_path = build_crawl(spec, Path(scratch) / "crawl", "2026-11-23", workers=2)
    partition = Partition(partition_path.name, str(partition_path), True)
    products = [parse_product(partition.name, n, text) for n, text in read_products(partition)]
    sizes = [open_image(partition.location, p.image).image.size for p in products[:20]]
    print(f"ingest bench: {args.images} crawled images (seed {args.seed}), e.g. {sizes[:3]}; base {args.base}")
    result = accuracy(partition, products, section, fluency, spec, os.path.join(scratch, "images-1"))
    print(f"  OCR exact match, clean captions   {result['ocr_exact_match']:.3f}   (of {result['captions']} captions)")
    print(f"  ... and kept by cleaning/fluency  {result['clean_kept']:.3f}")
    print(f"  box recall at IoU >= 0.5          {result['box_recall']:.3f}")
    least = f"(least covered box {result['mask_coverage_min']:.3f})"
    print(f"  mask covers >= 0.9 of a true box  {result['mask_coverage_share_at_0.9']:.3f}   {least}")
    print(f"  prices or discounts kept          {result['prices_kept']}")
    print("  fluency filter: " + ", ".join(f"{k.removeprefix('fluency_')} {v:.3f}" for k, v in report.items()))
    for kind in ("merged", "truncated", "dropped", "lookalike"):
        if f"noise_{kind}_count" in result:
            dropped, count = result[f"noise_{kind}_dropped"], result[f"noise_{kind}_count"]
            print(f"  labelled noise '{kind}' not kept  {dropped:.3f}   (of {count})")
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
