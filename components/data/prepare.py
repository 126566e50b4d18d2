"""Preparing the one dataset a flow hands down, once on the driver, before Ray starts.

    job = parse_job(...)
    job, dataset = prepare_dataset(job)      # exists (synthetic built if allowed), its table's version
                                             # opened once, vocabulary read, the model sized to it
    tracked_fit(job, dataset, ...)           # logs dataset.version, trains on dataset.table

Every floor below the flow reads the dataset through this object: the location, the images, its
table at one version (``data.version``: a number or a tag; the latest by default; so the version a
run logs is the version it read), the tokenizer (whole: it pickles into Ray's workers) and the
synthetic sidecar where there is one. The job keeps ``data.dataset`` as the user wrote it.
"""

from __future__ import annotations

import logging
import os

from components import storage
from components.config import JobConfig
from components.data.record.tokenizer import Tokenizer, guess_mode
from components.data.release.dataset import PreparedDataset
from components.data.release.format import CAPTIONS_FILE, IMAGES_DIR
from components.data.release.table import DatasetTable, ensure_table, has_table, iter_texts, version_vocabulary
from components.data.synthetic.build import SyntheticSpec, build_release
from components.data.synthetic.truth import ensure_truth
from components.errors import ConfigError, DatasetFormatError

log = logging.getLogger(__name__)


def prepare_dataset(job: JobConfig, tokenizer: Tokenizer | None = None) -> tuple[JobConfig, PreparedDataset]:
    """The job (its model sized to the vocabulary) and its prepared dataset. ``tokenizer``: a trained
    model's vocabulary, read instead of the dataset's."""
    job = prepare_data(job)
    location = job.data.dataset
    try:
        table = ensure_table(location, job.data.version)
    except DatasetFormatError as err:
        raise ConfigError("data.version", str(err)) if job.data.version is not None else err from err
    tokenizer = tokenizer or load_vocabulary(table)
    images_root = job.data.images_root or storage.join(location, IMAGES_DIR)
    dataset = PreparedDataset(location, images_root, table, tokenizer, ensure_truth(location))
    return with_vocabulary(job, tokenizer), dataset


def prepare_data(job: JobConfig) -> JobConfig:
    """Make sure the dataset exists (building the synthetic one if allowed), before Ray starts."""
    dataset = job.data.dataset
    if has_table(dataset) or storage.exists(storage.join(dataset, CAPTIONS_FILE)):
        return job
    if not job.data.build_if_missing or storage.is_uri(dataset):
        raise ConfigError("data.dataset", f"{dataset} is not a dataset folder (no {CAPTIONS_FILE})")
    log.info("building the synthetic dataset in %s (%d images)", dataset, job.data.synthetic_images)
    spec = SyntheticSpec(job.data.synthetic_images, job.data.synthetic_seed, job.data.synthetic_lang)
    build_release(spec, dataset, workers=os.cpu_count() or 1)
    return job


def load_vocabulary(table: DatasetTable | str) -> Tokenizer:
    """The version's vocabulary (the dataset's ``word2int.json`` as it was then), or one built from
    its training split (streamed twice: the mode, then the counts; never all in memory)."""
    table = ensure_table(table) if isinstance(table, str) else table
    stored = version_vocabulary(table)
    if stored is not None:
        return stored
    split = "train" if "train" in table.splits else next(iter(table.splits))
    return Tokenizer.build(iter_texts(table, split), mode=guess_mode(iter_texts(table, split)))


def with_vocabulary(job: JobConfig, tokenizer: Tokenizer) -> JobConfig:
    """The job with its model sized to the vocabulary."""
    return job.with_overrides(model={"vocab_size": len(tokenizer)})
