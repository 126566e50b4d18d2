"""Write captions onto product images with a trained model (default: the registry's champion).

    python flows/caption.py --image product.png --boxes boxes.json --info "品牌 保温杯 316不锈钢"
    python flows/caption.py --image data/synthetic/images/000123.png --record record.json
    python flows/caption.py --dataset data/synthetic --split test --limit 200 [--version 3]   # batch, Ray Data
    python flows/caption.py --requests shoots/requests.jsonl --model RUN_ID        # batch, Ray Data

Boxes: a JSON list of "x1_y1_x2_y2" strings or [x1, y1, x2, y2] lists (fractions or pixels), or an
object {"boxes": [...], "info": "...", "mask_boxes": [...]}; a release-format record gives its
ocr_locs, all_locs and info. A requests file has one such object per line plus "image" (a path
relative to the file).

Each box's caption: the most likely of ``--candidates`` that passes every ``--checks`` (docs/publishing.md).
Writes captions.json (captions, each box's verdict) and each image as it would be published: old text
removed from the caption boxes, the captions set in them as large as fits, in the most readable colour.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from components.cli import HelpFormatter, run
from components.config import PUBLISH_CHECKS, PublishSection
from components.errors import ConfigError

DEFAULT_MODEL = "models:/caponimage@champion"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="models:/ or runs:/ URI, MLflow run id, checkpoint")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"))
    one = parser.add_argument_group("one image")
    one.add_argument("--image", help="image path or URI")
    one.add_argument("--boxes", help="JSON file: a list of boxes, or {boxes, info, mask_boxes}")
    one.add_argument("--record", help="JSON file: a release-format record (info, ocr_locs, all_locs)")
    one.add_argument("--info", help="the product info (title and attributes)")
    many = parser.add_argument_group("batch (Ray Data)")
    many.add_argument("--dataset", help="a release-format folder or URI")
    many.add_argument("--split", default="test", choices=("train", "val", "test"))
    many.add_argument("--version", default=None, help="the dataset's version: a number or a tag (default: latest)")
    many.add_argument("--requests", help="a JSON-lines file of requests")
    many.add_argument("--limit", type=int, default=None, help="caption the first N only")
    many.add_argument("--actors", type=int, default=1, help="model replicas")
    many.add_argument("--draw", type=int, default=20, help="images to draw in batch mode")
    parser.add_argument("--beam", type=int, default=1, help="beam size (1: greedy)")
    parser.add_argument("--candidates", type=int, default=6, help="captions per box to choose from (1 to 16)")
    parser.add_argument("--checks", default=",".join(PUBLISH_CHECKS), help="publishing checks; '' for none")
    parser.add_argument("--forbid-banned", action="store_true", help="never generate a banned advertising term")
    parser.add_argument("--out", type=Path, default=Path("outputs/captions"))
    args = parser.parse_args(argv)
    if sum([bool(args.image), bool(args.dataset), bool(args.requests)]) != 1:
        raise ConfigError("input", "give exactly one of --image, --dataset or --requests")
    if args.image and not (args.boxes or args.record):
        raise ConfigError("boxes", "--image needs --boxes or --record")
    if args.beam < 1:
        raise ConfigError("beam", f"must be at least 1 (got {args.beam})")
    args.publish = PublishSection.from_flags(args.checks, args.candidates, args.forbid_banned)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)  # 1. arguments, checked
    # torch, Ray and MLflow load from here on: --help and bad arguments answer at once
    from components.data.transforms.requests import single_request
    from components.serving.batch import caption_many, skipped_lines
    from components.serving.captioning import caption_request, verdict_lines, write_captions

    if args.image:  # 2. captions: one image in this process, or many over Ray Data
        request = single_request(args.image, args.boxes, args.record, args.info)
        results = [caption_request(request, args.model, args.tracking_uri, args.beam, args.publish)]
    else:
        inputs = (args.dataset, args.split, args.requests, args.limit)  # a dataset split or a requests file
        options = dict(beam_size=args.beam, actors=args.actors, publish=args.publish, version=args.version)
        results, skipped = caption_many(*inputs, args.model, args.tracking_uri, **options)
        for line in skipped_lines(skipped):
            print(line)
    entries, drawn = write_captions(results, args.out, 1 if args.image else args.draw)  # 3. JSON and pictures
    shown = [f"{entry['id']}: " + " | ".join(entry["captions"]) for entry in entries[:5]]
    example = f", e.g. {drawn[0]}" if drawn else ""
    done = f"{len(entries)} images captioned -> {args.out / 'captions.json'}; {len(drawn)} drawn{example}"
    print("\n".join([*shown, *verdict_lines(entries), done]))
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
