"""Attaching to a Ray cluster, or starting a local one: the one place every flow gets Ray from."""

from __future__ import annotations

import os

import numpy as np

from components.config import JobConfig
from components.errors import ClusterBusy
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
        refuse_a_second_local_cluster()
        # Logical CPUs are over-declared on small machines: train workers and decode actors share cores.
        local_cpus = job.ray.local_num_cpus if job is not None else 0
        ray.init(address="local", num_cpus=max(local_cpus, os.cpu_count() or 1))
    quiet_progress_bars()


def check_can_start(job: JobConfig | None = None) -> None:
    """What ``init_ray`` would refuse (``refuse_a_second_local_cluster``), said before any work starts."""
    import ray

    if ray.is_initialized() or (job is not None and job.ray.address) or os.environ.get("RAY_ADDRESS"):
        return
    refuse_a_second_local_cluster()


def local_ray_clusters() -> dict[str, int]:
    """The Ray clusters with a node on this machine: GCS address -> the pid of the node's raylet,
    read from the raylets' command lines (``--gcs-address=``)."""
    import psutil

    found = {}
    for process in psutil.process_iter(["pid", "cmdline"]):
        try:
            arguments = " ".join(process.info["cmdline"] or []).split()
        except (psutil.AccessDenied, psutil.NoSuchProcess):
            continue
        if arguments and os.path.basename(arguments[0]) == "raylet":
            for argument in arguments:
                if argument.startswith("--gcs-address=") and argument.partition("=")[2] not in ("", "None"):
                    found[argument.partition("=")[2]] = process.info["pid"]
    return found


def refuse_a_second_local_cluster() -> None:
    """``ClusterBusy`` (exit 75) when a Ray cluster already runs on this machine. A second local one
    beside it does not fail at once: Ray Train's placement-group cleaner, finding two clusters, removes
    the job's placement group and its workers die minutes in. Said here, before anything starts."""
    running = local_ray_clusters()
    if not running:
        return
    address, pid = next(iter(sorted(running.items())))
    raise ClusterBusy(
        f"another Ray cluster runs on this machine (GCS {address}, raylet pid {pid}); a second local "
        "cluster beside it would have its training workers removed. Try again when it has finished, "
        f"attach to it with --set ray.address={address} if it was started with `ray start` (a cluster "
        "started by another flow ends with that flow), or stop it with `ray stop`"
    )


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
