"""Object-store code against a real S3-compatible HTTP endpoint (moto's server on loopback)."""

import json
import time

import numpy as np
import pytest
import torch
import torchvision
from helpers import RecordingTally

from components import storage
from components.data.pipeline.stream import EncodeImages
from components.data.prepare import load_vocabulary
from components.data.release.table import read_split
from components.data.transforms.encoding import EncodeSpec
from components.errors import UnsafePathError
from components.model import GridBackbone


def test_storage_round_trip(s3_bucket, tmp_path):
    storage.write_bytes(f"{s3_bucket}/a/b/hello.txt", "你好".encode())
    assert storage.read_bytes(f"{s3_bucket}/a/b/hello.txt").decode() == "你好"
    assert storage.exists(f"{s3_bucket}/a/b/hello.txt") and not storage.exists(f"{s3_bucket}/a/b/absent")
    storage.copy_dir(f"{s3_bucket}/a", str(tmp_path / "down"))
    assert (tmp_path / "down" / "b" / "hello.txt").read_text() == "你好"


def test_unsafe_ids_are_refused_on_object_stores(s3_bucket):
    assert storage.safe_join(f"{s3_bucket}/ds/images", "x/1.png") == f"{s3_bucket}/ds/images/x/1.png"
    for bad in ("../1.png", "/etc/passwd", "a/../../1.png"):
        with pytest.raises(UnsafePathError, match="escapes"):
            storage.safe_join(f"{s3_bucket}/ds/images", bad)


@pytest.fixture(scope="module")
def s3_dataset(s3_bucket, tiny_dataset):
    root, _, _ = tiny_dataset
    uri = f"{s3_bucket}/datasets/unit"
    storage.copy_dir(str(root), uri)
    return uri, root


def test_pipeline_reads_the_same_dataset_from_s3(s3_dataset):
    uri, root = s3_dataset
    remote, local = read_split(uri, "val"), read_split(str(root), "val")
    assert remote == local
    tokenizer = load_vocabulary(uri)
    assert tokenizer.word2int == load_vocabulary(str(root)).word2int
    spec = EncodeSpec(grid=2)
    batch = {"image_id": np.array([r["image_id"] for r in remote]), "record": np.array([r["record"] for r in remote])}
    from_s3 = EncodeImages(f"{uri}/images", tokenizer, spec)(batch)
    from_disk = EncodeImages(f"{root}/images", tokenizer, spec)(batch)
    assert from_s3.keys() == from_disk.keys() and len(from_s3["image_id"]) == len(remote)
    for key in from_s3:
        assert np.array_equal(from_s3[key], from_disk[key]), key


def test_missing_image_on_s3_is_skipped_and_named(s3_dataset):
    uri, _ = s3_dataset
    rows = read_split(uri, "val")
    tokenizer = load_vocabulary(uri)
    tally = RecordingTally()
    encode = EncodeImages(f"{uri}/no-images-here", tokenizer, EncodeSpec(grid=2), tally)
    out = encode({"image_id": np.array([rows[0]["image_id"]]), "record": np.array([rows[0]["record"]])})
    assert len(out["image_id"]) == 0
    assert tally.seen[0][0] == "missing_image" and rows[0]["image_id"] in tally.seen[0][1]


def test_backbone_weights_from_s3(s3_bucket, tmp_path):
    reference = torchvision.models.resnet18()
    torch.save(reference.state_dict(), tmp_path / "r18.pth")
    storage.write_bytes(f"{s3_bucket}/weights/r18.pth", (tmp_path / "r18.pth").read_bytes())
    backbone = GridBackbone("resnet18", grid=2, weights=f"{s3_bucket}/weights/r18.pth")
    assert torch.equal(backbone.trunk.layer3[0].conv1.weight, reference.layer3[0].conv1.weight)
    assert backbone.weights_source == f"{s3_bucket}/weights/r18.pth"


def test_retrain_lock_on_s3_is_a_conditional_put(s3_bucket):
    from components.errors import RetrainLocked
    from components.retraining.lock import acquire, lock_store

    where = f"{s3_bucket}/retrain-lock-test/retrain/lock.json"
    first = acquire(where, lease_s=60, purpose="first")
    with pytest.raises(RetrainLocked, match="first"):
        acquire(where, lease_s=60, purpose="second")
    assert first.renew() and not first.lost  # If-Match on its own ETag
    first._stop.set()  # it stops renewing; with a short lease the lock goes stale
    time.sleep(0.2)
    second = acquire(where, lease_s=0.1, purpose="second")
    held, _ = lock_store(where).read()  # one GET (its lease thread rewrites the object every 25 ms)
    assert json.loads(held)["purpose"] == "second"
    assert not first.renew()  # its ETag is no longer the object's
    second.release()
    assert not storage.exists(where)
