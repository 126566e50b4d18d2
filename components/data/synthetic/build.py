"""Writing a whole synthetic crawl: the release format (default) or the raw crawl form.

The release form is ``ref_captions.json``, the three split files, ``images/<id>.png`` and the
vocabulary built from the training split. ``ref_captions.json`` is written last, so its presence
means the folder is complete. The crawl form is what a fresh crawl looks like before ingest:
unmasked images plus one JSON line per product, under a ``crawl_date=YYYY-MM-DD`` partition.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from components.cli import on_terminal
from components.data.crawl import PRODUCTS_FILE, SUCCESS_FILE
from components.data.fonts import find_font
from components.data.index import INDEX_DIR, build_index
from components.data.release import (
    CAPTIONS_FILE,
    IMAGES_DIR,
    SPLIT_FILES,
    ImageRecord,
    save_image,
    write_captions_file,
    write_names,
)
from components.data.synthetic.generate import Item, generate_image
from components.data.synthetic.lexicon import LEXICONS
from components.data.tokenizer import Tokenizer
from components.data.versions import INGEST_DIR, VERSIONS_DIR

SPLITS = ("train", "val", "test")
CRAWL_SCALES = (2.0, 2.5, 3.0)  # crawled images are larger than the release's short side 256


@dataclass(frozen=True)
class SyntheticSpec:
    images: int
    seed: int = 0
    lang: str = "zh"
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    min_count: int = 2

    def __post_init__(self) -> None:
        if self.images < 1:
            raise ValueError(f"images must be at least 1, got {self.images}")
        if self.lang not in LEXICONS:
            raise ValueError(f"lang must be one of {', '.join(LEXICONS)}, got '{self.lang}'")
        if not (
            0 <= self.val_fraction < 1 and 0 <= self.test_fraction < 1 and self.val_fraction + self.test_fraction < 1
        ):
            raise ValueError("val_fraction and test_fraction must be in [0, 1) and sum below 1")


def image_id(seed: int, index: int) -> str:
    """Ids of different seeds never collide, so crawls can be merged."""
    return f"s{seed}-{index:07d}"


def assign_splits(spec: SyntheticSpec) -> list[str]:
    """The split of every image index: a seeded shuffle, val and test first, at least one each if asked."""
    n = spec.images

    def count(fraction: float) -> int:
        return 0 if fraction == 0 else max(1, round(n * fraction)) if n >= 3 else 0

    n_val, n_test = count(spec.val_fraction), count(spec.test_fraction)
    order = list(range(n))
    random.Random(spec.seed).shuffle(order)
    splits = ["train"] * n
    for position, index in enumerate(order):
        if position < n_val:
            splits[index] = "val"
        elif position < n_val + n_test:
            splits[index] = "test"
    return splits


def crawl_scale(seed: int, index: int) -> float:
    """How much larger than the release image ``index`` is crawled (its own stream: the layout, drawn
    from the image's stream, is the same in both forms)."""
    return random.Random(f"crawl-scale:{seed}:{index}").choice(CRAWL_SCALES)


def _render_one(job: tuple[str, int, int, str, bool, str, bool]) -> tuple[str, ImageRecord, dict]:
    lang, seed, index, split, noisy, out, crawl = job
    scale = crawl_scale(seed, index) if crawl else 1.0
    item, record, image = generate_image(LEXICONS[lang], seed, index, image_id(seed, index), noisy, scale)
    save_image(out, record.image_id, image)
    return split, record, _crawl_line(item)


def _crawl_line(item: Item) -> dict:
    return {
        "product_id": item.image_id,
        "title": item.title,
        "attributes": item.attributes,
        "image": f"{IMAGES_DIR}/{item.image_id}.png",
    }


def _render_all(
    spec: SyntheticSpec, out: Path, workers: int, noisy_train: bool, crawl: bool = False
) -> Iterator[tuple[str, ImageRecord, dict]]:
    find_font(spec.lang)  # fail now, not in every worker, when the font is missing
    splits = assign_splits(spec)
    jobs = [
        (spec.lang, spec.seed, i, splits[i], noisy_train and splits[i] == "train", str(out), crawl)
        for i in range(spec.images)
    ]
    progress = dict(total=len(jobs), desc="rendering", unit="img", mininterval=2.0, disable=not on_terminal())
    if workers <= 1:
        yield from tqdm(map(_render_one, jobs), **progress)
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from tqdm(pool.imap(_render_one, jobs, chunksize=16), **progress)


def build_release(
    spec: SyntheticSpec, out: str | Path, workers: int = 2
) -> tuple[dict[str, list[ImageRecord]], Tokenizer]:
    """Render ``spec.images`` images into a release-format folder; the records by split and the vocabulary."""
    out = Path(out)
    by_split: dict[str, list[ImageRecord]] = {split: [] for split in SPLITS}
    for split, record, _ in _render_all(spec, out, workers, noisy_train=True):
        by_split[split].append(record)
    train_texts = [c for r in by_split["train"] for c in r.captions] + [r.info for r in by_split["train"]]
    tokenizer = Tokenizer.build(train_texts, mode="char" if spec.lang == "zh" else "word", min_count=spec.min_count)
    tokenizer.save(out)
    for split in SPLITS:
        write_names(out / SPLIT_FILES[split], [r.image_id for r in by_split[split]])
    write_captions_file(out, [r for split in SPLITS for r in by_split[split]])  # marks completion
    build_index(str(out))
    return by_split, tokenizer


def build_crawl(spec: SyntheticSpec, out: str | Path, crawl_date: str, workers: int = 2) -> Path:
    """Render the crawl form: ``out/crawl_date=DATE/products.jsonl`` plus its unmasked images at their
    crawled size, then ``_SUCCESS``. ``products.jsonl`` appears whole (written under a temporary name,
    then renamed) and ``_SUCCESS`` last, so a reader never takes a half-written partition."""
    partition = Path(out) / f"crawl_date={crawl_date}"
    lines = [line for _, _, line in _render_all(spec, partition, workers, noisy_train=False, crawl=True)]
    staged = partition / f".{PRODUCTS_FILE}.tmp"
    with open(staged, "w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
    staged.replace(partition / PRODUCTS_FILE)
    (partition / SUCCESS_FILE).write_text("", "utf-8")
    return partition


def is_release_folder(path: str | Path) -> bool:
    return (Path(path) / CAPTIONS_FILE).is_file()


def remove_release(path: str | Path) -> None:
    """Delete the files of a release-format folder (and nothing else in it) before it is rebuilt."""
    path = Path(path)
    if not is_release_folder(path):
        raise ValueError(f"{path} is not a release-format folder")
    (path / CAPTIONS_FILE).unlink()  # first: the folder stops counting as complete
    for name in [*SPLIT_FILES.values(), "word2int.json", "int2word.json", "preview.png"]:
        (path / name).unlink(missing_ok=True)
    for folder in (IMAGES_DIR, INDEX_DIR, VERSIONS_DIR, INGEST_DIR):  # the index, versions and ledger go too
        shutil.rmtree(path / folder, ignore_errors=True)
