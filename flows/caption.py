"""Write captions onto product images with a trained model (default: the registry's champion).

    python flows/caption.py --image product.png --boxes boxes.json --info "品牌 保温杯 316不锈钢"
    python flows/caption.py --image data/synthetic/images/000123.png --record record.json
    python flows/caption.py --dataset data/synthetic --split test --limit 200      # batch, Ray Data
    python flows/caption.py --requests shoots/requests.jsonl --model RUN_ID        # batch, Ray Data

Boxes: a JSON list of "x1_y1_x2_y2" strings or [x1, y1, x2, y2] lists (fractions or pixels), or an
object {"boxes": [...], "info": "...", "mask_boxes": [...]}; a release-format record gives its
ocr_locs, all_locs and info. A requests file has one such object per line plus "image" (a path
relative to the file). Writes captions.json and each image with its captions drawn in its boxes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from components import storage
from components.cli import run
from components.data.tokenizer import guess_mode
from components.errors import ConfigError

DEFAULT_MODEL = "models:/caponimage@champion"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    many.add_argument("--requests", help="a JSON-lines file of requests")
    many.add_argument("--limit", type=int, default=None, help="caption the first N only")
    many.add_argument("--actors", type=int, default=1, help="model replicas")
    many.add_argument("--draw", type=int, default=20, help="images to draw in batch mode")
    parser.add_argument("--beam", type=int, default=1, help="beam size (1: greedy)")
    parser.add_argument("--out", type=Path, default=Path("outputs/captions"))
    args = parser.parse_args(argv)
    modes = [bool(args.image), bool(args.dataset), bool(args.requests)]
    if sum(modes) != 1:
        raise ConfigError("input", "give exactly one of --image, --dataset or --requests")
    if args.image and not (args.boxes or args.record):
        raise ConfigError("boxes", "--image needs --boxes or --record")
    if args.beam < 1:
        raise ConfigError("beam", f"must be at least 1 (got {args.beam})")
    return args


def read_json(path: str, key: str) -> Any:
    try:
        return json.loads(storage.read_bytes(path).decode("utf-8"))
    except FileNotFoundError as err:
        raise ConfigError(key, f"{path} does not exist") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(key, f"{path} is not JSON: {err}") from err


def single_request(args: argparse.Namespace) -> dict[str, Any]:
    """The one image's request from --image, --boxes / --record and --info."""
    from components.serving.requests import box_text

    spec = read_json(args.record, "record") if args.record else read_json(args.boxes, "boxes")
    if args.record:
        spec = {"boxes": spec.get("ocr_locs"), "mask_boxes": spec.get("all_locs"), "info": spec.get("info")}
    elif isinstance(spec, list):
        spec = {"boxes": spec}
    info = args.info if args.info is not None else spec.get("info")
    if not isinstance(spec.get("boxes"), list) or not spec["boxes"]:
        raise ConfigError("boxes", "no boxes: give a non-empty list of boxes")
    if not isinstance(info, str):
        raise ConfigError("info", "the product info is missing: give --info or an 'info' in the JSON")
    try:
        image = storage.read_bytes(args.image)
    except FileNotFoundError as err:
        raise ConfigError("image", f"{args.image} does not exist") from err
    try:
        boxes = [box_text(b) for b in spec["boxes"]]
        mask = [box_text(b) for b in spec.get("mask_boxes") or []]
    except Exception as err:
        raise ConfigError("boxes", str(err)) from err
    return {
        "id": Path(args.image).stem,
        "source": args.image,
        "image": image,
        "info": info,
        "boxes": boxes,
        "mask_boxes": mask,
    }


def caption_one(args: argparse.Namespace) -> list[dict[str, Any]]:
    import pandas as pd

    from components.serving.batch import load_captioning_model

    request = single_request(args)
    model = load_captioning_model(args.model, args.tracking_uri)
    frame = pd.DataFrame({k: [request[k]] for k in ("image", "info", "boxes", "mask_boxes")})
    captions = model.predict(frame, params={"beam_size": args.beam})["captions"][0]
    return [{**request, "captions": list(captions)}]


def caption_many(args: argparse.Namespace) -> list[dict[str, Any]]:
    from components.serving.batch import caption_batch, index_rows
    from components.training.config import JobConfig
    from components.training.job import init_ray

    rows, root, kind = index_rows(args.dataset, args.split, args.requests, args.limit)
    init_ray(JobConfig())
    results, skipped = caption_batch(
        rows, root, kind, args.model, args.tracking_uri, beam_size=args.beam, actors=args.actors
    )
    counts = skipped.get("counts", {})
    if counts:
        print(f"skipped {sum(counts.values())} of {len(rows)}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        for example in skipped.get("examples", [])[:5]:
            print(f"  {example}")
    return results


def draw(result: dict[str, Any], out: Path) -> Path:
    """The image with its boxes masked and the generated captions drawn in them."""
    from components.evaluation.rendering import draw_captions, masked_image
    from components.serving.requests import open_image, request_record

    data = result["image"] if "image" in result else storage.read_bytes(result["source"])
    image = open_image(data, str(result["id"]))
    record = request_record(str(result["id"]), result["info"], result["boxes"], result["mask_boxes"], image.size)
    lang = "zh" if guess_mode(result["captions"] + [result["info"]]) == "char" else "en"
    picture = draw_captions(masked_image(image, record.mask_boxes), record.caption_boxes, result["captions"], lang)
    path = out / f"{Path(str(result['id'])).stem}_captioned.png"
    picture.save(path)
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)  # 1. arguments, checked
    results = caption_one(args) if args.image else caption_many(args)  # 2. captions
    args.out.mkdir(parents=True, exist_ok=True)  # 3. captions.json and the drawn images
    drawn = [draw(r, args.out) for r in results[: (1 if args.image else args.draw)]]
    entries = [  # plain JSON types: Ray Data hands lists back as numpy arrays
        {
            "id": str(r["id"]),
            "info": str(r["info"]),
            "boxes": [str(b) for b in r["boxes"]],
            "captions": [str(c) for c in r["captions"]],
        }
        for r in results
    ]
    (args.out / "captions.json").write_text(json.dumps(entries, ensure_ascii=False, indent=1), "utf-8")
    for entry in entries[:5]:
        print(f"{entry['id']}: " + " | ".join(entry["captions"]))
    print(f"{len(entries)} images captioned -> {args.out / 'captions.json'}; {len(drawn)} drawn, e.g. {drawn[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
