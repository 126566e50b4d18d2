"""A job's configuration from a preset, an optional YAML file and ``--set key=value`` overrides.

    preset (presets/jobs/<name>.yaml)  <-  --config FILE.yaml  <-  --set section.key=value ...

Values are read as YAML (``--set train.lr=1e-4``, ``--set 'train.betas=[0.9, 0.99]'``), then the
whole job is validated at once; the first problem is a ``ConfigError`` naming the dotted key.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import yaml

from components import storage
from components.config.job import JobConfig
from components.config.yaml import read_yaml, read_yaml_file
from components.errors import ConfigError
from components.redaction import redact

log = logging.getLogger(__name__)

PRESETS_DIR = Path(__file__).resolve().parent / "presets" / "jobs"
# Where MLflow's own environment variables go, when set: they are the default, --config and --set win.
MLFLOW_VARIABLES = {"tracking.tracking_uri": "MLFLOW_TRACKING_URI", "tracking.experiment": "MLFLOW_EXPERIMENT_NAME"}
# Set in the entrypoint process of `ray job submit` (it carries the job's runtime env).
RAY_JOB_VARIABLE = "RAY_JOB_CONFIG_JSON_ENV_VAR"


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def parse_override(text: str) -> tuple[list[str], Any]:
    """``train.lr=1e-4`` to (["train", "lr"], 0.0001); values are read as YAML."""
    if "=" not in text:
        raise ConfigError(text, "an override must look like section.key=value")
    key, raw = text.split("=", 1)
    value = read_yaml(raw, key.strip()) if raw else None
    return key.strip().split("."), value


def read_config_file(location: str) -> dict[str, Any]:
    """``--config``: a YAML mapping of sections, from a local path or a URI (``s3://...``)."""
    if not storage.exists(location):
        raise ConfigError("config", f"{location}: no such file")
    try:
        text = storage.read_bytes(location).decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError("config", f"{location}: cannot be read ({err})") from err
    values = read_yaml(text, "config") or {}
    if not isinstance(values, dict):
        raise ConfigError("config", f"{location} must hold a mapping of sections, not a {type(values).__name__}")
    return values


def load_job_config(
    preset: str, overrides: list[str] = (), task: str = "pretrain", config_file: str | None = None
) -> JobConfig:
    """A preset, then a YAML file, then ``--set`` overrides, validated as one ``JobConfig``."""
    path = PRESETS_DIR / f"{preset}.yaml"
    if not path.is_file():
        raise ConfigError("preset", f"unknown preset '{preset}'; presets: {', '.join(preset_names())}")
    values = read_yaml_file(path, "preset")
    from_file = read_config_file(config_file) if config_file else {}
    _deep_update(values, from_file)
    for text in overrides:
        keys, value = parse_override(text)
        _set_dotted(values, keys, value)
    named = {text.split("=", 1)[0].strip() for text in overrides}
    for section in ("data", "tracking"):
        if isinstance(from_file.get(section), dict):
            named |= {f"{section}.{key}" for key in from_file[section]}
    if "data.dataset" in named and "data.build_if_missing" not in named and isinstance(values.get("data"), dict):
        values["data"]["build_if_missing"] = False  # a dataset the user names must exist: a typo is not a new dataset
    for key, variable in MLFLOW_VARIABLES.items():  # MLflow's own variables beat the preset, not the user
        tracking = values.setdefault("tracking", {})
        if os.environ.get(variable) and key not in named and isinstance(tracking, dict):
            tracking[key.split(".")[1]] = os.environ[variable]
    values["task"], values["preset"] = task, preset
    return JobConfig.from_dict(values)


def _set_dotted(values: dict[str, Any], keys: list[str], value: Any) -> None:
    target = values
    for key in keys[:-1]:
        target = target.setdefault(key, {})
        if not isinstance(target, dict):
            raise ConfigError(".".join(keys), f"'{key}' is not a section")
    target[keys[-1]] = value


def _deep_update(base: dict, update: dict) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value


def resolve_locations(job: JobConfig) -> JobConfig:
    """Absolute local paths and tracking URI, so that Ray workers and actors, whose working
    directories differ from the driver's, find the same files."""

    def absolute(location: str | None) -> str | None:
        if location is None or storage.is_uri(location):
            return location
        return str(Path(location.removeprefix("file://")).expanduser().resolve())

    tracking = job.tracking.tracking_uri
    if tracking.startswith("sqlite:///") and not tracking.startswith("sqlite:////"):
        tracking = "sqlite:///" + os.path.abspath(tracking.removeprefix("sqlite:///"))
        _warn_if_temporary("tracking.tracking_uri", tracking, "its runs")
    if not storage.is_uri(job.ray.storage_path) and not Path(job.ray.storage_path).is_absolute():
        _warn_if_temporary("ray.storage_path", absolute(job.ray.storage_path), "its checkpoints")
    return job.with_overrides(
        data={"dataset": absolute(job.data.dataset), "images_root": absolute(job.data.images_root)},
        ray={"storage_path": absolute(job.ray.storage_path)},
        tracking={"tracking_uri": tracking},
    )


def _warn_if_temporary(key: str, location: str, what: str) -> None:
    """Under ``ray job submit`` a relative path lands in the job's unpacked copy of the working
    directory, which goes with the cluster."""
    if os.environ.get(RAY_JOB_VARIABLE):
        log.warning(
            "%s is %s, inside this job's temporary working directory: %s are lost when the cluster goes. "
            "Give an absolute path or a URI (for MLflow, MLFLOW_TRACKING_URI or --set tracking.tracking_uri=...).",
            key,
            redact(location),
            what,
        )


def config_yaml(job: JobConfig) -> str:
    """The resolved configuration as YAML (``--print-config``), credentials in URIs redacted."""
    text = yaml.safe_dump(job.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    return redact(text)
