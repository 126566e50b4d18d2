"""Encoding records for the model without Ray: fixed shapes, masks, neighbours, skipped bad records."""

import json

import numpy as np
from helpers import RecordingTally
from PIL import Image

from components.data.pipeline.stream import EncodeImages
from components.data.record.tokenizer import PAD, SOS
from components.data.release.format import read_release
from components.data.release.table import read_split
from components.data.transforms.encoding import EncodeSpec, empty_rows, encode_record

SPEC = EncodeSpec(grid=2, neighbours="top1", max_boxes=32)


def test_encode_record_pads_masks_and_links_neighbours(tiny_dataset):
    root, by_split, tokenizer = tiny_dataset
    record = by_split["train"][0]
    image = Image.open(root / "images" / f"{record.image_id}.png")
    row = encode_record(record, image, tokenizer, SPEC)
    n = len(record.captions)
    assert row["image"].shape == (3, 64, 64) and row["image"].dtype == np.uint8
    assert row["n_boxes"] == n and (row["captions"][n:] == PAD).all()
    assert row["captions"][0, 0] == SOS and tokenizer.decode(row["captions"][0]) == record.captions[0]
    assert row["chain"][0, 0] == -1 and row["chain"][0, 1] == 1  # stored boxes are in chain order
    assert (row["neighbours"][:n] == row["chain"][:n]).all()  # top1 neighbours are the chain's


def test_box_truncation_is_counted(tiny_dataset):
    root, by_split, tokenizer = tiny_dataset
    record = max(by_split["train"], key=lambda r: len(r.captions))
    image = Image.open(root / "images" / f"{record.image_id}.png")
    row = encode_record(record, image, tokenizer, EncodeSpec(grid=2, max_boxes=2))
    assert row["n_boxes"] == 2 and row["truncated_boxes"] == len(record.captions) - 2
    assert row["chain"][1, 1] == -1  # the neighbour that was cut is no neighbour any more


def test_bad_records_are_skipped_not_fatal(tiny_dataset):
    root, _, tokenizer = tiny_dataset
    index = read_split(str(root), "train", limit=3)
    broken = json.loads(index[1]["record"])
    broken["ocr_locs"][0] = "0.9_0.1_0.2_0.2"
    records = [index[0]["record"], json.dumps(broken), index[2]["record"], ""]
    ids = [index[0]["image_id"], index[1]["image_id"], index[2]["image_id"], "ghost"]

    tally = RecordingTally()
    encode = EncodeImages(f"{root}/images", tokenizer, SPEC, tally=tally)
    rows = encode({"image_id": np.array(ids), "record": np.array(records, dtype=object)})
    assert list(rows["image_id"]) == [ids[0], ids[2]]
    assert [reason for reason, _ in tally.seen] == ["bad_box", "missing_record"]
    assert f"image '{ids[1]}', field 'ocr_locs[0]': bad_box" in tally.seen[0][1]
    empty = encode({"image_id": np.array(["ghost"]), "record": np.array([""], dtype=object)})
    assert {k: v.shape for k, v in empty.items()} == {k: v.shape for k, v in empty_rows(SPEC).items()}


def test_release_records_and_pipeline_index_agree(tiny_dataset):
    root, _, _ = tiny_dataset
    index = read_split(str(root), "val")
    assert [r["image_id"] for r in index] == [r.image_id for r in read_release(root, "val").records]


def test_random2_neighbours_are_fixed_per_image_by_the_seed(tiny_dataset):
    """Drawn once per image from the job's seed: the same in every epoch, on every worker and at
    evaluation; another seed draws others."""
    root, by_split, tokenizer = tiny_dataset
    records = [r for r in by_split["train"] if len(r.captions) >= 4][:5]
    images = [Image.open(root / "images" / f"{r.image_id}.png") for r in records]

    def drawn(seed: int) -> list[list[list[int]]]:
        spec = EncodeSpec(grid=2, neighbours="random2", seed=seed)
        rows = [encode_record(r, image, tokenizer, spec) for r, image in zip(records, images, strict=True)]
        return [row["neighbours"][: row["n_boxes"]].tolist() for row in rows]

    first = drawn(0)
    assert drawn(0) == first and drawn(1) != first
    for row, record in zip(first, records, strict=True):
        assert all(len(set(pair)) == 2 and box not in pair for box, pair in enumerate(row))
        assert all(0 <= j < len(record.captions) for pair in row for j in pair)
