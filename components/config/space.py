"""The sweep's search space as written in a job config: dotted job keys mapped to values to try.

A dimension is a list (a choice) or one of ``{grid|choice: [...]}``,
``{uniform|loguniform|randint: [low, high]}``. Checked when the config is read; whether each key is
tunable and every combination a valid job is checked by ``components.training.tuning.check_space``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from components.errors import ConfigError

DISTRIBUTIONS = ("choice", "grid", "uniform", "loguniform", "randint")


def flat_space(space: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """``{"model": {"d_model": [..]}}`` (from ``--set tune.space.model.d_model=..``) to ``("model.d_model", [..])``."""
    for key, value in space.items():
        if "." not in key and isinstance(value, dict):
            for name, dimension in value.items():
                yield f"{key}.{name}", dimension
        else:
            yield key, value


def _is_distribution(value: dict) -> bool:
    return len(value) == 1 and next(iter(value)) in DISTRIBUTIONS


def check_dimension(where: str, dimension: Any) -> None:
    """One dimension of the space; ``ConfigError`` naming ``where`` (``tune.space.train.lr``) if malformed."""
    if isinstance(dimension, list):
        if not dimension:
            raise ConfigError(where, "an empty list of values")
        return
    if not (isinstance(dimension, dict) and _is_distribution(dimension)):
        raise ConfigError(where, f"a list of values or one of {{{', '.join(DISTRIBUTIONS)}: ...}} (got {dimension!r})")
    kind, values = next(iter(dimension.items()))
    if kind in ("choice", "grid"):
        if not isinstance(values, list) or not values:
            raise ConfigError(where, f"{kind} needs a non-empty list (got {values!r})")
    elif not (isinstance(values, list) and len(values) == 2 and all(_is_number(v) for v in values)):
        raise ConfigError(where, f"{kind} needs [low, high] (got {values!r})")
    elif not values[0] < values[1]:
        raise ConfigError(where, f"{kind} needs low < high (got {values})")
    elif kind == "loguniform" and values[0] <= 0:
        raise ConfigError(where, f"loguniform needs a positive low end (got {values})")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
