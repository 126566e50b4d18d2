"""Every configuration, validated before any work starts: strict pydantic sections, the YAML presets
and the ``--preset`` / ``--config`` / ``--set`` loader.

The ground floor of the library: it imports only ``components.errors`` and ``components.storage``.
"""

from components.config.arguments import job_parser, parse_job
from components.config.job import (
    GATE_METRICS,
    NEGATIVE_SCHEDULES,
    PUBLISH_CHECKS,
    DataSection,
    IngestSection,
    JobConfig,
    PublishSection,
    RaySection,
    RetrainSection,
    TrackingSection,
    TrainSection,
    TuneSection,
)
from components.config.loader import config_yaml, load_job_config, parse_override, preset_names, resolve_locations
from components.config.model import (
    BACKBONE_NORMS,
    BACKBONES,
    NEIGHBOUR_VARIANTS,
    SKIP_WEIGHTS,
    ModelConfig,
    load_preset,
)
from components.config.sweep import check_space, trial_job, trial_overrides

__all__ = [
    "BACKBONE_NORMS",
    "BACKBONES",
    "GATE_METRICS",
    "NEGATIVE_SCHEDULES",
    "NEIGHBOUR_VARIANTS",
    "PUBLISH_CHECKS",
    "SKIP_WEIGHTS",
    "DataSection",
    "IngestSection",
    "JobConfig",
    "PublishSection",
    "ModelConfig",
    "RaySection",
    "RetrainSection",
    "TrackingSection",
    "TrainSection",
    "TuneSection",
    "check_space",
    "config_yaml",
    "job_parser",
    "load_job_config",
    "load_preset",
    "parse_job",
    "parse_override",
    "preset_names",
    "resolve_locations",
    "trial_job",
    "trial_overrides",
]
