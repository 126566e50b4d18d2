"""Captioning many images with Ray Data: a release-format dataset or a JSON-lines file of requests.

    index rows or requests-file lines
      -> RequestReader    each request read and checked: its image, boxes and info
      -> RequestEncoder   each request as an encoded row (``EncodedRow``), its own columns beside it
      -> caption_rows     evaluation's batch captioner: an actor pool holding the model, a row per box,
                          each caption chosen among candidates by the publishing checks (if any)
      -> per_request      the captions (and verdicts) of each request in box order, in input order

A bad request is skipped, counted by reason in a tally actor, so one bad record never stops a batch.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np

from components import storage
from components.cluster import init_ray, object_column
from components.config import JobConfig, ModelConfig, PublishSection
from components.data.pipeline.stream import make_tally
from components.data.record.rejection import RecordRejected
from components.data.record.tokenizer import Tokenizer
from components.data.record.untrusted import json_lines
from components.data.release.format import IMAGES_DIR
from components.data.release.table import read_split
from components.data.transforms.encoding import EncodeSpec, empty_rows
from components.data.transforms.requests import RequestError, dataset_request, encode_request, file_request
from components.errors import ConfigError
from components.evaluation.predict import caption_rows
from components.tracking.sources import ModelSource

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


KEPT = ("key", "id", "source", "info", "boxes", "mask_boxes")  # what a result carries besides its captions
CARRIED = tuple(f"request_{column}" for column in KEPT)  # their names beside the encoded columns (boxes ...)


class RequestEncoder:
    """``map_batches`` callable: requests to encoded rows (``EncodedRow`` columns, the image id being
    the request's key, unique per input row) with the request's own columns kept beside them (without
    the image bytes: the driver re-reads only the images it draws)."""

    def __init__(self, tokenizer: Tokenizer, spec: EncodeSpec, tally=None):
        self.tokenizer, self.spec, self.tally = tokenizer, spec, tally

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        encoded, kept = [], {column: [] for column in KEPT}
        for i, key in enumerate(rows["key"]):
            request = {column: rows[column][i] for column in ("id", "image", "info", "boxes", "mask_boxes")}
            try:
                row, _ = encode_request(request, self.tokenizer, self.spec)
            except RequestError as err:
                log.warning("skipping %s", err)
                if self.tally is not None:
                    self.tally.add.remote(err.reason, str(err))
                continue
            encoded.append({**row, "image_id": str(key)})
            for column in KEPT:  # plain lists of strings keep Arrow blocks (no pickled fallback)
                value = rows[column][i]
                kept[column].append([str(b) for b in value] if column in ("boxes", "mask_boxes") else str(value))
        rows_out = empty_rows(self.spec) if not encoded else {c: np.stack([r[c] for r in encoded]) for c in encoded[0]}
        return {**rows_out, **{f"request_{column}": object_column(values) for column, values in kept.items()}}


def batch_inputs(
    dataset: str | None, split: str, requests_file: str | None, limit: int | None, version: str | None = None
) -> tuple[list, str, str]:
    """(rows ``{"key", "text"}``, root, kind) of a split of a dataset's version (the latest by default)
    or of a requests file."""
    if dataset:
        rows = [{"key": r["image_id"], "text": r["record"]} for r in read_split(dataset, split, limit, version)]
        return rows, storage.join(dataset, IMAGES_DIR), "dataset"
    rows = [{"key": n, "text": line} for n, line in json_lines(storage.read_bytes(requests_file))[:limit]]
    root = requests_file.rsplit("/", 1)[0] if "/" in requests_file else "."
    return rows, root, "requests"


def caption_batch(
    rows: list[dict],
    root: str,
    kind: str,
    source: str,
    tracking_uri: str,
    *,
    beam_size: int = 1,
    actors: int = 1,
    publish: PublishSection | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every valid request with its captions (in input order; chosen by the ``publish`` checks, with
    their verdicts, where given), and the skipped ones by reason."""
    import ray

    if not rows:
        raise ConfigError("input", "nothing to caption: the split or requests file is empty")
    model = ModelSource.parse(source, "--model").load_for_inference(tracking_uri)  # once, on the driver
    config = ModelConfig.from_dict(model.job["model"])
    spec = EncodeSpec.for_model(config, seed=model.seed)
    tally = make_tally()
    ds = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows) // 8, 100)))
    ds = ds.map_batches(RequestReader, fn_constructor_kwargs=dict(root=root, kind=kind, tally=tally), batch_size=8)
    ds = ds.map_batches(RequestEncoder, fn_constructor_kwargs=dict(tokenizer=model.tokenizer, spec=spec, tally=tally))
    weights = ray.put(model.model_state)
    boxes = caption_rows(
        ds, config, weights, model.tokenizer, beam_size=beam_size, actors=actors, keep=CARRIED, publish=publish
    ).take_all()
    results = per_request(boxes, [str(r["key"]) for r in rows])
    skipped = ray.get(tally.report.remote())
    ray.kill(tally)
    return results, skipped


def per_request(boxes: list[dict[str, Any]], keys: list[str]) -> list[dict[str, Any]]:
    """The captioner's rows (one per box) as one result per request, its captions (and their verdicts,
    where the publishing checks ran) in box order, the requests in input order."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in boxes:
        grouped.setdefault(str(row["image_id"]), []).append(row)
    results = []
    for key in keys:
        if key in grouped:
            ordered = sorted(grouped[key], key=lambda r: int(r["box"]))
            carried = {column: ordered[0][f"request_{column}"] for column in KEPT}
            result = {**carried, "captions": [str(r["prediction"]) for r in ordered]}
            if "verdict" in ordered[0]:
                result["verdicts"] = [json.loads(str(r["verdict"])) for r in ordered]
            results.append(result)
    return results


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
    publish: PublishSection | None = None,
    version: str | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A split of a dataset's ``version`` or a requests file captioned over Ray Data (a local cluster
    unless ``RAY_ADDRESS`` is set): (results, skipped by reason, with ``read``: the requests read)."""
    rows, root, kind = batch_inputs(dataset, split, requests_file, limit, version)
    init_ray(JobConfig())
    options = dict(beam_size=beam_size, actors=actors, publish=publish)
    results, skipped = caption_batch(rows, root, kind, source, tracking_uri, **options)
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
