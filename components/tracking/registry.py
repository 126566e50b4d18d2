"""The MLflow model registry of one model name: versions, aliases, and the champion gate.

The gate is one decision at a time (``Registry.gate``): reading the champion, judging the candidate
against it and moving the alias happen while holding a lock in the registry itself, the only service
every machine shares. Taking it creates the registered model ``<name>.gate-lock`` (the store refuses
a second create: an atomic test-and-set on any MLflow backend), with its owner and expiry as tags;
releasing deletes it; an expired one, or one whose holder is a process of this machine that no
longer runs (killed inside the gate), is deleted by the next taker.

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
GATE_LOCK_SUFFIX = ".gate-lock"
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
        try:
            return self.client.get_model_version_by_alias(self.name, CHAMPION)
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
        lock, owner = f"{self.name}{GATE_LOCK_SUFFIX}", f"{this_host()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        deadline = time.time() + wait_s
        while not self._take(lock, owner, lease_s):
            if time.time() > deadline:
                raise GateBusy(f"the champion gate of '{self.name}' stayed held for {wait_s:.0f} s ({lock} exists)")
            time.sleep(poll_s)
        try:
            yield owner
        finally:
            try:
                self.client.delete_registered_model(lock)
            except MlflowException:
                log.warning("the gate lock %s was gone when released (its lease may have run out)", lock)

    def _take(self, lock: str, owner: str, lease_s: float) -> bool:
        tags = {"owner": owner, "expires": repr(time.time() + lease_s)}
        try:
            self.client.create_registered_model(lock, tags=tags, description="held while the champion gate decides")
            return True
        except MlflowException as err:
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        try:
            held = self.client.get_registered_model(lock)
        except MlflowException:
            return False  # released meanwhile: try again
        owner = held.tags.get("owner", "")
        if float(held.tags.get("expires", "0")) < time.time() or owner_dead(owner):
            log.warning("taking over the champion gate %s of a holder gone (owner %s)", lock, owner)
            with suppress(MlflowException):  # another taker may have deleted it first
                self.client.delete_registered_model(lock)
        return False


def owner_dead(owner: str) -> bool:
    """A gate owner (``host:pid:nonce``) that is a process of this machine no longer running."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    return pid.isdigit() and dead_here(host, int(pid))
