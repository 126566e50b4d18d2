"""What choosing among candidates with the publishing checks does to a trained model's captions on a
split: the share of boxes whose caption fits and reads back, CIDEr and Div@2, before (each box's most
likely caption, judged) and after (the first candidate passing every check), and the time the checks
add per image. No Ray, no MLflow server: the model is read from a checkpoint or the local registry.

    python bench/publishing_bench.py                                   # the champion, 200 test images
    python bench/publishing_bench.py --model outputs/run/checkpoint --images 400 --candidates 6

Decoding runs once (beam search of width ``--candidates``); the checks run twice per image on the same
candidates: once on the most likely alone (before), once choosing (after), the OCR engine loaded once.
Time per image is the checks' wall clock on this machine (one thread for OCR); also given per box and
for a 5-box image at the per-box rate.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import time

from components.config import ModelConfig
from components.data.record.boxes import Box
from components.data.release.table import ensure_table, read_split
from components.data.transforms.requests import dataset_request, encode_requests, request_image
from components.evaluation.diversity import diversity
from components.evaluation.scores import caption_scores
from components.model.inference import Captioner
from components.publishing.choice import CHECKS
from components.publishing.rates import publishing_rates
from components.publishing.records import build_publisher, publish_boxes
from components.tracking.sources import ModelSource

CHUNK = 16


def judged(publisher, captioner: Captioner, requests: list[dict], count: int) -> dict[str, list]:
    """Per box: references, the verdicts before and after choosing, and per image the checks' seconds."""
    out: dict[str, list] = {"keys": [], "references": [], "before": [], "after": [], "seconds": [], "boxes": []}
    for start in range(0, len(requests), CHUNK):
        chunk = requests[start : start + CHUNK]
        rows, _ = encode_requests(chunk, captioner.tokenizer, captioner.spec)
        for request, per_box in zip(chunk, captioner.candidates(rows, count), strict=True):
            image = request_image(request["image"], request["id"])
            boxes = [Box(*map(float, b.split("_"))) for b in request["boxes"]][: len(per_box)]
            before, _ = publish_boxes(publisher, image, boxes, request["info"], [c[:1] for c in per_box])
            began = time.perf_counter()
            after, _ = publish_boxes(publisher, image, boxes, request["info"], per_box)
            out["seconds"].append(time.perf_counter() - began)
            out["boxes"].append(len(boxes))
            out["before"] += [v.as_dict() for v in before]
            out["after"] += [v.as_dict() for v in after]
            out["references"] += list(request["references"][: len(boxes)])
            out["keys"] += [f"{request['id']}#{n}" for n in range(len(boxes))]
    return out


def caption_figures(keys: list[str], references: list[str], verdicts: list[dict], mode: str) -> dict[str, float]:
    predictions = {k: v["caption"] for k, v in zip(keys, verdicts, strict=True)}
    paragraphs: dict[str, list[str]] = {}
    for key, caption in predictions.items():
        paragraphs.setdefault(key.rsplit("#", 1)[0], []).append(caption)
    scores = caption_scores(dict(zip(keys, references, strict=True)), predictions, mode, meteor=False)
    return {"CIDEr": scores["CIDEr"], "BLEU@4": scores["BLEU@4"], "Div@2": diversity(paragraphs, mode)["Div@2"]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models:/caponimage@champion", help="checkpoint, run id or models:/ URI")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"))
    parser.add_argument("--dataset", default="data/synthetic")
    parser.add_argument("--split", default="test", choices=("val", "test"))
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    checkpoint = ModelSource.parse(args.model, "--model").load_for_inference(args.tracking_uri)
    captioner = Captioner(ModelConfig.from_dict(checkpoint.job["model"]), checkpoint.model_state, checkpoint.tokenizer)
    ensure_table(args.dataset)
    root = f"{args.dataset}/images"
    index = read_split(args.dataset, args.split, args.images)
    requests = [dataset_request(root, r["image_id"], r["record"]) for r in index]
    publisher = build_publisher(CHECKS)
    out = judged(publisher, captioner, requests, args.candidates)
    mode = checkpoint.tokenizer.mode
    boxes, seconds = sum(out["boxes"]), sum(out["seconds"])
    result = {
        "model": args.model, "images": len(requests), "boxes": boxes, "candidates": args.candidates,
        "before": {**publishing_rates(out["before"], CHECKS),
                   **caption_figures(out["keys"], out["references"], out["before"], mode)},
        "after": {**publishing_rates(out["after"], CHECKS),
                  **caption_figures(out["keys"], out["references"], out["after"], mode)},
        "seconds_per_image": seconds / len(requests), "seconds_per_box": seconds / boxes,
    }  # fmt: skip
    result["seconds_per_5_box_image"] = 5 * result["seconds_per_box"]
    for stage in ("before", "after"):  # why captions do not fit: a caption too long, or a box no caption fits
        verdicts = collections.Counter(v["fit"]["verdict"] for v in out[stage] if "fit" in v["failed"])
        result[stage]["fit_failures"] = dict(verdicts.most_common())
        stated = [item for v in out[stage] for item in v["reasons"].get("grounding", "").split(": ", 1)[-1].split(", ")]
        kinds = collections.Counter(
            item.rsplit("(", 1)[-1].rstrip(")") if "(" in item else "amount" for item in stated if item
        )
        result[stage]["grounding_failures"] = dict(kinds.most_common())
    print(f"{args.model} on {args.split}: {len(requests)} images, {boxes} boxes, {args.candidates} candidates")
    rows = ("publish_fit_rate", "publish_read_back_rate", "publish_ready_rate", "publish_grounding_violation_rate",
            "publish_compliance_violation_rate", "CIDEr", "BLEU@4", "Div@2")  # fmt: skip
    for name in rows:
        print(f"  {name:<36} before {result['before'][name]:8.3f}   after {result['after'][name]:8.3f}")
    print(f"  a less likely candidate chosen for {100 * result['after']['publish_chose_other_rate']:.1f}% of boxes")
    for key in ("fit_failures", "grounding_failures"):
        print(f"  {key.replace('_', ' ')}: before {result['before'][key]}, after {result['after'][key]}")
    per_box = result["seconds_per_box"] * 1000
    print(f"  checks: {result['seconds_per_image']:.3f} s per image, {per_box:.1f} ms per box, "
          f"{result['seconds_per_5_box_image']:.3f} s per 5-box image")  # fmt: skip
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, ensure_ascii=False, indent=1)
    return result


if __name__ == "__main__":
    main()
