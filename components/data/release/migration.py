"""A dataset folder of the earlier layout converted to a table, its version history kept as tags.

The earlier layout kept each version's release files whole under ``versions/<content hash>/`` (with a
``manifest.json``: created, parent, partitions), the current one at the top, an ``index/`` derived
from it and the ingest ledger in ``ingest/ledger.json``. Migration imports the oldest version, then
appends each later one's new training records as one commit, tagged with its old name (so
``--set data.version=<old name>`` still reads it) and carrying the partitions it ingested with their
keys (so they are not ingested again); a top level that differs from the last version (a crash
between two steps of the earlier publishing) becomes one more commit. Only the new records of each
version are held in memory.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from components import storage
from components.data.release.format import CAPTIONS_FILE
from components.data.release.table import (
    DatasetTable,
    append_rows,
    captions_members,
    has_table,
    import_release,
    iter_rows,
    read_split_ids,
    record_text,
    store_source_vocabulary,
)
from components.errors import DatasetFormatError

log = logging.getLogger(__name__)

OLD_VERSIONS_DIR = "versions"
OLD_INDEX_DIR = "index"
OLD_LEDGER_FILE = "ingest/ledger.json"


def old_versions(dataset: str) -> list[tuple[str, dict[str, Any]]]:
    """(name, manifest) of every complete version folder of the earlier layout, oldest first."""
    found = []
    for entry in storage.list_folder(storage.join(dataset, OLD_VERSIONS_DIR)):
        folder = storage.join(dataset, OLD_VERSIONS_DIR, entry.name)
        if entry.is_folder and storage.exists(storage.join(folder, CAPTIONS_FILE)):
            manifest_uri = storage.join(folder, "manifest.json")
            manifest = json.loads(storage.read_bytes(manifest_uri)) if storage.exists(manifest_uri) else {}
            found.append((entry.name, manifest))
    return sorted(found, key=lambda item: item[1].get("created", ""))


def migrate(dataset: str, *, remove_old: bool = False) -> DatasetTable:
    """The folder's versions as the commits of a new table (see the module's docstring); with
    ``remove_old`` the version folders, the old index and ledger are deleted once it is done."""
    if has_table(dataset):
        raise DatasetFormatError(f"{dataset} has a table already: nothing to migrate")
    versions = old_versions(dataset)
    ledger = _old_ledger(dataset)
    sources = [(name, storage.join(dataset, OLD_VERSIONS_DIR, name), manifest) for name, manifest in versions]
    sources.append(("current", dataset, {}))
    table = None
    for name, source, manifest in sources:
        partitions = {p: str(k) for p, k in manifest.get("partitions", {}).items()}
        partitions.update({p: str(e["key"]) for p, e in ledger.items() if e.get("version") == name and "key" in e})
        if table is None:
            table = import_release(dataset, source, tags=[name, *partitions])
            continue
        table = _append_version(table, name, source, partitions)
    if remove_old:
        for folder in (OLD_VERSIONS_DIR, OLD_INDEX_DIR, OLD_LEDGER_FILE):
            storage.delete(storage.join(dataset, folder))
    log.info("migrated %s: %d versions, now version %s", dataset, len(versions), table.version)
    return table


def _old_ledger(dataset: str) -> dict[str, dict[str, Any]]:
    uri = storage.join(dataset, OLD_LEDGER_FILE)
    return json.loads(storage.read_bytes(uri)) if storage.exists(uri) else {}


def _append_version(table: DatasetTable, name: str, source: str, partitions: dict[str, str]) -> DatasetTable:
    """The training records ``source`` has beyond ``table``'s, as one commit tagged ``name`` (none
    when it adds nothing and ingested nothing: the top level equal to the last version)."""
    train = read_split_ids(source).get("train", [])
    known = {row["image_id"] for row in iter_rows(table, "train")} if "train" in table.splits else set()
    new = [image_id for image_id in dict.fromkeys(train) if image_id not in known]
    if not new and not partitions:
        return table
    wanted, records = set(new), {}
    for image_id, value in captions_members(source):
        if image_id in wanted:
            records[image_id] = record_text(value)
    rows = [(image_id, records.get(image_id, "")) for image_id in new]
    vocabulary = store_source_vocabulary(source, table.dataset)
    tags = [*partitions] if source == table.dataset else [name, *partitions]  # the top level has no name
    return append_rows(
        table, "train", rows, partitions=partitions, tags=tags, vocabulary=vocabulary, operation="migrate"
    )
