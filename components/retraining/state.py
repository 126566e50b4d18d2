"""What a retrain keeps beside the dataset, so that a crash resumes and a rerun knows what was done.

    DATASET/retrain/pending.json        the retrain under way: run key, partitions, stage, MLflow runs
    DATASET/retrain/last.json           the last finished retrain: run key, outcome, version
    DATASET/retrain/gate_attempts.json  partition -> its key, how often it failed the data gate, why
    DATASET/retrain/views/<run key>/    the candidate's training index: new images plus replayed old

The run key hashes the new partitions' ledger keys and the champion's version: the same crawl on the
same champion is the same retrain. Stages advance in order and are saved as each completes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from components import storage
from components.data.release.layout import timestamp

RETRAIN_DIR = "retrain"
PENDING_FILE = f"{RETRAIN_DIR}/pending.json"
LAST_FILE = f"{RETRAIN_DIR}/last.json"
ATTEMPTS_FILE = f"{RETRAIN_DIR}/gate_attempts.json"
LOCK_FILE = f"{RETRAIN_DIR}/lock.json"
VIEWS_DIR = f"{RETRAIN_DIR}/views"
HELD_DIR = f"{RETRAIN_DIR}/held"  # records a failed data gate kept out of the table
STAGES = ("started", "ingested", "pretrained", "trained", "registered")


def run_key(partitions: dict[str, str], champion_version: str | None) -> str:
    """A hash of the partitions' ledger keys (name and key) and the champion's version."""
    text = json.dumps({"partitions": sorted(partitions.items()), "champion": champion_version or "none"})
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class Pending:
    """A retrain under way."""

    run_key: str
    partitions: dict[str, str]  # name -> ledger key
    champion_version: str | None  # the champion when it started
    parent_run_id: str | None  # the MLflow parent run, once the retrain has opened it
    stage: str = "started"
    started: str = field(default_factory=timestamp)
    previous_version: str | None = None  # the dataset version ingested into ...
    version: str | None = None  # ... and the one the ingest made
    pretrain_run_id: str | None = None  # without a champion: the pre-training run
    candidate_run_id: str | None = None  # the candidate's fine-tuning run
    registered_version: str | None = None
    decision: dict[str, Any] | None = None

    def reached(self, stage: str) -> bool:
        return STAGES.index(self.stage) >= STAGES.index(stage)


def _read_json(location: str) -> Any:
    return json.loads(storage.read_bytes(location)) if storage.exists(location) else None


def _write_json(location: str, value: Any) -> None:
    storage.write_bytes(location, json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False).encode())


def load_pending(dataset: str) -> Pending | None:
    values = _read_json(storage.join(dataset, PENDING_FILE))
    return Pending(**values) if values else None


def save_pending(dataset: str, pending: Pending, stage: str | None = None) -> None:
    if stage is not None:
        pending.stage = stage
    _write_json(storage.join(dataset, PENDING_FILE), asdict(pending))


def save_last(dataset: str, pending: Pending, outcome: str, **details: Any) -> None:
    """The retrain ended (``outcome``): it becomes the last one (``clear_pending`` follows)."""
    record = {**asdict(pending), "outcome": outcome, "finished": timestamp(), **details}
    _write_json(storage.join(dataset, LAST_FILE), record)


def clear_pending(dataset: str) -> None:
    storage.delete(storage.join(dataset, PENDING_FILE))


def load_last(dataset: str) -> dict[str, Any] | None:
    return _read_json(storage.join(dataset, LAST_FILE))


# -- data gate attempts ------------------------------------------------------------------------------
def load_attempts(dataset: str) -> dict[str, dict[str, Any]]:
    return _read_json(storage.join(dataset, ATTEMPTS_FILE)) or {}


def save_attempts(dataset: str, attempts: dict[str, dict[str, Any]]) -> None:
    _write_json(storage.join(dataset, ATTEMPTS_FILE), attempts)


def count_failure(
    attempts: dict[str, dict[str, Any]], partitions: dict[str, str], reasons: list[str], key: str, started: str
) -> dict[str, dict[str, Any]]:
    """``attempts`` with one more gate failure for each partition; a partition whose key changed
    (its files were fixed) starts again from one. One retrain (run ``key``, ``started`` then) counts
    once: its rerun after a crash that had counted already does not count again."""
    out = dict(attempts)
    for name, partition_key in partitions.items():
        before = out.get(name, {})
        if before.get("key") == partition_key and (before.get("run_key"), before.get("started")) == (key, started):
            continue
        count = before.get("attempts", 0) + 1 if before.get("key") == partition_key else 1
        out[name] = {"key": partition_key, "attempts": count, "reasons": reasons, "run_key": key, "started": started}
        out[name]["at"] = timestamp()
    return out


def waiting_for_a_person(
    attempts: dict[str, dict[str, Any]], keys: dict[str, str], max_attempts: int
) -> dict[str, str]:
    """Partitions (of ``keys``: name -> current key) that failed the gate ``max_attempts`` times
    with their current key: name -> why they are not tried again."""
    waiting = {}
    for name, partition_key in keys.items():
        entry = attempts.get(name)
        if entry and entry.get("key") == partition_key and entry.get("attempts", 0) >= max_attempts:
            waiting[name] = (
                f"failed the data gate {entry['attempts']} times ({'; '.join(entry.get('reasons', []))}); "
                f"fix it or pass --retry {name}"
            )
    return waiting
