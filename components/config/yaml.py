"""Reading YAML the way a user means it: ``1e-4`` is a number (YAML 1.1 reads it as a string)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from components.errors import ConfigError


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load`` plus YAML 1.2's exponent floats without a dot (``1e-4``, ``5E3``)."""


# A copy of the resolver table: PyYAML's add_implicit_resolver would append to SafeLoader's own lists.
_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"), list("-+0123456789.")
)


def read_yaml(text: str, key: str) -> Any:
    """The value of a YAML document; a syntax error is a ``ConfigError`` naming ``key``."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        raise ConfigError(key, f"cannot read YAML: {err}") from err


def read_yaml_file(path: Path, key: str) -> dict[str, Any]:
    """A YAML file that must hold a mapping (an empty file is an empty mapping)."""
    values = read_yaml(path.read_text("utf-8"), key) or {}
    if not isinstance(values, dict):
        raise ConfigError(key, f"{path} must hold a mapping of keys to values, not a {type(values).__name__}")
    return values
