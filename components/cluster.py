"""Attaching to a Ray cluster, or starting a local one: the one place every flow gets Ray from."""

from __future__ import annotations

import os

import numpy as np

from components.config import JobConfig
from components.progress import on_terminal


def init_ray(job: JobConfig | None = None) -> None:
    """Attach to ``ray.address`` or ``RAY_ADDRESS`` (ray job submit), else start a local cluster
    (without a job: ``RAY_ADDRESS`` or a local cluster of this machine's CPUs)."""
    import ray

    if ray.is_initialized():
        quiet_progress_bars()
        return
    if job is not None and job.ray.address:
        ray.init(address=job.ray.address)
    elif os.environ.get("RAY_ADDRESS"):
        ray.init()
    else:
        # Logical CPUs are over-declared on small machines: train workers and decode actors share cores.
        local_cpus = job.ray.local_num_cpus if job is not None else 0
        ray.init(address="local", num_cpus=max(local_cpus, os.cpu_count() or 1))
    quiet_progress_bars()


def quiet_progress_bars() -> None:
    """Ray Data's progress bars on a terminal only: in a log file every redraw is a line (thousands
    in one training run). Off a terminal the flows log their own progress lines instead."""
    import ray.data

    if not on_terminal():
        ray.data.DataContext.get_current().enable_progress_bars = False


def actor_pool(actors: int):
    """Ray Data's autoscaling actor pool of one to ``actors`` actors: the pool every stage that holds a
    model or a tokenizer runs in (decoding images, captioning, checking a dataset)."""
    import ray

    return ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, actors))


def object_column(values: list) -> np.ndarray:
    """A Ray Data batch column of Python objects (lists, strings of any length) as one object array:
    ``np.asarray`` would turn a list of equal-length lists into a 2-D array."""
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array
