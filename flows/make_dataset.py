"""Build the synthetic crawl: an offline CapOnImage2M in miniature (release format or raw crawl form).

python flows/make_dataset.py --out data/synthetic --images 2000 --seed 0 --preview
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

from components.cli import HelpFormatter, run
from components.data.pictures.preview import contact_sheet
from components.data.release.stats import format_summary, summarize_split
from components.data.synthetic.build import (
    SPLITS,
    SyntheticSpec,
    build_crawl,
    build_release,
    is_release_folder,
    remove_release,
)
from components.errors import ConfigError

PREVIEW_FILE = "preview.png"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/synthetic"), help="output folder")
    parser.add_argument("--images", type=int, default=2000, help="number of images")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same dataset)")
    parser.add_argument("--lang", choices=("zh", "en"), default="zh", help="caption language")
    parser.add_argument("--crawl-form", action="store_true", help="write the raw crawl form instead")
    parser.add_argument("--crawl-date", default=dt.date.today().isoformat(), help="partition of the crawl form")
    parser.add_argument("--preview", action="store_true", help=f"also write {PREVIEW_FILE}, a contact sheet")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--test-fraction", type=float, default=0.1)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="rendering processes")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out")
    return parser.parse_args(argv)


def make_spec(args: argparse.Namespace) -> SyntheticSpec:
    try:
        return SyntheticSpec(args.images, args.seed, args.lang, args.val_fraction, args.test_fraction)
    except ValueError as err:
        raise ConfigError("images/lang/val-fraction/test-fraction", str(err)) from err


def check_date(text: str) -> str:
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError as err:
        raise ConfigError("crawl-date", f"'{text}' is not a YYYY-MM-DD date") from err


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    spec = make_spec(args)
    if args.crawl_form:
        partition = build_crawl(spec, args.out, check_date(args.crawl_date), workers=args.workers)
        print(f"wrote {spec.images} crawl records to {partition}/products.jsonl")
        return 0
    if is_release_folder(args.out):
        if not args.overwrite:
            raise ConfigError("out", f"{args.out} already holds a dataset; pass --overwrite to replace it")
        remove_release(args.out)
    by_split, tokenizer = build_release(spec, args.out, workers=args.workers)
    summaries = [summarize_split(split, by_split[split], tokenizer) for split in SPLITS]
    print(f"wrote {args.out} (lang {spec.lang}, seed {spec.seed})")
    print(format_summary(summaries, len(tokenizer), unit="chars" if spec.lang == "zh" else "words"))
    if args.preview:
        sheet = contact_sheet(by_split["val"][:8] or by_split["train"][:8], args.out / "images", lang=spec.lang)
        sheet.save(args.out / PREVIEW_FILE)
        print(f"preview: {args.out / PREVIEW_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
