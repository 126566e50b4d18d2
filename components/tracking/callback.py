"""Ray Train's reports into MLflow, on the controller: the workers never talk to MLflow.

Metrics travel from the rank-0 worker through ``ray.train.report`` to the Ray Train controller,
where ``MlflowReportCallback`` logs them at their global ``step``, one value per step: after a
worker restart the steps between the last checkpoint and the failure are trained again, and their
second reports are not logged (the chart keeps the first attempt's values, as the run logged them).
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
        self._logged_through: int | None = None  # the last step logged to this run (read from it once)

    def after_report(self, run_context, metrics: list[dict[str, Any]], checkpoint) -> None:
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
        values = dict(metrics[0]) if metrics else {}
        step = int(values.pop("step", 0))
        resumed_from = int(values.get("resumed_from", 0))
        if resumed_from > self._resumed_from:
            self._resumed_from = resumed_from
            self._client.set_tag(self.run_id, "resumed_from_step", str(resumed_from))
        if checkpoint is not None:
            self._client.set_tag(self.run_id, "checkpoint_uri", checkpoint_uri(checkpoint))
        if self._logged_through is None:
            self._logged_through = self._last_logged_step(values)
        if step <= self._logged_through:
            return  # a step trained again after a restart: its first values stay
        self._logged_through = step
        now = int(time.time() * 1000)
        batch = [
            Metric(k, float(v), now, step)
            for k, v in values.items()
            if k not in LOG_ONLY and isinstance(v, int | float) and math.isfinite(float(v))
        ]
        if batch:
            self._client.log_batch(self.run_id, metrics=batch)

    def _last_logged_step(self, values: dict[str, Any]) -> int:
        """The highest step this run already has for a reported metric (0 for a new run)."""
        keys = [k for k in values if k not in LOG_ONLY][:1]
        history = self._client.get_metric_history(self.run_id, keys[0]) if keys else []
        return max((m.step for m in history), default=0)


def checkpoint_uri(checkpoint) -> str:
    """Where a Ray checkpoint lives, as a URI (``s3://...``) or local path."""
    filesystem = getattr(checkpoint, "filesystem", None)
    kind = getattr(filesystem, "type_name", "local")
    return checkpoint.path if kind == "local" else f"{kind}://{checkpoint.path}"
