"""A release-format folder checked in parallel through Ray Data (``flows/check_dataset.py``).

The workers read each split's rows from the dataset's table (``components.data.release.table``),
check every record and open its image as ``release.parse_record`` does, and send back one small row
per image: its rejection, or the figures the Table 1 summary adds up (caption lengths in characters
and in words, since the vocabulary's mode may be known only at the end). The driver streams those
rows into totals: its memory holds counts, token counts and rejections, never the records. Ray is
imported where it is used.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from components import storage
from components.cluster import actor_pool
from components.data.record.rejection import RecordRejected, Rejection
from components.data.record.tokenizer import MODES, Tokenizer, guess_mode, split_chars, split_words
from components.data.release.format import CAPTIONS_FILE, IMAGES_DIR, SPLIT_FILES, parse_record
from components.data.release.stats import SplitSummary
from components.data.release.table import ALL_RECORDS, DatasetTable, ray_rows, version_vocabulary

SPLITTERS = {"char": split_chars, "word": split_words}


def _check_row(image_id: str, record_text: str, images_root: str, with_texts: bool) -> dict[str, Any]:
    """One image's row: ``reason`` "" and its figures, or the rejection's field, reason and detail."""
    row: dict[str, Any] = {"image_id": image_id, "reason": "", "field": "", "detail": "", "texts": ""}
    try:
        if not record_text:
            raise RecordRejected(CAPTIONS_FILE, "missing_record", "listed in a split file but has no record")
        record = parse_record(image_id, json.loads(record_text), images_root)
    except RecordRejected as rejected:
        return {**row, "field": rejected.rejection_field, "reason": rejected.reason, "detail": rejected.detail}
    row["captions"] = len(record.captions)
    for mode, split in SPLITTERS.items():
        lengths = [len(split(caption)) for caption in record.captions]
        row.update({f"{mode}_sum": sum(lengths), f"{mode}_min": min(lengths), f"{mode}_max": max(lengths)})
        row[f"{mode}_info"] = len(split(record.info))
    if with_texts:  # for a vocabulary built from the checked records; whitespace splits no token
        row["texts"] = "\n".join([*record.captions, record.info])
    return row


class CheckRecords:
    """``map_batches`` callable: index rows in, one checked row per image out."""

    def __init__(self, images_root: str, with_texts: bool):
        self.images_root, self.with_texts = images_root, with_texts

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = [
            _check_row(str(i), str(r), self.images_root, self.with_texts)
            for i, r in zip(batch["image_id"], batch["record"], strict=True)
        ]
        keys = ("image_id", "reason", "field", "detail", "texts")
        out = {key: np.array([row[key] for row in rows], dtype=object) for key in keys}
        for mode in SPLITTERS:
            for part in ("sum", "min", "max", "info"):
                out[f"{mode}_{part}"] = np.array([row.get(f"{mode}_{part}", 0) for row in rows], dtype=np.int64)
        out["captions"] = np.array([row.get("captions", 0) for row in rows], dtype=np.int64)
        return out


@dataclass
class SplitTotals:
    """A split's checked rows added up."""

    images: int = 0
    captions: int = 0
    lengths: dict[str, list[int]] = field(default_factory=lambda: {m: [0, 1 << 62, 0, 0] for m in SPLITTERS})
    rejections: list[Rejection] = field(default_factory=list)

    def add(self, row: dict[str, Any]) -> Rejection | None:
        if row["reason"]:
            rejection = Rejection(row["image_id"], row["field"], row["reason"], row["detail"])
            self.rejections.append(rejection)
            return rejection
        self.images += 1
        self.captions += int(row["captions"])
        for mode, total in self.lengths.items():
            total[0] += int(row[f"{mode}_sum"])
            total[1] = min(total[1], int(row[f"{mode}_min"]))
            total[2] = max(total[2], int(row[f"{mode}_max"]))
            total[3] += int(row[f"{mode}_info"])
        return None

    def summary(self, split: str, mode: str) -> SplitSummary:
        length_sum, length_min, length_max, info_sum = self.lengths[mode]
        return SplitSummary(
            split=split,
            images=self.images,
            captions=self.captions,
            captions_per_image=self.captions / self.images if self.images else 0.0,
            mean_caption_length=length_sum / self.captions if self.captions else 0.0,
            min_caption_length=length_min if self.images else 0,
            max_caption_length=length_max,
            mean_info_length=info_sum / self.images if self.images else 0.0,
        )


@dataclass
class DatasetCheck:
    """Every split of a folder checked: totals per split (file order), records in no split, the vocabulary."""

    splits: dict[str, SplitTotals]
    unsplit: int
    tokenizer: Tokenizer

    def summaries(self) -> list[SplitSummary]:
        return [totals.summary(name, self.tokenizer.mode) for name, totals in self.splits.items()]

    def rejections(self) -> list[Rejection]:
        return [r for totals in self.splits.values() for r in totals.rejections]


class CheckedVocabulary:
    """The folder's ``word2int.json`` (``saved``), or token counts of the checked records of one split
    (as ``Tokenizer.build`` counts them), in both modes until the texts say which."""

    def __init__(self, saved: Tokenizer | None, split: str | None):
        self.saved, self.split = saved, None if saved else split
        self.counts = {mode: Counter() for mode in MODES}
        self.cjk = False

    @classmethod
    def of(cls, table: DatasetTable, order: list[str]) -> CheckedVocabulary:
        return cls(version_vocabulary(table), "train" if "train" in table.splits else order[0])

    def add(self, texts: str) -> None:
        self.cjk = self.cjk or guess_mode([texts]) == "char"
        for mode, counts in self.counts.items():
            counts.update(SPLITTERS[mode](texts))

    def tokenizer(self) -> Tokenizer:
        if self.saved:
            return self.saved
        mode = "char" if self.cjk else "word"
        return Tokenizer.from_counts(self.counts[mode], mode)


def _checked_rows(table: DatasetTable, split: str, images_root: str, with_texts: bool, workers: int) -> Iterator[dict]:
    import ray

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # rows in split order: --strict stops at the first bad one
    ds = ray_rows(table, split, blocks=max(1, min(table.split(split).rows // 64, 400)))
    ds = ds.map_batches(
        CheckRecords,
        fn_constructor_kwargs=dict(images_root=images_root, with_texts=with_texts),
        batch_size=64,
        compute=actor_pool(workers),
        num_cpus=1,
    )
    for batch in ds.iter_batches(batch_size=1024, batch_format="numpy"):
        keys = list(batch)
        for values in zip(*(batch[key] for key in keys), strict=True):
            yield dict(zip(keys, values, strict=True))


def check_dataset(
    table: DatasetTable, images_root: str | None = None, *, strict: bool = False, workers: int = 2
) -> DatasetCheck:
    """Check every split of a version of a dataset's table that has a names file (every record as split ``all``
    when none has), in the order of the split files; with ``strict`` the first rejection raises
    ``DatasetError``. Ray must be up."""
    dataset = table.dataset
    order = [s for s in SPLIT_FILES if s in table.splits] or [ALL_RECORDS]
    vocabulary, root = CheckedVocabulary.of(table, order), images_root or storage.join(dataset, IMAGES_DIR)
    splits = {}
    for split in order:
        totals = splits[split] = SplitTotals()
        for image_id in table.split(split).duplicates:
            totals.rejections.append(
                Rejection(image_id, "split file", "duplicate_id", "listed again in the split file; the first is kept")
            )
            if strict:
                raise totals.rejections[-1].error()
        with_texts = split == vocabulary.split
        for row in _checked_rows(table, split, root, with_texts, workers):
            rejection = totals.add(row)
            if rejection and strict:
                raise rejection.error()
            if with_texts and not rejection:
                vocabulary.add(row["texts"])
    return DatasetCheck(splits, table.unsplit, vocabulary.tokenizer())
