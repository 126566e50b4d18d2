"""Typed errors for what users can get wrong.

Each carries the exit code a flow returns for it; ``components.cli.run`` is the one place that turns
them into a message on stderr and that exit code.
"""

from __future__ import annotations


class CapOnImageError(Exception):
    """Base class of every error a user can cause and fix."""

    exit_code = 1


class ConfigError(CapOnImageError):
    """A bad configuration value, reported before any work starts.

    ``key`` is a dotted config key (``train.lr``) or, for a value typed as a flag, the flag itself
    (``--model``), so the message names what the user wrote.
    """

    exit_code = 2

    def __init__(self, key: str, message: str):
        self.key = key
        where = f"option '{key}'" if key.startswith("-") else f"config key '{key}'"
        super().__init__(f"{where}: {message}")


class DatasetError(CapOnImageError):
    """A bad dataset record, named by image id and field."""

    exit_code = 3

    def __init__(self, image_id: str, field: str, reason: str, detail: str = ""):
        self.image_id = image_id
        self.field = field
        self.reason = reason
        self.detail = detail
        text = f"image '{image_id}', field '{field}': {reason}"
        super().__init__(f"{text}: {detail}" if detail else text)


class BoxError(ValueError):
    """A text box string that cannot be parsed or is not a valid box (no record context yet)."""


class UnsafePathError(CapOnImageError):
    """A path that escapes the root it must stay under."""

    exit_code = 3


class DependencyError(CapOnImageError):
    """Something the machine must provide (a font, Java, Tesseract) is missing."""

    exit_code = 4


class DatasetFormatError(CapOnImageError):
    """A dataset folder that cannot be read at all (a missing or unreadable file, not one bad record)."""

    exit_code = 3


class SweepFailed(CapOnImageError):
    """No trial of a sweep reported the metric it was tuned on."""


class NothingUsable(CapOnImageError):
    """A dataset in which not one record can be used."""


class PartitionChanged(CapOnImageError):
    """A crawl partition ingested before holds something else now (or the ingest settings changed)."""

    exit_code = 3


class DataGateFailed(CapOnImageError):
    """New crawl data that must not be trained on: the reasons are in the message and the MLflow run."""

    exit_code = 3


class RetrainLocked(CapOnImageError):
    """Another retrain holds the dataset's lock; a scheduler should simply try again later (EX_TEMPFAIL)."""

    exit_code = 75


class ClusterBusy(CapOnImageError):
    """Another Ray cluster runs on this machine and a flow would start a local one beside it; a
    scheduler should try again later (EX_TEMPFAIL)."""

    exit_code = 75


class RetrainError(CapOnImageError):
    """A retrain that cannot go on as asked (e.g. it lost its lock, or a pending partition vanished)."""


class TrainingDiverged(CapOnImageError):
    """A training run whose loss became NaN or infinite: stopped, its MLflow run marked FAILED."""


class CheckpointRefused(CapOnImageError):
    """A model given as a checkpoint that is not one, or whose files hold more than weights."""

    exit_code = 2
