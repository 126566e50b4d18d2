"""Crawl partitions to a new dataset version: read, OCR, clean, deduplicate, resize, publish.

    1. the driver lists the partitions that are complete and not yet ingested (a changed one is
       refused unless reingested), reads their product lines, skips and counts bad lines and
       products the dataset already has;
    2. Ray Data streams the products through an actor pool, one OCR engine per actor: each actor
       reads the image at its crawled size, OCRs it, cleans the texts (``cleaning``), and writes the
       image resized to short side 256 into the dataset's ``images/``; a bad image is counted;
    3. the driver drops duplicate images and near-duplicates in crawl order (``dedup``: the dataset's
       side asked of the table's small columns for the crawl's images only), removes
       their written images, and appends the new training records to the dataset's table as one
       commit, its next version, tagged with the partitions' names (``table``); val and test never
       change. The vocabulary grows with the data: the new
       records' tokens it lacks, seen at least ``ingest.vocabulary_min_count`` times, are appended
       (every id it had keeps its token), so the version carries the vocabulary its records need.

Nothing here talks to MLflow: ``IngestResult`` carries the counts, timings and examples to log.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from components import storage
from components.cluster import object_column
from components.config import IngestSection
from components.data.ingest.cleaning import clean_texts
from components.data.ingest.crawl import Partition, Product, find_partitions, parse_product, partition_key, product_info
from components.data.ingest.crawl import read_products as read_product_lines
from components.data.ingest.dedup import CrawlDedup, DatasetMatches, known_ids
from components.data.ingest.fluency import (
    CausalLmScorer,
    FluencyFilter,
    calibrate,
    filter_report,
    fit_calibrated,
    load_ngram,
    save_ngram,
)
from components.data.ingest.ocr import OcrEngine, build_engine, engine_id
from components.data.record.images import image_digest, open_image
from components.data.record.rejection import RecordRejected
from components.data.record.tokenizer import Tokenizer
from components.data.release.format import ImageRecord, parse_record_value
from components.data.release.layout import INGEST_DIR, images_folder
from components.data.release.stats import format_summary, summarize_split
from components.data.release.table import (
    DatasetTable,
    append_rows,
    describe_sizes,
    ensure_table,
    iter_rows,
    open_table,
    partition_ledger,
    record_text,
    store_vocabulary,
    version_vocabulary,
)
from components.errors import ConfigError, PartitionChanged
from components.progress import logged_progress

log = logging.getLogger(__name__)
FLUENCY_FILE = f"{INGEST_DIR}/fluency.json"  # the n-gram fluency model, shipped with the dataset


# -- what to ingest ------------------------------------------------------------------------------------
@dataclass
class Plan:
    """What an ingest will do, decided on the driver before Ray starts."""

    dataset: str
    table: DatasetTable | None  # the dataset's current version, which the ingest appends to
    fluency: dict[str, Any]  # what an actor needs to build the fluency filter
    fluency_report: dict[str, float]
    partitions: list[Partition] = field(default_factory=list)  # to ingest, oldest first
    keys: dict[str, str] = field(default_factory=dict)  # partition -> its key
    skipped: dict[str, str] = field(default_factory=dict)  # partition -> why it is not ingested


def plan_ingest(
    dataset: str, crawl_root: str, section: IngestSection, *, only: str | None = None, reingest: bool = False
) -> Plan:
    """The complete partitions not ingested yet (or ``only`` that one). ``PartitionChanged`` for one
    ingested before whose key differs now, unless ``reingest``."""
    table = ensure_table(dataset)
    fluency, report = prepare_fluency(dataset, table, section)
    chosen = Plan(dataset, table, fluency, report)
    settings, ledger = settings_text(section, fluency), partition_ledger(dataset, table.number)
    for partition in _candidates(crawl_root, only):
        if not partition.complete:
            chosen.skipped[partition.name] = "incomplete (no _SUCCESS yet)"
            continue
        key = partition_key(partition, settings)
        before = ledger.get(partition.name)
        if before is not None and before.get("key") == key and not reingest:
            chosen.skipped[partition.name] = f"already ingested (key {key}, version {before.get('version')})"
            continue
        if before is not None and before.get("key") != key and not reingest:
            raise PartitionChanged(
                f"{partition.name} was ingested with key {before.get('key')} but its key is {key} now "
                "(its files or the ingest settings changed); pass --reingest to ingest it again"
            )
        chosen.partitions.append(partition)
        chosen.keys[partition.name] = key
    return chosen


def _candidates(crawl_root: str, only: str | None) -> list[Partition]:
    found = find_partitions(crawl_root)
    if only is None:
        return found
    found = [p for p in found if p.name == only]
    if not found:
        raise ConfigError("partition", f"{crawl_root} has no partition {only}")
    if not found[0].complete:
        raise ConfigError("partition", f"{only} is not complete yet (no _SUCCESS)")
    return found


def settings_text(section: IngestSection, fluency: dict[str, Any]) -> str:
    """Everything that decides an ingest's output, as part of each partition's key."""
    values = section.as_dict()
    for operational in ("actors", "cpus_per_actor", "batch_images"):  # how fast, not what
        values.pop(operational)
    values.update(ocr_engine=engine_id(section.ocr_engine), fluency=fluency["kind"], threshold=fluency["threshold"])
    return json.dumps(values, sort_keys=True)


# -- the fluency filter ---------------------------------------------------------------------------------
def _captions(table: DatasetTable, split: str) -> list[str]:
    rows = iter_rows(table, split) if split in table.splits else ()
    return [c for row in rows if row["record"] for c in json.loads(row["record"]).get("ocr_txts", [])]


def prepare_fluency(dataset: str, table: DatasetTable, section: IngestSection) -> tuple[dict[str, Any], dict]:
    """(what an actor needs to build the filter, the filter's report). The n-gram model is fitted on
    the training captions once, calibrated on phrasing it never saw, and saved with the dataset; a
    causal LM is calibrated on the val captions and reported on test's."""
    if section.fluency == "ngram":
        location = storage.join(dataset, FLUENCY_FILE)
        if not storage.exists(location):
            model, threshold, report = fit_calibrated(_captions(table, "train"))
            save_ngram(model, threshold, location, report)
        model, threshold, report = load_ngram(location)
        spec = {"kind": "ngram", "location": location}
    else:
        model = CausalLmScorer(section.fluency)
        threshold = calibrate(model, _captions(table, "val") or _captions(table, "train"))
        report = filter_report(FluencyFilter(model, threshold), _captions(table, "test"))
        spec = {"kind": "causal-lm", "location": section.fluency}
    if section.fluency_threshold is not None:
        threshold = section.fluency_threshold
        report = {**report, "fluency_threshold": threshold}
    return {**spec, "threshold": threshold}, report


def load_fluency(spec: dict[str, Any]) -> FluencyFilter:
    scorer = load_ngram(spec["location"])[0] if spec["kind"] == "ngram" else CausalLmScorer(spec["location"])
    return FluencyFilter(scorer, spec["threshold"])


# -- one product (in an actor) --------------------------------------------------------------------------
def resized_png(image: Image.Image, short_side: int) -> bytes:
    """The image with its short side at ``short_side`` pixels (aspect kept), as PNG."""
    scale = short_side / min(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    with io.BytesIO() as out:
        image.resize(size, Image.Resampling.LANCZOS).save(out, format="PNG")
        return out.getvalue()


def process_product(
    product: Product,
    partition_location: str,
    engine: OcrEngine,
    fluent: FluencyFilter,
    section: IngestSection,
    images_out: str,
) -> dict[str, Any]:
    """One product: OCR, cleaning, and its resized image written under ``images_out``; the outcome."""
    outcome = {"partition": product.partition, "line": product.line, "product_id": product.product_id}
    try:
        opened = open_image(partition_location, product.image)
    except RecordRejected as rejected:
        return {**outcome, "status": "rejected", "reason": rejected.reason, "detail": rejected.detail}
    image = opened.image.convert("RGB")
    started = time.perf_counter()
    texts = engine.read(image, product.image)
    ocr_seconds = time.perf_counter() - started
    info = product_info(product.title, product.attributes, section.max_info_chars)
    cleaned = clean_texts(
        texts,
        image.size,
        info,
        fluent,
        padding=section.box_padding * max(1.0, min(image.size) / section.short_side),  # at the stored size
        min_chars=section.min_chars,
        max_chars=section.max_chars,
    )
    fates = [[list(f.box), f.text, f.reason] for f in cleaned.fates]
    outcome.update(ocr_seconds=ocr_seconds, fates=json.dumps(fates, ensure_ascii=False), image=product.image)
    if len(cleaned.captions) < section.min_captions:
        detail = f"{len(cleaned.captions)} captions kept of {len(texts)} texts"
        return {**outcome, "status": "rejected", "reason": "too_few_captions", "detail": detail}
    record = ImageRecord(
        product.product_id, info, cleaned.mask_boxes, cleaned.caption_boxes, cleaned.captions, url=product.url
    )
    stored = resized_png(image, section.short_side)
    storage.write_bytes(storage.join(images_out, f"{product.product_id}.png"), stored)
    digests = [image_digest(opened.data), image_digest(stored)]  # the crawled bytes and the stored ones
    return {**outcome, "status": "kept", "record": json.dumps(record.to_json(), ensure_ascii=False), "digests": digests}


@dataclass(frozen=True)
class OcrJob:
    """What every OCR worker needs: where the partitions are, where images go, the settings, the filter."""

    partitions: dict[str, str]  # partition name -> location
    images_out: str
    section: IngestSection
    fluency: dict[str, Any]  # from prepare_fluency


class OcrImages:
    """``map_batches`` callable for an actor pool: product rows in, outcome rows out."""

    def __init__(self, job: OcrJob):
        self.job = job
        self.engine = build_engine(job.section.ocr_engine, max(1, int(job.section.cpus_per_actor)))
        self.fluent = load_fluency(job.fluency)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        job, outcomes = self.job, []
        for text in batch["product"]:
            product = Product(**json.loads(str(text)))
            location = job.partitions[product.partition]
            outcomes.append(process_product(product, location, self.engine, self.fluent, job.section, job.images_out))
        return {"outcome": object_column([json.dumps(o, ensure_ascii=False) for o in outcomes])}


def _product_rows(products: list[Product]) -> list[str]:
    return [json.dumps(dataclasses.asdict(p), ensure_ascii=False) for p in products]


def stream_outcomes(products: list[Product], job: OcrJob) -> Iterator[dict[str, Any]]:
    """Every product through the OCR actor pool (Ray must be up), outcomes as they finish."""
    import ray

    if not products:
        return
    rows = [{"product": text} for text in _product_rows(products)]
    section = job.section
    outcomes = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows) // section.batch_images, 200)))
    outcomes = outcomes.map_batches(
        OcrImages,
        fn_constructor_kwargs={"job": job},
        batch_size=section.batch_images,
        compute=ray.data.ActorPoolStrategy(size=section.actors),
        num_cpus=section.cpus_per_actor,
    )
    for row in outcomes.iter_rows():
        yield json.loads(row["outcome"])


def ocr_products(products: list[Product], job: OcrJob) -> list[dict[str, Any]]:
    """Every product through the OCR actor pool (Ray must be up); the outcomes in crawl order."""
    order = {name: i for i, name in enumerate(sorted(job.partitions))}
    outcomes = logged_progress(stream_outcomes(products, job), len(products), "images OCR'd", log)
    return sorted(outcomes, key=lambda o: (order[o["partition"]], o["line"]))


def ocr_in_process(products: list[Product], job: OcrJob) -> list[dict[str, Any]]:
    """The same as ``ocr_products`` in this process, one engine (small crawls, tests, benchmarks)."""
    if not products:
        return []
    return [json.loads(o) for o in OcrImages(job)({"product": object_column(_product_rows(products))})["outcome"]]


OcrRunner = Callable[[list[Product], OcrJob], list[dict[str, Any]]]


# -- the whole ingest (driver) --------------------------------------------------------------------------
@dataclass
class IngestResult:
    dataset: str
    previous_version: str
    version: str  # the current version after ingest (the previous one if nothing was added)
    partitions: dict[str, str]  # ingested: partition -> key
    skipped_partitions: dict[str, str]
    fluency: dict[str, float]  # the filter's threshold and how it treats unseen and scrambled captions
    stages: Counter = field(default_factory=Counter)  # the funnel: lines, products, images_read, cleaned, added
    rejected: Counter = field(default_factory=Counter)  # reason -> lines or images dropped for it
    texts: Counter = field(default_factory=Counter)  # OCR texts: total, kept, and per reason
    examples: list[dict[str, Any]] = field(default_factory=list)  # outcomes (with their texts' fates) to draw
    messages: list[str] = field(default_factory=list)  # a few rejections in words
    ocr_seconds: list[float] = field(default_factory=list)
    oov_share: float = 0.0  # new caption characters outside the vocabulary, after it grew
    vocabulary: Tokenizer | None = None  # the dataset's vocabulary grown by the new tokens (None: unchanged)
    vocabulary_added: list[str] = field(default_factory=list)
    new_records: list[ImageRecord] = field(default_factory=list)
    locations: dict[str, str] = field(default_factory=dict)  # partition -> where it is
    duplicates_of: dict[str, tuple[str, str]] = field(default_factory=dict)  # dropped -> (reason, image it repeats)
    committed: bool = False  # the new version is the table's current one, its history has the partitions
    digests: dict[str, list[str]] = field(default_factory=dict)  # new image id -> its crawled and stored digests
    parent: DatasetTable | None = None  # the version ingested into

    def summary(self) -> str:
        """The funnel, the rejections by reason, what became of the OCR texts, and the versions."""
        lines = [f"partitions ingested: {', '.join(self.partitions) or 'none'}"]
        lines += [f"  skipped {name}: {why}" for name, why in self.skipped_partitions.items()]
        if not self.partitions:
            return "\n".join(lines)
        lines.append(f"{'stage':<24}{'count':>8}")
        lines += [f"  {stage:<22}{self.stages[stage]:>8}" for stage in STAGES]
        lines.append(f"rejected: {sum(self.rejected.values())}")
        lines += [f"  {reason:<22}{count:>8}" for reason, count in sorted(self.rejected.items())]
        kept = self.texts["kept"]
        lines.append(f"OCR texts: {self.texts['total']}, kept as captions {kept}")
        lines += [f"  {r:<22}{n:>8}" for r, n in sorted(self.texts.items()) if r not in ("total", "kept")]
        if self.ocr_seconds:
            lines.append(
                f"OCR: {np.mean(self.ocr_seconds):.2f} s per image (p95 {np.quantile(self.ocr_seconds, 0.95):.2f})"
            )
        added = "".join(self.vocabulary_added[:40]) + ("..." if len(self.vocabulary_added) > 40 else "")
        lines.append(f"vocabulary: {len(self.vocabulary_added)} new tokens added {added}".rstrip())
        lines.append(f"new caption characters still outside the vocabulary: {100 * self.oov_share:.2f}%")
        lines.append(
            f"version: {self.previous_version} -> {self.version} ({self.stages['added']} training images added)"
        )
        return "\n".join(lines)


STAGES = ("lines", "products", "images_read", "cleaned", "added")


def added_table(result: IngestResult) -> str:
    """The Table 1 summary of the records an ingest added, and each split's size in the version it
    made (from the table's log: an ingest reads no record it did not add; ``check_dataset.py``
    summarises a whole version)."""
    table = open_table(result.dataset, result.version)
    tokenizer = result.vocabulary or version_vocabulary(table)
    if tokenizer is None:
        tokenizer = Tokenizer.build(t for r in result.new_records for t in (*r.captions, r.info))
    unit = "chars" if tokenizer.mode == "char" else "words"
    summary = format_summary([summarize_split("added", result.new_records, tokenizer)], len(tokenizer), unit=unit)
    return f"{summary}\nversion {table.version}: {describe_sizes(table)}"


def read_products(plan: Plan, result: IngestResult) -> list[Product]:
    """The planned partitions' products; bad lines, and products the dataset has (one pass over its
    ids) or the crawl had before, are counted and skipped."""
    parsed = []
    for partition in plan.partitions:
        for line, text in read_product_lines(partition):
            result.stages["lines"] += 1
            try:
                parsed.append(parse_product(partition.name, line, text))
            except RecordRejected as rejected:
                _reject(result, rejected.reason, f"{partition.name} line {line}: {rejected}")
    ids = [product.product_id for product in parsed]
    known = known_ids(plan.table, ids) if plan.table is not None else set()  # no table: a crawl read alone
    products, seen = [], set()
    for product in parsed:
        if product.product_id in known or product.product_id in seen:
            _reject(result, "duplicate_product", f"{product.partition} line {product.line}: {product.product_id}")
            result.duplicates_of[product.product_id] = ("duplicate_product", product.product_id)
            continue
        seen.add(product.product_id)
        result.stages["products"] += 1
        products.append(product)
    return products


def _reject(result: IngestResult, reason: str, message: str) -> None:
    result.rejected[reason] += 1
    if len(result.messages) < 20:
        result.messages.append(f"{reason}: {message}")


def run_ingest(
    plan: Plan, section: IngestSection, examples: int = 8, ocr: OcrRunner = ocr_products, *, commit: bool = True
) -> IngestResult:
    """The planned partitions into the dataset's next version (with ``ocr_products``, Ray must be up).

    Without ``commit`` the new records are only returned (``result.version`` names the version they
    would make): ``commit_ingest`` appends them once a caller's checks pass (retraining's data gate).
    """
    table = plan.table
    result = IngestResult(
        plan.dataset, table.version, table.version, dict(plan.keys), plan.skipped, plan.fluency_report
    )
    result.locations = {p.name: p.location for p in plan.partitions}
    result.parent = table
    if not plan.partitions:
        return result
    products = read_products(plan, result)
    result.stages["images_read"] = len(products)
    job = OcrJob(result.locations, images_folder(plan.dataset), section, plan.fluency)
    outcomes = ocr(products, job)
    # Checked against the version's rows (one pass over their small columns), not against the images
    # a crashed ingest may have left in images/.
    share = section.near_duplicate_share
    dedup = CrawlDedup(DatasetMatches.find(table, crawl_images(outcomes), share), share)
    for outcome in outcomes:
        _settle(outcome, dedup, job.images_out, result, examples)
    base = version_vocabulary(table)
    grow_vocabulary(result, base, section.vocabulary_min_count)
    result.oov_share = oov_share(result.new_records, result.vocabulary or base)
    if result.new_records:
        result.version = str(table.number + 1)  # what the commit makes, unless another writer commits first
    if commit:
        commit_ingest(result)
    return result


def crawl_images(outcomes: list[dict[str, Any]]) -> dict[str, tuple[list[str], list[str]]]:
    """The cleaned images of an OCR pass: product id -> (its captions, its digests)."""
    return {
        o["product_id"]: (json.loads(o["record"])["ocr_txts"], o["digests"])
        for o in outcomes
        if o["status"] != "rejected"
    }


def commit_ingest(result: IngestResult, note: dict[str, Any] | None = None) -> None:
    """Append an ingest's new records to the table as one commit on top of the version it read, its
    partitions with their keys in the commit (an ingest that added nothing commits no rows, so that
    its partitions are not ingested again); ``note`` goes into the commit. ``ConcurrentCommit`` when
    another ingest committed first."""
    dataset = result.dataset
    vocabulary = None
    if result.vocabulary is not None:
        vocabulary = store_vocabulary(dataset, result.vocabulary.vocabulary_files())
    details = {"added": len(result.new_records), "rejected": dict(result.rejected), **(note or {})}
    if result.vocabulary_added:
        details["vocabulary_added"] = len(result.vocabulary_added)
    rows = [(record.image_id, record_text(record.to_json())) for record in result.new_records]
    table = append_rows(
        result.parent, "train", rows, partitions=result.partitions, tags=list(result.partitions),
        vocabulary=vocabulary, note=details, digests=result.digests,
    )  # fmt: skip
    result.version = table.version
    result.committed = True


def _settle(outcome: dict[str, Any], dedup: CrawlDedup, images_out: str, result: IngestResult, examples: int) -> None:
    """One OCR outcome through the dedup rules, in crawl order."""
    where = f"{outcome['partition']} line {outcome['line']} ({outcome['product_id']})"
    if "ocr_seconds" in outcome:
        result.ocr_seconds.append(outcome["ocr_seconds"])
        fates = json.loads(outcome["fates"])
        result.texts["total"] += len(fates)
        result.texts.update(reason or "kept" for _, _, reason in fates)
        if len(result.examples) < examples:
            result.examples.append(outcome)
    if outcome["status"] == "rejected":
        _reject(result, outcome["reason"], f"{where}: {outcome.get('detail', '')}")
        return
    result.stages["cleaned"] += 1
    record = json.loads(outcome["record"])
    duplicate = dedup.duplicate(outcome["product_id"], record["ocr_txts"], outcome["digests"])
    if duplicate is not None:
        outcome["status"], outcome["reason"] = "dropped", duplicate[0]
        _reject(result, duplicate[0], f"{where} duplicates {duplicate[1]}")
        result.duplicates_of[outcome["product_id"]] = (duplicate[0], duplicate[1])
        storage.delete(storage.join(images_out, f"{outcome['product_id']}.png"))
        return
    dedup.keep(outcome["product_id"], record["ocr_txts"], outcome["digests"])
    result.digests[outcome["product_id"]] = list(outcome["digests"])
    result.new_records.append(parse_record_value(outcome["product_id"], record, None))
    result.stages["added"] += 1


def grow_vocabulary(result: IngestResult, base: Tokenizer | None, min_count: int) -> None:
    """The dataset's vocabulary plus the new records' tokens (captions and info) it lacks, seen at
    least ``min_count`` times, into ``result`` (nothing without a stored vocabulary or new tokens)."""
    if base is None or not result.new_records:
        return
    texts = [text for record in result.new_records for text in (*record.captions, record.info)]
    added = base.new_tokens(texts, min_count)
    if added:
        result.vocabulary, result.vocabulary_added = base.extended(added), added
        log.info(
            "vocabulary: %d new tokens seen at least %d times added (%d in all)",
            len(added),
            min_count,
            len(result.vocabulary),
        )


def oov_share(records: list[ImageRecord], vocabulary: Tokenizer | None) -> float:
    """The share of the new captions' tokens (characters, or words) outside ``vocabulary`` (0 without one)."""
    if vocabulary is None or not records:
        return 0.0
    tokens = [token for r in records for caption in r.captions for token in vocabulary.tokenize(caption)]
    return sum(token not in vocabulary.word2int for token in tokens) / max(1, len(tokens))
