"""One typed, frozen configuration per training job: data, model, training, Ray, tracking, sweep.

The resolved configuration is logged to MLflow and saved in every checkpoint;
``JobConfig.from_dict(job.as_dict())`` rebuilds it exactly.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import Field, StrictInt, ValidationInfo, field_validator, model_validator

from components.config.base import (
    Flag,
    Integer,
    NonEmptyText,
    NonNegativeInt,
    NonNegativeNumber,
    Number,
    PositiveInt,
    PositiveNumber,
    Probability,
    Section,
    Text,
    bounded,
)
from components.config.model import ModelConfig, expand_preset
from components.config.space import check_dimension, flat_space
from components.errors import ConfigError
from components.metric_names import TRAINING_SECTIONS, VALIDATION_CIDER, section_of

DEFAULT_DATASET = "data/synthetic"
NegativeSchedule = Literal["progressive", "fixed", "level1", "level12"]  # paper Table 3
NEGATIVE_SCHEDULES: tuple[str, ...] = get_args(NegativeSchedule)
GATE_METRICS = ("BLEU@1", "BLEU@2", "BLEU@3", "BLEU@4", "METEOR", "CIDEr", "Div@1", "Div@2")
Task = Literal["pretrain", "finetune", "evaluate", "ingest", "retrain"]
PublishCheck = Literal["compliance", "grounding", "fit", "read_back"]  # components.publishing.CHECKS, in order
PUBLISH_CHECKS: tuple[str, ...] = get_args(PublishCheck)


class DataSection(Section):
    SECTION = "data"

    dataset: Text = DEFAULT_DATASET  # a release-format folder: local path or URI (s3://...)
    version: Text | None = None  # a version of the dataset's table: its number or a tag; None: the latest
    images_root: Text | None = None  # where <id>.png live, when not DATASET/images
    build_if_missing: Flag = True  # build the synthetic dataset when `dataset` does not exist yet
    synthetic_images: PositiveInt = 2000
    synthetic_seed: Integer = 0
    synthetic_lang: Literal["zh", "en"] = "zh"

    @field_validator("version", mode="before")
    @classmethod
    def _version_number_as_text(cls, value: Any) -> Any:
        """``--set data.version=3`` reads as a number: a version number is text like a tag."""
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    max_boxes: PositiveInt = 32  # per image; more are dropped and counted
    decode_actors: PositiveInt = 1  # Ray Data actors decoding and masking images
    shuffle_buffer: NonNegativeInt = 64  # images in each worker's local shuffle buffer
    # Ray Data hands out the decoded images in order, so one seed gives the same batches run after run;
    # false lets a fast decoding actor overtake a slow one (throughput on big clusters, no reproducibility).
    preserve_order: Flag = True
    prefetch_batches: PositiveInt = 1  # batches decoded ahead per worker (more only helps with spare cores)
    val_images: PositiveInt = 64  # the validation subset scored during training


class TrainSection(Section):
    SECTION = "train"

    steps: PositiveInt = 600
    images_per_batch: bounded(
        StrictInt,
        "per worker, each image with all its boxes: the paper's whole global batch is 80 images",
        gt=0,
        le=512,
    ) = 8  # per worker; each image brings all its boxes
    lr: PositiveNumber = 5e-4  # peak learning rate of everything but the backbone
    backbone_lr: NonNegativeNumber = 3e-5  # constant, as in the released code
    warmup_steps: NonNegativeInt = 100
    betas: tuple[Number, Number] = (0.9, 0.98)
    eps: PositiveNumber = 1e-9
    weight_decay: NonNegativeNumber = 0.0
    grad_clip: NonNegativeNumber = 1.0
    generation_per_matching: tuple[NonNegativeInt, NonNegativeInt] = (3, 1)  # (1, 0): generation only
    negatives: NegativeSchedule = "progressive"
    # The curriculum reads global_step x this. 1 is the paper; a short run can traverse the paper's
    # whole 200k-step curriculum with curriculum_scale = 200000 / steps.
    curriculum_scale: PositiveNumber = 1.0
    # Or: this run's matching steps, first to last, traverse the paper's steps 1..curriculum_span
    # (200000: the whole curriculum, easy first, however few matching steps the run has).
    curriculum_span: PositiveInt | None = None
    # With a span: the first share of the matching steps stay at the paper's step 1 (Level I alone),
    # the span spread over the rest. The paper's easy phase is 32 of its 200k steps, so a short run
    # spreading the span sees it for a handful of batches; 0 keeps the paper's schedule.
    curriculum_level1_share: Probability = 0.0
    positive_rate: Probability = 0.4
    mixed_precision: Flag = True  # bfloat16 autocast on GPU; ignored on CPU
    # Speed switches (the GPU presets turn them on; off, a run is the plain eager path). Each keeps
    # what is learned: the train-step bench checks the losses of both paths from the same weights.
    compile: Flag = False  # torch.compile the model (one graph per task and box bucket)
    box_bucket: NonNegativeInt = 0  # pad the boxes of a batch to a multiple of this (static shapes); 0: none
    fused_adam: Flag = False  # Adam's fused kernel (one launch for every parameter)
    channels_last: Flag = False  # the backbone's convolutions in channels-last memory format
    tf32: Flag = False  # TF32 tensor cores for what stays in float32 (GPU only)
    pin_memory: Flag = False  # page-locked batches copied without blocking (GPU only)
    log_every: PositiveInt = 10
    val_every: PositiveInt = 200
    checkpoint_every: PositiveInt = 200
    seed: Integer = 0
    torch_threads: PositiveInt = 1  # per worker on CPU
    fail_at_step: PositiveInt | None = None  # fault injection: rank 0 raises once at this step (tests)

    @field_validator("betas", "generation_per_matching", mode="before")
    @classmethod
    def _a_pair(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise ValueError(f"expected two values [a, b] (got {value!r})")
        return value

    @field_validator("betas")
    @classmethod
    def _betas_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in value):
            raise ValueError(f"must be in [0, 1) (got {value})")
        return value

    @model_validator(mode="after")
    def _compile_needs_static_shapes(self) -> TrainSection:
        if self.compile and self.box_bucket == 0:
            raise ConfigError(
                "train.box_bucket",
                "train.compile needs static shapes: set train.box_bucket > 0 (e.g. 32), else every batch's "
                "number of boxes compiles a new graph",
            )
        return self

    @model_validator(mode="after")
    def _level1_share_needs_a_span(self) -> TrainSection:
        if self.curriculum_level1_share > 0 and self.curriculum_span is None:
            raise ConfigError(
                "train.curriculum_level1_share",
                "stretches the Level-I phase of a spread curriculum: set train.curriculum_span too (e.g. 200000)",
            )
        return self

    @field_validator("generation_per_matching")
    @classmethod
    def _some_task(cls, value: tuple[int, int]) -> tuple[int, int]:
        if sum(value) == 0:
            raise ValueError(f"needs two counts >= 0, not both 0 (got {value})")
        return value


class PublishSection(Section):
    """The publishing checks evaluation runs (``components.publishing``): each box's caption is chosen
    among its ``candidates`` most likely (beam search of that width) as the first passing every check."""

    SECTION = "publish"

    checks: tuple[PublishCheck, ...] = PUBLISH_CHECKS  # [] for none: the beam caption, unjudged
    candidates: bounded(StrictInt, "wider beams cost time and change short captions no more", ge=1, le=16) = 6
    min_font_fraction: Annotated[Number, Field(gt=0.0, lt=0.5)] = 0.03  # of the image height (never under 8 px)
    min_contrast: Annotated[Number, Field(ge=1.0, le=21.0)] = 4.5  # WCAG AA; the ratio runs from 1 to 21
    forbid_banned: Flag = False  # decoding never completes a term of the compliance list

    @classmethod
    def from_flags(cls, checks: str, candidates: int, forbid_banned: bool = False) -> PublishSection:
        """``--checks`` (comma-separated; empty for none), ``--candidates`` and ``--forbid-banned`` of a
        flow, or ``ConfigError`` naming the flag."""
        names = [c.strip() for c in checks.split(",") if c.strip()]
        unknown = sorted(set(names) - set(PUBLISH_CHECKS))
        if unknown:
            raise ConfigError("checks", f"unknown {unknown}; choose from {', '.join(PUBLISH_CHECKS)}")
        if "read_back" in names and "fit" not in names:
            raise ConfigError("checks", "read_back needs fit: it reads what fit drew")
        if not 1 <= candidates <= 16:
            raise ConfigError("candidates", f"must be from 1 to 16 (got {candidates})")
        return cls(checks=names, candidates=candidates, forbid_banned=forbid_banned)

    @field_validator("checks", mode="before")
    @classmethod
    def _a_list(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple):
            raise ValueError(f"expected a list of checks from {list(PUBLISH_CHECKS)} (got {value!r})")
        return value

    @field_validator("checks")
    @classmethod
    def _read_back_needs_fit(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if "read_back" in value and "fit" not in value:
            raise ValueError("read_back needs fit: it reads what fit drew")
        return tuple(c for c in PUBLISH_CHECKS if c in value)


class RaySection(Section):
    SECTION = "ray"

    address: Text | None = None  # None: RAY_ADDRESS if set (ray job submit), else a new local cluster
    local_num_cpus: PositiveInt = 4  # logical CPUs of a new local cluster (over-declared on small machines)
    num_workers: PositiveInt = 2
    use_gpu: Flag = False
    cpus_per_worker: PositiveNumber = 1.0
    storage_path: Text = "outputs/ray"  # checkpoints: local path or URI (s3://...)
    run_name: Text | None = None  # None: a new unique name; an existing one resumes that run
    max_failures: NonNegativeInt = 1
    keep_checkpoints: PositiveInt = 2


class TrackingSection(Section):
    SECTION = "tracking"

    tracking_uri: NonEmptyText = "sqlite:///mlflow.db"
    experiment: NonEmptyText = "caponimage"
    system_metrics: Flag = True
    registered_model: NonEmptyText = "caponimage"  # the registry name winners are registered under
    gate_metric: NonEmptyText = "CIDEr"  # `champion` moves only to a version that beats it on this metric ...
    gate_split: Literal["val", "test"] = "val"  # ... on this split

    @field_validator("gate_metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value.replace("-", "@") not in GATE_METRICS:
            raise ValueError(f"must be one of {', '.join(GATE_METRICS)} (got {value!r})")
        return value


class IngestSection(Section):
    """flows/ingest.py: turning crawl partitions into dataset versions (OCR, cleaning, dedup)."""

    SECTION = "ingest"

    ocr_engine: NonEmptyText = "rapidocr"  # or fixture:PATH, boxes read from a JSON file (tests)
    actors: PositiveInt = 2  # Ray Data actors, one OCR engine each
    cpus_per_actor: PositiveNumber = 1.0  # ONNX Runtime's threads follow it
    box_padding: NonNegativeNumber = 3.0  # pixels at the stored size an OCR box is widened by (covers the ink)
    min_chars: PositiveInt = 2  # a caption's length after punctuation and spaces are stripped ...
    max_chars: PositiveInt = 10  # ... within these bounds
    min_captions: PositiveInt = 2  # images with fewer kept captions are dropped
    near_duplicate_share: Probability = 0.7  # drop an image sharing round(share x its captions) with another; 0: off
    fluency: NonEmptyText = "ngram"  # the dataset's character n-gram model, or a causal LM folder (path or URI)
    fluency_threshold: Number | None = None  # None: calibrated so that 95% of val captions pass
    max_info_chars: PositiveInt = 60  # title and attribute values, cut to this
    short_side: bounded(
        StrictInt,
        "the model reads at most 32 x 16 pixels a side; a stored side beyond 4096 only costs memory",
        ge=32,
        le=4096,
    ) = 256  # stored images are resized to this short side
    batch_images: PositiveInt = 4  # images per Ray Data batch through an OCR actor
    vocabulary_min_count: bounded(
        StrictInt,
        "a token the new records hold fewer times than this stays unknown; 1 adds every one (a single "
        "misread character included), over 1000 adds almost none",
        ge=1,
        le=1000,
    ) = 2  # the dataset's vocabulary grows by the new tokens seen at least this often (as it was built)

    @field_validator("max_chars")
    @classmethod
    def _length_range(cls, value: int, info: ValidationInfo) -> int:
        shortest = info.data.get("min_chars")
        if shortest is not None and value < shortest:
            raise ValueError(f"must be at least min_chars {shortest} (got {value})")
        return value


class RetrainSection(Section):
    """flows/retrain.py: the data gate, the replay of old data, the promotion rule and the lock."""

    SECTION = "retrain"

    min_new_images: PositiveInt = 20  # the data gate: fewer new usable training images fail it
    max_rejection_rate: Probability = 0.5  # product lines lost to bad input (not to dedup) / lines read
    caption_chars: tuple[NonNegativeNumber, NonNegativeNumber] = (2.0, 10.0)  # the new captions' mean length
    max_oov_share: Probability = 0.02  # new caption characters outside the model's vocabulary
    max_gate_attempts: PositiveInt = 3  # a partition failing the gate this often waits for a person
    replay_ratio: NonNegativeNumber = 1.0  # old training images replayed per new one (at most all of them)
    finetune_steps: PositiveInt = 100  # the candidate's fine-tuning steps (from the champion, or after pre-training)
    test_images: PositiveInt | None = None  # test images both models are scored on (None: the whole split)
    bootstrap_samples: bounded(
        StrictInt, "fewer resamples cannot place the ends of a 95% interval (or a 99% one)", ge=200, le=100_000
    ) = 1000  # paired bootstrap resamples of the test images
    confidence: Annotated[Number, Field(gt=0.5, lt=1.0)] = 0.95  # of the gain's interval
    min_gain: NonNegativeNumber = 0.0  # the interval's lower end must exceed this (gate-metric points)
    max_div2_drop: NonNegativeNumber = 2.0  # guardrails: points of Div@2 ...
    max_bleu4_drop: NonNegativeNumber = 1.0  # ... and of BLEU@4 the candidate may lose to the champion
    # ... and the share of published captions failing a publishing check it may add to the champion's
    max_violation_rise: Probability = 0.01
    lock_lease_s: bounded(
        StrictInt, "the holder renews every quarter lease; shorter, one slow store call loses the lock", ge=60
    ) = 600  # a lock not renewed for this long is stale (its holder died)

    @field_validator("caption_chars", mode="before")
    @classmethod
    def _a_range(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple) or len(value) != 2 or value[0] > value[1]:
            raise ValueError(f"expected [low, high] with low <= high (got {value!r})")
        return value


def _default_space() -> dict[str, Any]:
    return {
        "model.n_layers": [2, 3],
        "model.d_model": [128, 256],
        "model.grid": [2, 4],
        "train.lr": {"loguniform": [2e-4, 2e-3]},
    }


class TuneSection(Section):
    """flows/tune.py: the search space (dotted job keys), the number of trials and ASHA's settings."""

    SECTION = "tune"

    space: dict[str, Any] = Field(default_factory=_default_space)
    num_samples: PositiveInt = 4  # trials; with grid dimensions, repeats of the whole grid
    max_concurrent: NonNegativeInt = 0  # 0: as many as the cluster's CPUs and GPUs hold at once
    metric: NonEmptyText = VALIDATION_CIDER  # reported by the training loop at every validation
    mode: Literal["min", "max"] = "max"
    grace_period: PositiveInt = 100  # steps every trial runs before ASHA may stop it
    reduction_factor: Annotated[Integer, Field(ge=2)] = 2  # ASHA keeps 1 / reduction_factor at each rung

    @field_validator("metric")
    @classmethod
    def _reported_in_training(cls, value: str) -> str:
        """A metric the training loop reports (under ``train/`` or ``val_subset/``), or ASHA would wait
        for it in vain and every trial would end without a score."""
        if section_of(value) not in TRAINING_SECTIONS:
            sections = " or ".join(f"{s}/" for s in TRAINING_SECTIONS)
            raise ValueError(
                f"must be a metric the training loop reports, under {sections} (e.g. {VALIDATION_CIDER}); got {value!r}"
            )
        return value

    @field_validator("space", mode="before")
    @classmethod
    def _dotted_keys(cls, value: Any) -> Any:
        """``--set tune.space.model.d_model=[..]`` nests; the space's keys stay dotted."""
        if not isinstance(value, dict) or not value:
            raise ValueError("must map dotted job keys (model.n_layers) to values to try")
        space = dict(flat_space(value))
        for key, dimension in space.items():
            check_dimension(f"tune.space.{key}", dimension)
        return space


class JobConfig(Section):
    task: Task = "pretrain"
    preset: Text | None = None  # the preset the job started from (set by the loader)
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataSection = Field(default_factory=DataSection)
    train: TrainSection = Field(default_factory=TrainSection)
    ray: RaySection = Field(default_factory=RaySection)
    tracking: TrackingSection = Field(default_factory=TrackingSection)
    tune: TuneSection = Field(default_factory=TuneSection)
    ingest: IngestSection = Field(default_factory=IngestSection)
    retrain: RetrainSection = Field(default_factory=RetrainSection)
    publish: PublishSection = Field(default_factory=PublishSection)
    init_from: Text | None = None  # finetune: an MLflow run id, runs:/ URI or checkpoint folder/URI

    @field_validator("model", mode="before")
    @classmethod
    def _model_preset(cls, value: Any) -> Any:
        return expand_preset(value)

    @model_validator(mode="after")
    def _finetune_has_a_start(self) -> JobConfig:
        if self.task == "finetune" and not self.init_from:
            raise ConfigError("init_from", "fine-tuning starts from a pre-training run id or checkpoint URI")
        return self

    @model_validator(mode="after")
    def _retrain_decides_per_image(self) -> JobConfig:
        if self.task == "retrain" and self.tracking.gate_metric != "CIDEr":
            raise ConfigError(
                "tracking.gate_metric",
                f"retraining decides by a paired bootstrap over test images, which needs a per-image "
                f"metric: CIDEr (got {self.tracking.gate_metric!r})",
            )
        return self

    def with_overrides(self, **sections: Any) -> JobConfig:
        """A validated copy with some fields of some sections replaced:
        ``job.with_overrides(train={"steps": 5}, init_from="...")``."""
        values = self.as_dict()
        for name, overrides in sections.items():
            if isinstance(values.get(name), dict) and isinstance(overrides, dict):
                values[name] = {**values[name], **overrides}
            else:
                values[name] = overrides
        return JobConfig.from_dict(values)

    def flat(self) -> dict[str, Any]:
        """``{"train.lr": 0.0005, ...}``: MLflow params."""
        return dict(_flatten(self.as_dict()))


def _flatten(values: dict[str, Any], prefix: str = ""):
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _flatten(value, f"{name}.")
        else:
            yield name, value
