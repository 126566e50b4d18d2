"""One typed, frozen configuration per training job, from a YAML preset plus ``--set key=value``.

Everything is validated before Ray starts: unknown keys and bad values are ``ConfigError`` naming
the dotted key (``train.lr``). The resolved configuration is logged to MLflow and saved in every
checkpoint, and ``JobConfig.from_dict(job.as_dict())`` rebuilds it exactly.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from components import storage
from components.errors import ConfigError
from components.model.config import ModelConfig, load_preset
from components.training.curriculum import SCHEDULES

PRESETS_DIR = Path(__file__).resolve().parents[1] / "presets" / "jobs"
DEFAULT_DATASET = "data/synthetic"


@dataclass(frozen=True)
class DataSection:
    dataset: str = DEFAULT_DATASET  # a release-format folder: local path or URI (s3://...)
    images_root: str | None = None  # where <id>.png live, when not DATASET/images
    build_if_missing: bool = True  # build the synthetic dataset when `dataset` does not exist yet
    synthetic_images: int = 2000
    synthetic_seed: int = 0
    synthetic_lang: str = "zh"
    max_boxes: int = 32  # per image; more are dropped and counted
    decode_actors: int = 1  # Ray Data actors decoding and masking images
    shuffle_buffer: int = 64  # images in each worker's local shuffle buffer
    prefetch_batches: int = 1  # batches decoded ahead per worker (more only helps with spare cores)
    val_images: int = 64  # the validation subset scored during training

    def check(self) -> None:
        _positive(self, "data", "synthetic_images", "max_boxes", "decode_actors", "val_images", "prefetch_batches")
        _non_negative(self, "data", "shuffle_buffer")
        if self.synthetic_lang not in ("zh", "en"):
            raise ConfigError("data.synthetic_lang", f"must be 'zh' or 'en' (got {self.synthetic_lang!r})")


@dataclass(frozen=True)
class TrainSection:
    steps: int = 600
    images_per_batch: int = 8  # per worker; each image brings all its boxes
    lr: float = 5e-4  # peak learning rate of everything but the backbone
    backbone_lr: float = 3e-5  # constant, as in the released code
    warmup_steps: int = 100
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-9
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    generation_per_matching: tuple[int, int] = (3, 1)  # (1, 0): generation only
    negatives: str = "progressive"
    # The curriculum reads global_step x this. 1 is the paper; a short run can traverse the paper's
    # whole 200k-step curriculum with curriculum_scale = 200000 / steps.
    curriculum_scale: float = 1.0
    positive_rate: float = 0.4
    mixed_precision: bool = True  # bfloat16 autocast on GPU; ignored on CPU
    log_every: int = 10
    val_every: int = 200
    checkpoint_every: int = 200
    seed: int = 0
    torch_threads: int = 1  # per worker on CPU
    fail_at_step: int | None = None  # fault injection: rank 0 raises once at this step (tests)

    def check(self) -> None:
        _positive(
            self,
            "train",
            "steps",
            "images_per_batch",
            "lr",
            "eps",
            "log_every",
            "val_every",
            "checkpoint_every",
            "torch_threads",
        )
        _non_negative(self, "train", "backbone_lr", "warmup_steps", "weight_decay", "grad_clip")
        if self.negatives not in SCHEDULES:
            raise ConfigError("train.negatives", f"must be one of {', '.join(SCHEDULES)} (got {self.negatives!r})")
        if not 0.0 <= self.positive_rate <= 1.0:
            raise ConfigError("train.positive_rate", f"must be in [0, 1] (got {self.positive_rate})")
        g, m = self.generation_per_matching
        if g < 0 or m < 0 or g + m == 0:
            raise ConfigError("train.generation_per_matching", f"needs two counts >= 0, not both 0 (got {g}, {m})")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError("train.betas", f"must be in [0, 1) (got {self.betas})")


@dataclass(frozen=True)
class RaySection:
    address: str | None = None  # None: RAY_ADDRESS if set (ray job submit), else a new local cluster
    local_num_cpus: int = 4  # logical CPUs of a new local cluster (over-declared on small machines)
    num_workers: int = 2
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    storage_path: str = "outputs/ray"  # checkpoints: local path or URI (s3://...)
    run_name: str | None = None  # None: a new unique name; an existing one resumes that run
    max_failures: int = 1
    keep_checkpoints: int = 2

    def check(self) -> None:
        _positive(self, "ray", "local_num_cpus", "num_workers", "cpus_per_worker", "keep_checkpoints")
        _non_negative(self, "ray", "max_failures")


GATE_METRICS = ("BLEU@1", "BLEU@2", "BLEU@3", "BLEU@4", "METEOR", "CIDEr", "Div@1", "Div@2")


@dataclass(frozen=True)
class TrackingSection:
    tracking_uri: str = "sqlite:///mlflow.db"
    experiment: str = "caponimage"
    system_metrics: bool = True
    registered_model: str = "caponimage"  # the registry name flows/tune.py registers winners under
    gate_metric: str = "CIDEr"  # `champion` moves only to a version that beats it on this metric ...
    gate_split: str = "val"  # ... on this split

    def check(self) -> None:
        for name in ("experiment", "registered_model", "gate_metric"):
            if not getattr(self, name):
                raise ConfigError(f"tracking.{name}", "must not be empty")
        if self.gate_metric.replace("-", "@") not in GATE_METRICS:
            known = ", ".join(GATE_METRICS)
            raise ConfigError("tracking.gate_metric", f"must be one of {known} (got {self.gate_metric!r})")
        if self.gate_split not in ("val", "test"):
            raise ConfigError("tracking.gate_split", f"must be 'val' or 'test' (got {self.gate_split!r})")


# A dimension of the search space: a list is a choice; a mapping names a distribution.
DISTRIBUTIONS = ("choice", "grid", "uniform", "loguniform", "randint")


@dataclass(frozen=True)
class TuneSection:
    """flows/tune.py: the search space (dotted job keys), the number of trials and ASHA's settings."""

    space: dict[str, Any] = field(
        default_factory=lambda: {
            "model.n_layers": [2, 3],
            "model.d_model": [128, 256],
            "model.grid": [2, 4],
            "train.lr": {"loguniform": [2e-4, 2e-3]},
        }
    )
    num_samples: int = 4  # trials; with grid dimensions, repeats of the whole grid
    max_concurrent: int = 0  # 0: as many as the cluster's CPUs and GPUs hold at once
    metric: str = "val_cider"  # reported by the training loop at every validation
    mode: str = "max"
    grace_period: int = 100  # steps every trial runs before ASHA may stop it
    reduction_factor: int = 2

    def __post_init__(self) -> None:
        if isinstance(self.space, dict):  # `--set tune.space.model.d_model=[..]` nests; keys stay dotted
            object.__setattr__(self, "space", dict(_flat_space(self.space)))

    def check(self) -> None:
        _positive(self, "tune", "num_samples", "grace_period")
        _non_negative(self, "tune", "max_concurrent")
        if self.mode not in ("min", "max"):
            raise ConfigError("tune.mode", f"must be 'min' or 'max' (got {self.mode!r})")
        if self.reduction_factor < 2:
            raise ConfigError("tune.reduction_factor", f"must be at least 2 (got {self.reduction_factor})")
        if not isinstance(self.space, dict) or not self.space:
            raise ConfigError("tune.space", "must map dotted job keys (model.n_layers) to values to try")
        for key, dimension in self.space.items():
            _check_dimension(f"tune.space.{key}", dimension)


def _flat_space(space: dict[str, Any]):
    """``{"model": {"d_model": [..]}}`` (from ``--set tune.space.model.d_model=..``) to ``{"model.d_model": [..]}``."""
    for key, value in space.items():
        if "." not in key and isinstance(value, dict):
            for name, dimension in value.items():
                yield f"{key}.{name}", dimension
        else:
            yield key, value


def _check_dimension(where: str, dimension: Any) -> None:
    if isinstance(dimension, list):
        if not dimension:
            raise ConfigError(where, "an empty list of values")
        return
    if not (isinstance(dimension, dict) and len(dimension) == 1 and next(iter(dimension)) in DISTRIBUTIONS):
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


@dataclass(frozen=True)
class JobConfig:
    task: str = "pretrain"  # pretrain | finetune
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    ray: RaySection = field(default_factory=RaySection)
    tracking: TrackingSection = field(default_factory=TrackingSection)
    tune: TuneSection = field(default_factory=TuneSection)
    init_from: str | None = None  # finetune: an MLflow run id, runs:/ URI or checkpoint folder/URI

    def __post_init__(self) -> None:
        if self.task not in ("pretrain", "finetune", "evaluate"):
            raise ConfigError("task", f"must be 'pretrain', 'finetune' or 'evaluate' (got {self.task!r})")
        for section in (self.data, self.train, self.ray, self.tracking, self.tune):
            section.check()
        if self.task == "finetune" and not self.init_from:
            raise ConfigError("init_from", "fine-tuning starts from a pre-training run id or checkpoint URI")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> JobConfig:
        values = dict(values)
        model = values.pop("model", {}) or {}
        preset = model.pop("preset", None) if isinstance(model, dict) else None
        model_config = load_preset(preset, **model) if preset else ModelConfig.from_dict(model)
        sections = {}
        for name, cls_ in (
            ("data", DataSection),
            ("train", TrainSection),
            ("ray", RaySection),
            ("tracking", TrackingSection),
            ("tune", TuneSection),
        ):
            sections[name] = _build(cls_, values.pop(name, {}) or {}, name)
        _reject_unknown(values, {"task", "init_from"}, "")
        return cls(model=model_config, **sections, **values)

    def with_overrides(self, **sections: dict[str, Any]) -> JobConfig:
        """A copy with some fields of some sections replaced: ``job.with_overrides(train={"steps": 5})``."""
        values = self.as_dict()
        for name, overrides in sections.items():
            if isinstance(values.get(name), dict):
                values[name] = {**values[name], **overrides}
            else:
                values[name] = overrides
        return JobConfig.from_dict(values)

    def flat(self) -> dict[str, Any]:
        """``{"train.lr": 0.0005, ...}``: MLflow params."""
        return dict(_flatten(self.as_dict()))


def _build(cls_, values: dict[str, Any], prefix: str):
    if not isinstance(values, dict):
        raise ConfigError(prefix, f"must be a mapping (got {type(values).__name__})")
    known = {f.name: f for f in fields(cls_)}
    _reject_unknown(values, set(known), prefix)
    coerced = {}
    for key, value in values.items():
        default = known[key].default
        if default is dataclasses.MISSING:
            default = known[key].default_factory()
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if default is not None and value is not None and not isinstance(value, type(default)):
            raise ConfigError(f"{prefix}.{key}", f"expected {type(default).__name__}, got {value!r}")
        coerced[key] = value
    return cls_(**coerced)


def _reject_unknown(values: dict[str, Any], known: set[str], prefix: str) -> None:
    unknown = sorted(set(values) - known)
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(key, f"unknown key; known keys here: {', '.join(sorted(known))}")


def _positive(section, prefix: str, *names: str) -> None:
    for name in names:
        value = getattr(section, name)
        if not value > 0:
            raise ConfigError(f"{prefix}.{name}", f"must be positive (got {value!r})")


def _non_negative(section, prefix: str, *names: str) -> None:
    for name in names:
        value = getattr(section, name)
        if value < 0:
            raise ConfigError(f"{prefix}.{name}", f"must not be negative (got {value!r})")


def _flatten(values: dict[str, Any], prefix: str = ""):
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _flatten(value, f"{name}.")
        else:
            yield name, value


# -- presets and the command line -------------------------------------------------------------------
def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def parse_override(text: str) -> tuple[list[str], Any]:
    """``train.lr=1e-4`` to (["train", "lr"], 0.0001); values are read as YAML."""
    if "=" not in text:
        raise ConfigError(text, "an override must look like section.key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw else None
    except yaml.YAMLError as err:
        raise ConfigError(key, f"cannot read value {raw!r}: {err}") from err
    if isinstance(value, str) and _looks_numeric(value):
        value = float(value)  # YAML 1.1 reads "1e-4" as a string
    return key.strip().split("."), value


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_job_config(
    preset: str, overrides: list[str] = (), task: str = "pretrain", config_file: str | None = None
) -> JobConfig:
    """A preset (``components/presets/jobs/<name>.yaml``), then a YAML file, then ``--set`` overrides."""
    path = PRESETS_DIR / f"{preset}.yaml"
    if not path.is_file():
        raise ConfigError("preset", f"unknown preset '{preset}'; presets: {', '.join(preset_names())}")
    values = yaml.safe_load(path.read_text("utf-8")) or {}
    if config_file:
        _deep_update(values, yaml.safe_load(Path(config_file).read_text("utf-8")) or {})
    for text in overrides:
        keys, value = parse_override(text)
        target = values
        for key in keys[:-1]:
            target = target.setdefault(key, {})
            if not isinstance(target, dict):
                raise ConfigError(".".join(keys), f"'{key}' is not a section")
        target[keys[-1]] = value
    data = values.setdefault("data", {})
    user_data = {k for text in overrides for k in [text.split("=", 1)[0].strip()]}
    if config_file:
        user_data |= {f"data.{k}" for k in (yaml.safe_load(Path(config_file).read_text("utf-8")) or {}).get("data", {})}
    if "data.dataset" in user_data and "data.build_if_missing" not in user_data:
        data["build_if_missing"] = False  # a dataset the user names must exist: a typo is not a new dataset
    values["task"] = task
    return JobConfig.from_dict(values)


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
    return replace(
        job,
        data=replace(job.data, dataset=absolute(job.data.dataset), images_root=absolute(job.data.images_root)),
        ray=replace(job.ray, storage_path=absolute(job.ray.storage_path)),
        tracking=replace(job.tracking, tracking_uri=tracking),
        init_from=job.init_from,
    )
