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
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm import tqdm

from components.data.ingest.crawl import PRODUCTS_FILE, SUCCESS_FILE
from components.data.ingest.dedup import DedupIndex
from components.data.pictures.fonts import find_font
from components.data.record.tokenizer import Tokenizer
from components.data.release.format import (
    CAPTIONS_FILE,
    IMAGES_DIR,
    SPLIT_FILES,
    ImageRecord,
    save_image,
    write_captions_file,
    write_names,
)
from components.data.release.layout import INGEST_DIR
from components.data.release.table import TABLE_DIR, VOCABULARY_DIR, import_release
from components.data.synthetic.generate import Generated, generate_image
from components.data.synthetic.grammar import Item
from components.data.synthetic.lexicon import LEXICONS, Lexicon
from components.data.synthetic.truth import TRUTH_FILE, TRUTH_TABLE, ImageTruth, import_truth, write_truth
from components.progress import on_terminal

SPLITS = ("train", "val", "test")
CRAWL_SCALES = (2.0, 2.5, 3.0)  # crawled images are larger than the release's short side 256
NEAR_DUPLICATE_SHARE = 0.7  # the released pipeline's rule (SPEC 6), applied as the crawl is drawn
MAX_ATTEMPTS = 20


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


def crawl_image(spec: SyntheticSpec, index: int, draw: bool = True) -> Generated:
    """Image ``index`` of the crawl form of ``spec``: at its crawled size, with its labelled noise
    drawn (``record.captions`` are the texts drawn on it; ``truth`` holds the clean ones)."""
    lexicon, scale = LEXICONS[spec.lang], crawl_scale(spec.seed, index)
    return generate_image(lexicon, spec.seed, index, image_id(spec.seed, index), False, scale, crawl=True, draw=draw)


@dataclass(frozen=True)
class _Job:
    lang: str
    seed: int
    index: int
    split: str
    out: str | None  # None: plan only, no pixels written
    crawl: bool = False
    attempt: int = 0

    @property
    def noisy(self) -> bool:
        return self.split == "train" and not self.crawl


def _generate(job: _Job) -> tuple[_Job, Generated]:
    scale = crawl_scale(job.seed, job.index) if job.crawl else 1.0
    made = generate_image(
        LEXICONS[job.lang], job.seed, job.index, image_id(job.seed, job.index), job.noisy, scale,
        crawl=job.crawl, attempt=job.attempt, draw=job.out is not None,
    )  # fmt: skip
    if job.out is not None:
        save_image(job.out, made.record.image_id, made.image)
    return job, replace(made, image=None)


def _run(jobs: list[_Job], workers: int, desc: str) -> Iterator[tuple[_Job, Generated]]:
    progress = dict(total=len(jobs), desc=desc, unit="img", mininterval=2.0, disable=not on_terminal())
    if workers <= 1 or len(jobs) < 2:
        yield from tqdm(map(_generate, jobs), **progress)
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from tqdm(pool.imap(_generate, jobs, chunksize=16), **progress)


def plan_release(spec: SyntheticSpec, workers: int = 1) -> tuple[dict[str, list[Generated]], dict[int, int]]:
    """Every image planned, without pixels: (the images by split in index order, the attempt of every
    re-planned one). An image that is a near-duplicate of an earlier one by the released rule (sharing
    ``round(0.7 x`` its caption count``)`` captions with it; SPEC 6) is re-planned, as the real
    pipeline drops such images, the first seen kept; one still a near-duplicate after ``MAX_ATTEMPTS``
    stays. All splits alike, so that val and test are drawn like train."""
    splits = assign_splits(spec)
    jobs = [_Job(spec.lang, spec.seed, i, splits[i], None) for i in range(spec.images)]
    current = {job.index: (job, made) for job, made in _run(jobs, workers, "planning")}
    for _ in range(MAX_ATTEMPTS):
        again = _near_duplicates([current[i] for i in range(spec.images)])
        if not again:
            break
        retried = [replace(current[i][0], attempt=current[i][0].attempt + 1) for i in again]
        current.update({job.index: (job, made) for job, made in _run(retried, workers, "re-planning")})
    by_split: dict[str, list[Generated]] = {split: [] for split in SPLITS}
    for index in range(spec.images):
        by_split[splits[index]].append(current[index][1])
    return by_split, {i: job.attempt for i, (job, _) in current.items() if job.attempt}


def _near_duplicates(planned: list[tuple[_Job, Generated]]) -> list[int]:
    """The indices of images that are near-duplicates of an earlier image (index order)."""
    seen, again = DedupIndex(NEAR_DUPLICATE_SHARE), []
    for job, made in planned:
        if seen.near_duplicate_of(made.record.image_id, made.record.captions):
            again.append(job.index)
        else:
            seen.add(made.record.image_id, made.record.captions)
    return again


def _generate_all(
    spec: SyntheticSpec, out: Path, workers: int, crawl: bool = False
) -> Iterator[tuple[_Job, Generated]]:
    find_font(spec.lang)  # fail now, not in every worker, when the font is missing
    splits = assign_splits(spec)
    attempts = {} if crawl else plan_release(spec, workers)[1]
    jobs = [_Job(spec.lang, spec.seed, i, splits[i], str(out), crawl, attempts.get(i, 0)) for i in range(spec.images)]
    yield from _run(jobs, workers, "rendering")


def _crawl_line(item: Item, lexicon: Lexicon) -> dict:
    return {
        "product_id": item.image_id,
        "title": item.title(lexicon),
        "attributes": item.crawl_attributes(lexicon),
        "image": f"{IMAGES_DIR}/{item.image_id}.png",
    }


def build_release(
    spec: SyntheticSpec, out: str | Path, workers: int = 2
) -> tuple[dict[str, list[ImageRecord]], Tokenizer]:
    """Render ``spec.images`` images into a release-format folder with its index and its truth
    sidecar; the records by split and the vocabulary."""
    out = Path(out)
    by_split: dict[str, list[ImageRecord]] = {split: [] for split in SPLITS}
    truths: dict[str, list[ImageTruth]] = {split: [] for split in SPLITS}
    for job, made in _generate_all(spec, out, workers):
        by_split[job.split].append(made.record)
        truths[job.split].append(made.truth)
    train_texts = [c for r in by_split["train"] for c in r.captions] + [r.info for r in by_split["train"]]
    tokenizer = Tokenizer.build(train_texts, mode="char" if spec.lang == "zh" else "word", min_count=spec.min_count)
    tokenizer.save(out)
    for split in SPLITS:
        write_names(out / SPLIT_FILES[split], [r.image_id for r in by_split[split]])
    write_captions_file(out, [r for split in SPLITS for r in by_split[split]])  # marks completion
    version = import_release(str(out), replace=True).version  # the table a flow reads
    header = {"lang": spec.lang, "seed": spec.seed, "images": spec.images, "dataset_version": version}
    write_truth(str(out), header, [t for split in SPLITS for t in truths[split]])
    import_truth(str(out))  # the sidecar's table, which evaluation reads
    return by_split, tokenizer


def build_crawl(spec: SyntheticSpec, out: str | Path, crawl_date: str, workers: int = 2) -> Path:
    """Render the crawl form: ``out/crawl_date=DATE/products.jsonl`` plus its unmasked images at their
    crawled size, with labelled OCR-like noise drawn into some caption texts (``truth.jsonl`` says
    which), then ``_SUCCESS``. ``products.jsonl`` appears whole (written under a temporary name, then
    renamed) and ``_SUCCESS`` last, so a reader never takes a half-written partition."""
    partition = Path(out) / f"crawl_date={crawl_date}"
    lexicon = LEXICONS[spec.lang]
    made = [made for _, made in _generate_all(spec, partition, workers, crawl=True)]
    write_truth(str(partition), {"lang": spec.lang, "seed": spec.seed, "images": spec.images}, [m.truth for m in made])
    staged = partition / f".{PRODUCTS_FILE}.tmp"
    with open(staged, "w", encoding="utf-8") as handle:
        for m in made:
            handle.write(json.dumps(_crawl_line(m.item, lexicon), ensure_ascii=False) + "\n")
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
    for name in [*SPLIT_FILES.values(), "word2int.json", "int2word.json", "preview.png", TRUTH_FILE]:
        (path / name).unlink(missing_ok=True)
    for folder in (IMAGES_DIR, TABLE_DIR, TRUTH_TABLE, VOCABULARY_DIR, INGEST_DIR):  # the tables go too
        shutil.rmtree(path / folder, ignore_errors=True)
