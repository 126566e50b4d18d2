"""Captioning many images with Ray Data: a release-format dataset or a JSON-lines file of requests.

Readers validate every request (image, boxes, info) and skip a bad one, counted by reason in a
tally actor, so one bad record never stops a batch job; an actor pool holding the model captions
the rest.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from components import storage
from components.cluster import actor_pool, init_ray, object_column
from components.config import JobConfig
from components.data.pipeline.stream import make_tally
from components.data.record.rejection import RecordRejected
from components.data.release.format import IMAGES_DIR
from components.data.release.index import read_index
from components.data.transforms.requests import dataset_request, file_request
from components.errors import ConfigError
from components.serving.captioning import load_captioning_model

log = logging.getLogger(__name__)
COLUMNS = ("key", "id", "source", "image", "info", "boxes", "mask_boxes")


class RequestReader:
    """``map_batches`` callable: index rows (a dataset record or a requests-file line) to requests."""

    def __init__(self, root: str, kind: str, tally=None):
        self.root, self.kind, self.tally = root, kind, tally

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out: dict[str, list] = {key: [] for key in COLUMNS}
        for key, text in zip(rows["key"], rows["text"], strict=True):
            try:
                if self.kind == "dataset":
                    request = dataset_request(self.root, str(key), str(text))
                else:
                    request = file_request(self.root, int(key), str(text))
            except RecordRejected as rejected:
                message = f"{self.kind} entry {key}: {rejected}"
                log.warning("skipping %s", message)
                if self.tally is not None:
                    self.tally.add.remote(rejected.reason, message)
                continue
            for column in COLUMNS:
                out[column].append(str(key) if column == "key" else request[column])
        return {key: object_column(values) for key, values in out.items()}


class ModelCaptioner:
    """``map_batches`` callable for an actor pool: requests in, the same rows with their captions out
    (without the image bytes: the driver re-reads only the images it draws)."""

    def __init__(self, source: str, tracking_uri: str, beam_size: int = 1):
        self.model = load_captioning_model(source, tracking_uri)
        self.beam_size = beam_size

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        kept = {k: v for k, v in rows.items() if k != "image"}
        for key in ("boxes", "mask_boxes"):  # plain lists of strings keep Arrow blocks (no pickled fallback)
            kept[key] = object_column([[str(b) for b in one] for one in rows[key]])
        if len(rows["id"]) == 0:
            return {**kept, "captions": object_column([])}
        frame = pd.DataFrame({k: list(rows[k]) for k in ("image", "info", "boxes", "mask_boxes")})
        captions = self.model.predict(frame, params={"beam_size": self.beam_size})["captions"]
        return {**kept, "captions": object_column([[str(c) for c in one] for one in captions])}


def batch_inputs(
    dataset: str | None, split: str, requests_file: str | None, limit: int | None
) -> tuple[list, str, str]:
    """(rows ``{"key", "text"}``, root, kind) of a release-format dataset split or a requests file."""
    if dataset:
        rows = [{"key": r["image_id"], "text": r["record"]} for r in read_index(dataset, split, limit)]
        return rows, storage.join(dataset, IMAGES_DIR), "dataset"
    text = storage.read_bytes(requests_file).decode("utf-8")
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    rows = [{"key": n, "text": line} for n, line in lines[:limit]]
    root = requests_file.rsplit("/", 1)[0] if "/" in requests_file else "."
    return rows, root, "requests"


def caption_batch(
    rows: list[dict], root: str, kind: str, source: str, tracking_uri: str, *, beam_size: int = 1, actors: int = 1
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every valid request with its captions (in input order), and the skipped ones by reason."""
    import ray

    if not rows:
        raise ConfigError("input", "nothing to caption: the split or requests file is empty")
    tally = make_tally()
    order = {str(r["key"]): i for i, r in enumerate(rows)}
    ds = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows) // 8, 100)))
    ds = ds.map_batches(RequestReader, fn_constructor_kwargs=dict(root=root, kind=kind, tally=tally), batch_size=8)
    ds = ds.map_batches(
        ModelCaptioner,
        fn_constructor_kwargs=dict(source=source, tracking_uri=tracking_uri, beam_size=beam_size),
        batch_size=16,
        compute=actor_pool(actors),
        num_cpus=1,
    )
    results = sorted(ds.take_all(), key=lambda r: order[str(r["key"])])
    skipped = ray.get(tally.report.remote())
    ray.kill(tally)
    return results, skipped


def caption_many(
    dataset: str | None,
    split: str,
    requests_file: str | None,
    limit: int | None,
    source: str,
    tracking_uri: str,
    *,
    beam_size: int = 1,
    actors: int = 1,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A dataset split or a requests file captioned over Ray Data (a local cluster unless
    ``RAY_ADDRESS`` is set): (results, skipped by reason, with ``read``: the requests read)."""
    rows, root, kind = batch_inputs(dataset, split, requests_file, limit)
    init_ray(JobConfig())
    results, skipped = caption_batch(rows, root, kind, source, tracking_uri, beam_size=beam_size, actors=actors)
    return results, {**skipped, "read": len(rows)}


def skipped_lines(skipped: dict[str, Any], examples: int = 5) -> list[str]:
    """What a batch skipped, by reason, with a few examples; nothing when nothing was skipped."""
    counts = skipped.get("counts", {})
    if not counts:
        return []
    total = f"skipped {sum(counts.values())} of {skipped.get('read', '?')}: "
    return [total + ", ".join(f"{k} {v}" for k, v in counts.items())] + [
        f"  {example}" for example in skipped.get("examples", [])[:examples]
    ]
