"""The synthetic benchmark's ceilings and checks: what each input carries, before any training.

    python bench/oracle_bench.py                               # a 2,000-image seed-0 crawl, planned in memory
    python bench/oracle_bench.py --dataset data/synthetic      # a built dataset and its truth sidecar
    python bench/oracle_bench.py --images 40000 --split val test --json ceilings.json

An oracle that knows the generator reads the truth sidecar, is denied what each ablation variant's
model is denied (the paper's Table 2 inputs, Table A5's neighbours) and writes every caption with the
generator's grammar: parts whose owner it sees are right, each denied part is the most likely value
given what it still sees (``components.evaluation.oracle``). Scored with the project's scorer
(BLEU, METEOR with Java, CIDEr on characters), these are the ceilings a trained variant can reach.
Then the benchmark's own checks (SYNTHETIC.md): the shape against the paper's Table 1, partial
credit, the matching negatives' levels, the fluency filter against labelled OCR noise.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time

from components.data.release.format import read_release
from components.data.synthetic import checks
from components.data.synthetic.build import SyntheticSpec, plan_release
from components.data.synthetic.lexicon import LEXICONS
from components.data.synthetic.truth import read_truth
from components.evaluation.ablation import PAPER_CIDER
from components.evaluation.oracle import (
    VARIANTS,
    Example,
    ceilings,
    examples_from,
    info_only_predictions,
    references,
)
from components.evaluation.scores import caption_scores

ORDER = (  # C2: (smaller, larger, the larger's share of C(full) that bounds the smaller from above)
    ("no-locations", "no-info", 0.25),
    ("no-info", "no-image", 0.55),
    ("no-image", "baseline", 0.75),
    ("baseline", "full", 0.92),
)


def planned(images: int, seed: int, workers: int) -> tuple[dict[str, list[Example]], dict, list, dict]:
    """(examples by split, the shape figures, every image's truth, the training captions) of a crawl
    planned in memory."""
    by_split, _ = plan_release(SyntheticSpec(images, seed), workers=workers)
    examples = {s: [Example(g.truth, g.record.caption_boxes) for g in made] for s, made in by_split.items()}
    captions = {s: [c for g in made for c in g.record.captions] for s, made in by_split.items()}
    return examples, checks.shape(by_split), [g.truth for made in by_split.values() for g in made], captions


def from_dataset(folder: str) -> tuple[dict[str, list[Example]], dict, list, dict]:
    truth = read_truth(folder)
    if truth is None:
        sys.exit(f"{folder} has no truth sidecar: the oracle needs a synthetic dataset (flows/make_dataset.py)")
    examples, captions = {}, {}
    for split in ("train", "val", "test"):
        records = read_release(folder, split).records
        examples[split] = examples_from(truth.images, records)
        captions[split] = [c for r in records for c in r.captions]
    return examples, {}, list(truth.images.values()), captions


def ceiling_table(results: dict[str, dict[str, float]], images: int, boxes: int, split: str) -> str:
    full = results["full"]["CIDEr"]
    lines = [
        f"| oracle on {split}: {images} images, {boxes} boxes | denied | BLEU@1 | BLEU@4 | METEOR | CIDEr "
        "| of full | paper CIDEr |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for variant in VARIANTS:
        scores = results[variant.name]
        denied = ", ".join(sorted(variant.denied | ({"ctx"} if variant.neighbours == "none" else set()))) or "-"
        denied += "" if variant.neighbours in ("none", "top1") else f" (neighbours: {variant.neighbours})"
        paper = PAPER_CIDER.get(variant.name)
        lines.append(
            f"| {variant.name} | {denied} | {scores['BLEU@1']:.1f} | {scores['BLEU@4']:.1f} "
            f"| {scores.get('METEOR', float('nan')):.1f} | {scores['CIDEr']:.1f} | {scores['CIDEr'] / full:.3f} "
            f"| {paper if paper is not None else '-'} |"
        )
    return "\n".join(lines)


def order_verdicts(results: dict[str, dict[str, float]]) -> list[str]:
    cider = {name: scores["CIDEr"] for name, scores in results.items()}
    full, out = cider["full"], []
    for smaller, larger, share in ORDER:
        holds = cider[smaller] <= share * full < cider[larger]
        out.append(f"{smaller} <= {share:.2f} C(full) < {larger}: {'holds' if holds else 'FAILS'}")
    drift = cider["random2"] / cider["baseline"] - 1
    out.append(f"random2 within 1% of baseline ({drift:+.2%}): {'holds' if abs(drift) <= 0.01 else 'FAILS'}")
    out.append(f"full <= top2: {'holds' if full <= cider['top2'] else 'FAILS'}; C(full) {full:.0f} < 1000")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=None, help="a built synthetic dataset (default: plan one in memory)")
    parser.add_argument("--images", type=int, default=2000, help="images of the crawl planned in memory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lang", choices=sorted(LEXICONS), default="zh")
    parser.add_argument("--split", nargs="+", choices=("val", "test"), default=["val", "test"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-meteor", action="store_true", help="skip METEOR (it needs Java)")
    parser.add_argument("--json", default=None, help="also write every figure to this file")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.dataset:
        examples, shape, truths, captions = from_dataset(args.dataset)
        lexicon = LEXICONS[read_truth(args.dataset).lang]
    else:
        examples, shape, truths, captions = planned(args.images, args.seed, args.workers)
        lexicon = LEXICONS[args.lang]
    evaluated = [e for split in args.split for e in examples[split]]
    meteor = not args.no_meteor and shutil.which("java") is not None
    results = ceilings(lexicon, examples["train"], evaluated, meteor=meteor)
    split = "+".join(args.split)
    boxes = sum(len(e.truth.boxes) for e in evaluated)
    print(ceiling_table(results, len(evaluated), boxes, split))
    print("\nC2, the order of the paper's Table 2: " + "; ".join(order_verdicts(results)))
    mode = "char" if lexicon.lang == "zh" else "word"
    partial = caption_scores(references(evaluated), info_only_predictions(lexicon, evaluated), mode, meteor=False)
    print(f"C3, right on INFO parts only: BLEU@1 {partial['BLEU@1']:.1f}, BLEU@4 {partial['BLEU@4']:.1f}, "
          f"CIDEr {partial['CIDEr']:.1f}")  # fmt: skip
    levels = checks.level_rejections(truths, lexicon, seed=args.seed)
    print(
        "C4, matching negatives rejected (cumulative: a product check, then also a slot check, then also a"
        " rank check): " + ", ".join(f"{k} {v:.3f}" for k, v in levels.items())
    )
    held_out = [e.truth for e in evaluated]
    fluency = checks.fluency(captions["train"], held_out, lexicon, seed=args.seed)
    print("C5, fluency: " + ", ".join(f"{k} {v:.3f}" for k, v in fluency.items()))
    if shape:
        print(
            "C1, shape: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in shape.items())
        )
    print(f"({time.perf_counter() - started:.0f} s)")
    if args.json:
        figures = {"ceilings": results, "info_only": partial, "levels": levels, "fluency": fluency, "shape": shape}
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"split": split, "images": len(evaluated), **figures}, handle, indent=1)


if __name__ == "__main__":
    main()
