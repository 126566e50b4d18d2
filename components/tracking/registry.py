"""The MLflow model registry of one model name: versions, aliases, and the champion gate.

The gate is one decision at a time (``Registry.gate``): reading the champion, judging the candidate
against it and moving the alias happen while holding a lock in the registry itself, the only service
every machine shares. A lock is the registered model ``<name>.gate-lock.<generation>`` with its owner
and expiry as tags; the store refuses a second create of one name, an atomic test-and-set on any MLflow
backend. Taking the gate creates generation 0 when no lock exists, or generation g + 1 when the
newest lock g expired or its holder is a process of this machine that no longer runs (killed inside
the gate); releasing deletes one's own generation. A takeover never deletes a lock to make room: two
takers who both found g expired both try to create g + 1, and the store lets exactly one of them. The
winner then deletes the generations below its own, which no one holds any more.

``Registry.promote`` is the one promotion decision every caller goes through (a sweep's or a
fine-tune's winner, a scheduled retrain's candidate): they differ only in how they judge a candidate
against the champion (``judge``).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from components.errors import CapOnImageError
from components.processes import dead_here, this_host
from components.redaction import redact

log = logging.getLogger(__name__)
CHAMPION, CHALLENGER = "champion", "challenger"
GATE_LOCK_SUFFIX = ".gate-lock."  # followed by the lock's generation
MAX_ALIAS_CHECKS = 3  # the champion moved this often while we judged: give up, a person should look

__all__ = ["CHALLENGER", "CHAMPION", "GateBusy", "ModelVersion", "Promotion", "Registry"]


class GateBusy(CapOnImageError):
    """Another registration held the champion gate for longer than this one would wait, or the
    champion kept moving while this one judged."""

    exit_code = 75


@dataclass(frozen=True)
class Promotion:
    """A judge's verdict: the candidate's registered version, and whether it takes ``champion``."""

    version: str
    promote: bool


Judge = Callable[[ModelVersion | None], Promotion | None]  # the champion (None: none yet) -> verdict


def version_number(version: ModelVersion | None) -> str | None:
    return None if version is None else str(version.version)


class Registry:
    """The registered model ``name`` in the store at ``tracking_uri``."""

    def __init__(self, tracking_uri: str, name: str):
        self.tracking_uri, self.name = tracking_uri, name
        self.client = MlflowClient(tracking_uri)

    def champion(self) -> ModelVersion | None:
        return self.aliased(CHAMPION)

    def aliased(self, alias: str) -> ModelVersion | None:
        """The version ``alias`` names; None when none does (or the registry cannot say now)."""
        try:
            return self.client.get_model_version_by_alias(self.name, alias)
        except MlflowException:
            return None

    def add_version(
        self, model_uri: str, *, run_id: str, tags: Mapping[str, str], description: str = ""
    ) -> ModelVersion:
        """``model_uri`` registered as a new version, tagged with its source run and ``tags`` (redacted,
        as everything the registry stores)."""
        mlflow.set_tracking_uri(self.tracking_uri)  # register_model has no client form that waits
        tags = {"source_run": run_id, **{key: redact(str(value)) for key, value in tags.items()}}
        version = mlflow.register_model(model_uri, self.name, tags=tags, await_registration_for=300)
        if description:
            self.client.update_model_version(self.name, version.version, description=redact(description))
        return version

    def versions_tagged(self, key: str, value: str) -> list[ModelVersion]:
        """The versions whose tag ``key`` is ``value``, oldest first."""
        found = [v for v in self.client.search_model_versions(f"name = '{self.name}'") if v.tags.get(key) == value]
        return sorted(found, key=lambda v: int(v.version))

    def tag_version(self, version: str, key: str, value: str) -> None:
        self.client.set_model_version_tag(self.name, version, key, redact(str(value)))

    def set_alias(self, alias: str, version: str, replacing: ModelVersion | None) -> None:
        """Point ``alias`` at ``version``; a champion it replaces is tagged ``replaced_by``."""
        self.client.set_registered_model_alias(self.name, alias, version)
        if alias == CHAMPION and replacing is not None and str(replacing.version) != str(version):
            self.tag_version(replacing.version, "replaced_by", version)

    def promote(
        self, judge: Judge, *, before_move: Callable[[], None] | None = None
    ) -> tuple[Promotion | None, ModelVersion | None, str | None]:
        """The one promotion decision: inside the gate, the champion is read and ``judge``d; it is read
        again before the alias moves (a person may move an alias without the gate), and if it moved,
        the candidate is judged against the new holder. ``before_move`` may still refuse (raise). The
        alias moves last. (verdict, the champion judged against, the alias set); a ``None`` verdict
        leaves every alias as it is."""
        with self.gate():
            holder = self.champion()
            for _ in range(MAX_ALIAS_CHECKS):
                verdict = judge(holder)
                if verdict is None:
                    return None, holder, None
                now = self.champion()
                if version_number(now) == version_number(holder):
                    break
                log.warning(
                    "champion moved from %s to %s meanwhile: judging against it", *map(version_number, (holder, now))
                )
                holder = now
            else:
                raise GateBusy(f"the champion of '{self.name}' moved {MAX_ALIAS_CHECKS} times during the decision")
            if before_move is not None:
                before_move()
            alias = CHAMPION if verdict.promote else CHALLENGER
            self.set_alias(alias, verdict.version, replacing=holder)
        return verdict, holder, alias

    @contextmanager
    def gate(self, *, lease_s: float = 3600.0, wait_s: float = 3600.0, poll_s: float = 0.5) -> Iterator[str]:
        """The champion gate, held (see the module's docstring); waits for another holder."""
        owner = f"{this_host()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        deadline = time.time() + wait_s
        while (lock := self._take(owner, lease_s)) is None:
            if time.time() > deadline:
                held = ", ".join(self._lock_names()) or "none left"
                raise GateBusy(f"the champion gate of '{self.name}' stayed held for {wait_s:.0f} s ({held})")
            time.sleep(poll_s)
        try:
            yield owner
        finally:
            try:
                self.client.delete_registered_model(lock)
            except MlflowException:
                log.warning("the gate lock %s was gone when released (its lease may have run out)", lock)

    def _lock_names(self) -> list[str]:
        """The gate's locks, oldest generation first."""
        prefix = f"{self.name}{GATE_LOCK_SUFFIX}"
        found = self.client.search_registered_models(filter_string=f"name LIKE '{prefix}%'")
        names = [m.name for m in found if m.name.startswith(prefix) and m.name[len(prefix) :].isdigit()]
        return sorted(names, key=lambda name: int(name[len(prefix) :]))

    def next_lock(self) -> str | None:
        """The lock a taker may create now: generation 0 when there is none, the one after the newest when
        that one is stale (expired, or its holder dead); None while the newest is held."""
        names = self._lock_names()
        if not names:
            return f"{self.name}{GATE_LOCK_SUFFIX}0"
        try:
            newest = self.client.get_registered_model(names[-1])
        except MlflowException:
            return None  # released meanwhile: look again
        owner = newest.tags.get("owner", "")
        if float(newest.tags.get("expires", "0")) >= time.time() and not owner_dead(owner):
            return None
        log.warning("taking over the champion gate %s of a holder gone (owner %s)", names[-1], owner)
        generation = int(names[-1][len(f"{self.name}{GATE_LOCK_SUFFIX}") :])
        return f"{self.name}{GATE_LOCK_SUFFIX}{generation + 1}"

    def claim(self, lock: str, owner: str, lease_s: float) -> bool:
        """Create ``lock`` (``next_lock``'s answer); True when this taker's create won. The winner deletes
        the older generations, stale by then."""
        tags = {"owner": owner, "expires": repr(time.time() + lease_s)}
        try:
            self.client.create_registered_model(lock, tags=tags, description="held while the champion gate decides")
        except MlflowException as err:
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            return False
        for older in self._lock_names():
            if older == lock:
                break
            with suppress(MlflowException):  # gone already
                self.client.delete_registered_model(older)
        return True

    def _take(self, owner: str, lease_s: float) -> str | None:
        lock = self.next_lock()
        return lock if lock is not None and self.claim(lock, owner, lease_s) else None


def owner_dead(owner: str) -> bool:
    """A gate owner (``host:pid:nonce``) that is a process of this machine no longer running."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    return pid.isdigit() and dead_here(host, int(pid))
