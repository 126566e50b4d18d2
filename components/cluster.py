"""Attaching to a Ray cluster, or starting a local one: the one place every flow gets Ray from."""

from __future__ import annotations

import os

from components.config import JobConfig


def init_ray(job: JobConfig) -> None:
    """Attach to ``ray.address`` or ``RAY_ADDRESS`` (ray job submit), else start a local cluster."""
    import ray

    if ray.is_initialized():
        return
    if job.ray.address:
        ray.init(address=job.ray.address)
    elif os.environ.get("RAY_ADDRESS"):
        ray.init()
    else:
        # Logical CPUs are over-declared on small machines: train workers and decode actors share cores.
        ray.init(address="local", num_cpus=max(job.ray.local_num_cpus, os.cpu_count() or 1))
