"""One retrain at a time: a lock object beside the dataset, on a shared disk or on S3.

Taking it is an atomic create (locally under ``flock`` on a guard file, which also holds over NFS;
on S3 a conditional PUT, ``If-None-Match: *``), so of two retrains started at once exactly one gets
it and the other exits 75. The holder renews its lease from a thread every quarter lease; a lock
whose lease ran out (its holder died without releasing it), or whose holder is a dead process on
this machine, is taken over by a compare-and-swap (``If-Match`` on its ETag on S3), so that of two
takers exactly one wins.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

from components import storage
from components.errors import ConfigError, RetrainLocked
from components.processes import dead_here
from components.redaction import redact

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, and since when it was last renewed (seconds since the epoch)."""

    owner: str
    host: str
    pid: int
    purpose: str
    acquired: float
    renewed: float

    def stale(self, lease_s: float, now: float | None = None) -> bool:
        """Its lease ran out, or it is a process of this machine that no longer runs."""
        if (now or time.time()) - self.renewed > lease_s:
            return True
        return dead_here(self.host, self.pid)

    def text(self) -> str:
        age = time.time() - self.renewed
        return f"{self.purpose} (pid {self.pid} on {self.host}, renewed {age:.0f} s ago)"


# -- where a lock lives: compare-and-swap on a file or an S3 object -----------------------------------
class LocalLockFile:
    """A lock file; every read-compare-write under an exclusive ``flock`` of ``<file>.guard``."""

    def __init__(self, path: str):
        self.path = Path(path)

    @contextlib.contextmanager
    def _guarded(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{self.path}.guard", "a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(guard, fcntl.LOCK_UN)

    def read(self) -> tuple[bytes, str] | None:
        if not self.path.exists():
            return None
        data = self.path.read_bytes()
        return data, hashlib.sha256(data).hexdigest()

    def create(self, data: bytes) -> str | None:
        with self._guarded():
            if self.path.exists():
                return None
            storage.write_bytes(str(self.path), data)
        return hashlib.sha256(data).hexdigest()

    def swap(self, data: bytes, token: str) -> str | None:
        with self._guarded():
            current = self.read()
            if current is None or current[1] != token:
                return None
            storage.write_bytes(str(self.path), data)
        return hashlib.sha256(data).hexdigest()

    def delete(self, token: str) -> None:
        with self._guarded():
            current = self.read()
            if current is not None and current[1] == token:
                self.path.unlink()


class S3LockObject:
    """A lock object on S3 (or an S3-compatible endpoint: ``AWS_ENDPOINT_URL_S3``), ETags as tokens."""

    def __init__(self, uri: str):
        import boto3

        parsed = urlparse(uri)
        self.bucket, self.key = parsed.netloc, parsed.path.lstrip("/")
        self.client = boto3.client("s3")

    def _conditional_put(self, data: bytes, **condition: str) -> str | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.put_object(Bucket=self.bucket, Key=self.key, Body=data, **condition)["ETag"]
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                return None
            raise

    def read(self) -> tuple[bytes, str] | None:
        from botocore.exceptions import ClientError

        try:
            found = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return found["Body"].read(), found["ETag"]

    def create(self, data: bytes) -> str | None:
        return self._conditional_put(data, IfNoneMatch="*")

    def swap(self, data: bytes, token: str) -> str | None:
        return self._conditional_put(data, IfMatch=token)

    def delete(self, token: str) -> None:
        current = self.read()
        if current is not None and current[1] == token:
            self.client.delete_object(Bucket=self.bucket, Key=self.key)


def lock_store(location: str) -> LocalLockFile | S3LockObject:
    if not storage.is_uri(location):
        return LocalLockFile(location)
    if location.startswith("s3://"):
        return S3LockObject(location)
    raise ConfigError("data.dataset", f"a retrain lock needs a local path or s3:// (got {redact(location)})")


# -- the lock ----------------------------------------------------------------------------------------
class Lock:
    """A held lock, renewed from a thread; ``lost`` turns true if another process took it over."""

    def __init__(self, store, holder: Holder, token: str, lease_s: float):
        self.store, self.holder, self.token, self.lease_s = store, holder, token, lease_s
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_until_stopped, name="retrain-lock", daemon=True)
        self._thread.start()

    def _renew_until_stopped(self) -> None:
        while not self._stop.wait(self.lease_s / 4):
            if not self.renew():
                log.error("lost the retrain lock to another process: %s", _read_holder(self.store))
                return

    def renew(self) -> bool:
        holder = Holder(**{**asdict(self.holder), "renewed": time.time()})
        token = self.store.swap(_encode(holder), self.token)
        if token is None:
            self.lost = True
            return False
        self.holder, self.token = holder, token
        return True

    def release(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if not self.lost:
            self.store.delete(self.token)


def _encode(holder: Holder) -> bytes:
    return json.dumps(asdict(holder)).encode()


def _read_holder(store) -> tuple[Holder, str] | None:
    found = store.read()
    if found is None:
        return None
    try:
        return Holder(**json.loads(found[0])), found[1]
    except (ValueError, TypeError):  # unreadable: treat as a holder long gone
        return Holder("?", "?", 0, "unreadable lock", 0.0, 0.0), found[1]


def acquire(location: str, lease_s: float, purpose: str) -> Lock:
    """The lock at ``location``, or ``RetrainLocked`` naming its live holder. A stale one is taken over."""
    store = lock_store(location)
    now = time.time()
    holder = Holder(uuid.uuid4().hex, socket.gethostname(), os.getpid(), purpose, now, now)
    token = store.create(_encode(holder))
    if token is None:
        found = _read_holder(store)
        if found is not None and not found[0].stale(lease_s):
            raise RetrainLocked(f"another retrain holds {redact(location)}: {found[0].text()}; try again later")
        if found is not None:
            log.warning("taking over a stale retrain lock: %s", found[0].text())
            token = store.swap(_encode(holder), found[1])
        else:
            token = store.create(_encode(holder))
        if token is None:
            raise RetrainLocked(f"another retrain took {redact(location)} at the same moment; try again later")
    return Lock(store, holder, token, lease_s)


@contextlib.contextmanager
def hold_lock(location: str, lease_s: float, purpose: str) -> Iterator[Lock]:
    lock = acquire(location, lease_s, purpose)
    try:
        yield lock
    finally:
        lock.release()
