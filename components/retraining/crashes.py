"""Every boundary between two durable writes of a retrain, named, so that a kill can be placed there.

A retrain writes to four stores that share no transaction: the dataset folder (versions, ledger,
``retrain/*.json``), MLflow's runs, Ray's checkpoints and MLflow's registry. A kill between two of
those writes must leave a state that the same command completes, once: one published version, one
training per stage, one registered version. ``CRASH_POINTS`` lists those boundaries in the order a
retrain that trains passes them, ``GATE_CRASH_POINTS`` the ones of a failed data gate; the driver
calls ``crash_point`` at each. The retrain flow's tests kill a retrain at every one of them in turn,
so a stage cannot be added without its crash test (a point the tests never reach fails them).

``CAPON_CRASH_AT=<point>`` makes the process die there as a kill would (no ``finally``, no cleanup,
exit 137): a drill an operator can run against a staging dataset.
"""

from __future__ import annotations

import logging
import os
from typing import NoReturn

log = logging.getLogger(__name__)
CRASH_AT_ENV = "CAPON_CRASH_AT"
KILLED_EXIT = 137  # what a shell reports for a process ended by SIGKILL

CRASH_POINTS = (
    "started",  # retrain/pending.json written; no MLflow run yet
    "parent_created",  # the retrain's MLflow run exists; its id is not in pending.json yet
    "ingest_checked",  # the ingest ran and its run ended; nothing is published
    "published",  # the new version is current and its partitions are in the ledger; the stage is not saved
    "ingested",  # the stage 'ingested' is saved
    "pretrain_fitted",  # pre-training's run ended with its model; the stage is not saved
    "pretrained",
    "candidate_fitted",  # the fine-tuning's run ended with its model; the stage is not saved
    "trained",
    "candidate_registered",  # a model version of the candidate exists; no alias moved
    "alias_moved",  # champion or challenger points at it; the stage is not saved
    "registered",
    "outcome_recorded",  # retrain/last.json written; pending.json not removed yet
)
GATE_CRASH_POINTS = (
    "gate_version_written",  # the refused records kept as a version that is not current
    "gate_failure_counted",  # retrain/gate_attempts.json counts this failure; the outcome is not recorded
)


def crash_point(name: str) -> None:
    """The retrain passes the boundary ``name``; with ``CAPON_CRASH_AT=<name>`` it dies here."""
    if name not in CRASH_POINTS and name not in GATE_CRASH_POINTS:
        raise ValueError(f"{name!r} is not a crash point: add it to CRASH_POINTS with its crash test")
    if os.environ.get(CRASH_AT_ENV) == name:
        die(name)


def die(name: str) -> NoReturn:
    """End the process at once, as SIGKILL would: no ``finally`` runs, nothing is flushed or closed."""
    log.error("%s=%s: the process dies here, as a kill would", CRASH_AT_ENV, name)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(KILLED_EXIT)
