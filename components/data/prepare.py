"""Preparing the one dataset a flow hands down, once on the driver, before Ray starts.

    job = parse_job(...)
    job, dataset = prepare_dataset(job)      # exists (synthetic built if allowed), index verified once,
                                             # vocabulary read, the model sized to it
    tracked_fit(job, dataset, ...)           # logs dataset.version, trains on dataset.index

Every floor below the flow reads the dataset through this object: the location, the images, the
index (loaded and checked once per process), its version (so the version a run logs is the version
it read), the tokenizer (whole: it pickles into Ray's workers) and the synthetic sidecar where there
is one. The job keeps ``data.dataset`` as the user wrote it, for its params.
"""

from __future__ import annotations

import json
import logging
import os

from components import storage
from components.config import JobConfig
from components.data.record.tokenizer import VOCABULARY_FILE, Tokenizer, guess_mode
from components.data.release.dataset import PreparedDataset
from components.data.release.format import CAPTIONS_FILE, IMAGES_DIR
from components.data.release.index import DatasetIndex, ensure_index, iter_index_rows
from components.data.release.versions import images_folder, version_folder
from components.data.synthetic.build import SyntheticSpec, build_release
from components.data.synthetic.truth import find_truth
from components.errors import ConfigError, DatasetFormatError

log = logging.getLogger(__name__)


def prepare_dataset(job: JobConfig, tokenizer: Tokenizer | None = None) -> tuple[JobConfig, PreparedDataset]:
    """The job (its model sized to the vocabulary) and its prepared dataset. ``tokenizer``: a trained
    model's vocabulary, read instead of the dataset's."""
    job = prepare_data(job)
    location = job.data.dataset
    index = ensure_index(location)
    tokenizer = tokenizer or load_vocabulary(location, index)
    images_root = job.data.images_root or storage.join(location, IMAGES_DIR)
    dataset = PreparedDataset(location, images_root, index, tokenizer, find_truth(location))
    return with_vocabulary(job, tokenizer), dataset


def prepare_data(job: JobConfig) -> JobConfig:
    """Make sure the dataset exists (building the synthetic one if allowed), before Ray starts. With
    ``data.version`` the job reads that earlier version: its index files, the dataset's images."""
    dataset = job.data.dataset
    if job.data.version is not None:
        try:
            folder = version_folder(dataset, job.data.version)
        except DatasetFormatError as err:
            raise ConfigError("data.version", str(err)) from err
        images = job.data.images_root or images_folder(dataset)
        return job.with_overrides(data={"dataset": folder, "images_root": images, "version": None})
    if storage.exists(storage.join(dataset, CAPTIONS_FILE)):
        return job
    if not job.data.build_if_missing or storage.is_uri(dataset):
        raise ConfigError("data.dataset", f"{dataset} is not a dataset folder (no {CAPTIONS_FILE})")
    log.info("building the synthetic dataset in %s (%d images)", dataset, job.data.synthetic_images)
    spec = SyntheticSpec(job.data.synthetic_images, job.data.synthetic_seed, job.data.synthetic_lang)
    build_release(spec, dataset, workers=os.cpu_count() or 1)
    return job


def load_vocabulary(dataset: str, index: DatasetIndex | None = None) -> Tokenizer:
    """The dataset's ``word2int.json``, or a vocabulary built from its training split."""
    vocabulary = storage.join(dataset, VOCABULARY_FILE)
    if storage.exists(vocabulary):
        return Tokenizer.from_vocabulary(json.loads(storage.read_bytes(vocabulary).decode("utf-8")))
    index = index or ensure_index(dataset)

    def texts():  # streamed twice from the index (the mode, then the counts), never all in memory
        for row in iter_index_rows(index, "train"):
            record = json.loads(row["record"]) if row["record"] else {}
            yield from (t for t in (*record.get("ocr_txts", []), record.get("info", "")) if isinstance(t, str))

    return Tokenizer.build(texts(), mode=guess_mode(texts()))


def with_vocabulary(job: JobConfig, tokenizer: Tokenizer) -> JobConfig:
    """The job with its model sized to the vocabulary."""
    return job.with_overrides(model={"vocab_size": len(tokenizer)})
