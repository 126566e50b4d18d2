"""Ray Train's reports into MLflow, on the controller: the workers never talk to MLflow.

Metrics travel from the rank-0 worker through ``ray.train.report`` to the Ray Train controller,
where ``MlflowReportCallback`` logs them at their global ``step``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import ray.train
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

# Reported for the log line, not worth a chart: the time left, and the step a restart resumed from
# (a tag, once, instead).
LOG_ONLY = ("eta_s", "resumed_from")


class MlflowReportCallback(ray.train.UserCallback):
    """Logs rank 0's reported metrics (at its ``step``) and the latest checkpoint's location."""

    def __init__(self, tracking_uri: str, run_id: str):
        self.tracking_uri, self.run_id = tracking_uri, run_id
        self._client: MlflowClient | None = None
        self._resumed_from = 0

    def after_report(self, run_context, metrics: list[dict[str, Any]], checkpoint) -> None:
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
        values = dict(metrics[0]) if metrics else {}
        step = int(values.pop("step", 0))
        resumed_from = int(values.get("resumed_from", 0))
        if resumed_from > self._resumed_from:
            self._resumed_from = resumed_from
            self._client.set_tag(self.run_id, "resumed_from_step", str(resumed_from))
        now = int(time.time() * 1000)
        batch = [
            Metric(k, float(v), now, step)
            for k, v in values.items()
            if k not in LOG_ONLY and isinstance(v, int | float) and math.isfinite(float(v))
        ]
        if batch:
            self._client.log_batch(self.run_id, metrics=batch)
        if checkpoint is not None:
            self._client.set_tag(self.run_id, "checkpoint_uri", checkpoint_uri(checkpoint))


def checkpoint_uri(checkpoint) -> str:
    """Where a Ray checkpoint lives, as a URI (``s3://...``) or local path."""
    filesystem = getattr(checkpoint, "filesystem", None)
    kind = getattr(filesystem, "type_name", "local")
    return checkpoint.path if kind == "local" else f"{kind}://{checkpoint.path}"
