"""The model an online service answers with, following the registry: ``models:/<name>@<alias>`` is
resolved to a version, that version loaded, and when the alias moves (a retrain or a sweep promoted
a model) the new version is loaded beside the old one and swapped in with one assignment. A request
holds the ``Loaded`` it started with, so nothing in flight is dropped or answered by a half-loaded
model; a version that fails to load is logged, skipped, and the old one keeps answering.

Any other source (``models:/<name>/<version>``, a run, a checkpoint folder) is pinned: loaded once.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from components.tracking.pyfunc import load_pyfunc
from components.tracking.registry import Registry
from components.tracking.sources import ModelSource

log = logging.getLogger(__name__)
ALIASED = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[\w-]+)$")
VERSIONED = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")


@dataclass(frozen=True)
class Loaded:
    """A loaded model and the registry version it is (for a pinned non-registry source, its text)."""

    version: str
    model: Any
    loaded_at: float


def load_registered(text: str, tracking_uri: str) -> Any:
    """The pyfunc model ``text`` names, behind ``predict(frame, params)``."""
    return load_pyfunc(ModelSource.parse(text, "model"), tracking_uri)


class ModelFollower:
    def __init__(self, model: str, tracking_uri: str, load: Callable[[str, str], Any] = load_registered):
        self.source, self.tracking_uri, self.load = model, tracking_uri, load
        aliased = ALIASED.match(model)
        self.name, self.alias = (aliased["name"], aliased["alias"]) if aliased else (None, None)
        self._current: Loaded | None = None
        self._failed: set[str] = set()  # versions that did not load: not tried again
        self._lock = threading.Lock()  # one load at a time; readers never wait for it

    @property
    def follows(self) -> bool:
        return self.alias is not None

    def current(self) -> Loaded | None:
        return self._current

    def registered_name(self) -> str:
        if self.name is not None:
            return self.name
        versioned = VERSIONED.match(self.source)
        return versioned["name"] if versioned else self.source

    def wanted_version(self) -> str | None:
        """The version the source names now (the alias resolved in the registry; None: unresolved)."""
        if not self.follows:
            versioned = VERSIONED.match(self.source)
            return versioned["version"] if versioned else self.source
        found = Registry(self.tracking_uri, self.name).aliased(self.alias)
        return None if found is None else str(found.version)

    def refresh(self) -> bool:
        """Load the version the source names now if it is not the one answering; True when it swapped."""
        with self._lock:
            version = self.wanted_version()
            if version is None:
                if self._current is None:
                    raise LookupError(f"{self.source}: no version of '{self.name}' has the alias '{self.alias}'")
                log.warning("%s: the alias did not resolve; version %s keeps answering",
                            self.source, self._current.version)  # fmt: skip
                return False
            if (self._current is not None and self._current.version == version) or version in self._failed:
                return False
            text = f"models:/{self.name}/{version}" if self.follows else self.source
            started = time.monotonic()
            try:
                model = self.load(text, self.tracking_uri)
            except Exception:
                if self._current is None:
                    raise  # nothing to answer with: the replica is not ready
                self._failed.add(version)
                log.exception("version %s of %s did not load; version %s keeps answering",
                              version, self.source, self._current.version)  # fmt: skip
                return False
            before = self._current.version if self._current else None
            self._current = Loaded(version, model, time.time())  # one assignment: readers see old or new
        log.info("%s: version %s answers now (was %s; loaded in %.1f s)",
                 self.source, version, before, time.monotonic() - started)  # fmt: skip
        return True
