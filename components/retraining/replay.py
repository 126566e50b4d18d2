"""The candidate's training data: every new image plus a replayed sample of the old ones, so that
fine-tuning on a fresh crawl does not forget what the champion knew.

The view is a release-format folder (split files, records, vocabulary) of its own, which the fit
imports as its table; its images stay the dataset's (``data.images_root``). Val and test are the
dataset's, unchanged. Training rows are appended, so the images new since a version are the rows at
and after that version's row count: the view reads its rows in one pass and keeps only its own.
"""

from __future__ import annotations

import json

import numpy as np

from components import storage
from components.data.release.format import CAPTIONS_FILE, SPLIT_FILES, names_bytes
from components.data.release.table import head_rows, iter_rows, open_table, version_vocabulary_files


def replay_positions(old: int, new: int, ratio: float, seed: int) -> set[int]:
    """The training rows of a view out of ``old`` rows then ``new`` ones: ``round(ratio x new)`` old
    rows (at most all), drawn with ``seed``, and every new one."""
    count = min(old, round(ratio * new))
    chosen = set(np.random.default_rng(seed).choice(old, size=count, replace=False).tolist())
    return chosen | set(range(old, old + new))


def replay_ids(old: list[str], new: list[str], ratio: float, seed: int) -> list[str]:
    """The training ids of a view: the drawn old ids kept in dataset order, then every new id."""
    kept = replay_positions(len(old), len(new), ratio, seed)
    return [image_id for n, image_id in enumerate([*old, *new]) if n in kept]


def write_view(dataset: str, previous_version: str, folder: str, ratio: float, seed: int) -> dict[str, int]:
    """The view of the dataset's current version against ``previous_version`` written to ``folder``;
    how many images are new and replayed."""
    table, before = open_table(dataset), open_table(dataset, previous_version)
    old = before.split("train").rows
    new = table.split("train").rows - old
    kept = replay_positions(old, new, ratio, seed)
    splits = {"train": [row for n, row in enumerate(iter_rows(table, "train")) if n in kept]}
    splits.update({name: head_rows(table, name) for name in table.splits if name != "train"})
    records = {row["image_id"]: row["record"] for rows in splits.values() for row in rows if row["record"]}
    for name, data in version_vocabulary_files(table).items():
        storage.write_bytes(storage.join(folder, name), data)
    for name, rows in splits.items():
        storage.write_bytes(storage.join(folder, SPLIT_FILES[name]), names_bytes([r["image_id"] for r in rows]))
    text = "{" + ", ".join(f"{json.dumps(i, ensure_ascii=False)}: {record}" for i, record in records.items()) + "}"
    storage.write_bytes(storage.join(folder, CAPTIONS_FILE), text.encode("utf-8"))  # last: the folder is complete
    return {"new_images": new, "replayed_images": len(splits["train"]) - new}
