"""Whether a sweep's search space holds only tunable keys and every combination is a valid job.

Checked with the configuration, before Ray starts; ``components.training.tuning`` runs the sweep.
"""

from __future__ import annotations

import itertools
from typing import Any

from components.config.job import JobConfig, TrainSection
from components.config.model import ModelConfig
from components.errors import ConfigError

TUNABLE_SECTIONS = {"model": ModelConfig, "train": TrainSection}
UNTUNABLE = {"model.vocab_size", "train.seed", "train.fail_at_step", "train.steps"}
MAX_COMBINATIONS_CHECKED = 512


def _discrete_values(dimension: Any) -> list[Any] | None:
    if isinstance(dimension, list):
        return dimension
    kind, values = next(iter(dimension.items()))
    if kind in ("choice", "grid"):
        return values
    if kind == "randint":
        return [values[0], values[1] - 1]  # randint's high end is exclusive
    return list(values)  # a continuous range: both ends


def trial_overrides(sampled: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"model.d_model": 256, "train.lr": 1e-3}`` to ``{"model": {"d_model": 256}, "train": {"lr": 1e-3}}``."""
    sections: dict[str, dict[str, Any]] = {}
    for key, value in sampled.items():
        section, name = key.split(".", 1)
        sections.setdefault(section, {})[name] = value
    return sections


def trial_job(job: JobConfig, sampled: dict[str, Any]) -> JobConfig:
    return job.with_overrides(**trial_overrides(sampled))


def check_space(job: JobConfig) -> None:
    """Every dimension names a tunable job key and every combination of values is a valid job;
    ``ConfigError`` naming ``tune.space.<key>`` otherwise. Runs before Ray starts."""
    space = job.tune.space
    for key in space:
        section, _, name = key.partition(".")
        known = set(TUNABLE_SECTIONS[section].model_fields) if section in TUNABLE_SECTIONS else set()
        if name not in known or key in UNTUNABLE:
            raise ConfigError(
                f"tune.space.{key}",
                f"not a tunable key; tunable: model.* and train.* except {', '.join(sorted(UNTUNABLE))}",
            )
    keys = list(space)
    combinations = itertools.islice(
        itertools.product(*(_discrete_values(space[k]) for k in keys)), MAX_COMBINATIONS_CHECKED
    )
    for values in combinations:
        sampled = dict(zip(keys, values, strict=True))
        try:
            trial_job(job, sampled)
        except ConfigError as err:
            raise ConfigError(f"tune.space.{err.key}", f"the trial {sampled} is not a valid job: {err}") from err
