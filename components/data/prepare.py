"""Before Ray starts: the dataset a job names exists (the synthetic one is built if allowed), and the
vocabulary the model is sized by."""

from __future__ import annotations

import json
import logging
import os

from components import storage
from components.config import JobConfig
from components.data.index import ensure_index, iter_index_rows
from components.data.release import CAPTIONS_FILE
from components.data.synthetic.build import SyntheticSpec, build_release
from components.data.tokenizer import VOCABULARY_FILE, Tokenizer, guess_mode
from components.data.versions import images_folder, version_folder
from components.errors import ConfigError, DatasetFormatError

log = logging.getLogger(__name__)


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


def load_vocabulary(dataset: str) -> Tokenizer:
    """The dataset's ``word2int.json``, or a vocabulary built from its training split."""
    vocabulary = storage.join(dataset, VOCABULARY_FILE)
    if storage.exists(vocabulary):
        return Tokenizer.from_vocabulary(json.loads(storage.read_bytes(vocabulary).decode("utf-8")))
    index = ensure_index(dataset)

    def texts():  # streamed twice from the index (the mode, then the counts), never all in memory
        for row in iter_index_rows(index, "train"):
            record = json.loads(row["record"]) if row["record"] else {}
            yield from (t for t in (*record.get("ocr_txts", []), record.get("info", "")) if isinstance(t, str))

    return Tokenizer.build(texts(), mode=guess_mode(texts()))


def with_vocabulary(job: JobConfig, tokenizer: Tokenizer) -> JobConfig:
    """The job with its model sized to the vocabulary."""
    return job.with_overrides(model={"vocab_size": len(tokenizer)})
