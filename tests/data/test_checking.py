"""The parallel dataset check's worker and driver halves, without Ray: a row per image, totals that
equal the in-memory summary, a vocabulary equal to the one built from the records."""

import json

import numpy as np
import pytest

from components.data.pipeline.check import CheckedVocabulary, CheckRecords, SplitTotals
from components.data.record.tokenizer import SPECIALS, Tokenizer, guess_mode
from components.data.release.format import read_release
from components.data.release.stats import summarize_split
from components.data.release.table import ensure_table, read_split


def checked_rows(root, split: str, with_texts: bool = False) -> list[dict]:
    rows = read_split(str(root), split)
    batch = {"image_id": np.array([r["image_id"] for r in rows]), "record": np.array([r["record"] for r in rows])}
    out = CheckRecords(str(root / "images"), with_texts)(batch)
    return [{key: out[key][i] for key in out} for i in range(len(rows))]


@pytest.mark.parametrize("mode", ["char", "word"])
def test_totals_of_checked_rows_equal_the_summary_of_the_records(tiny_dataset, mode):
    root, by_split, _ = tiny_dataset
    totals = SplitTotals()
    for row in checked_rows(root, "train"):
        assert totals.add(row) is None
    tokenizer = Tokenizer({token: i for i, token in enumerate(SPECIALS)}, mode)  # lengths depend on the mode only
    assert totals.summary("train", mode) == summarize_split("train", by_split["train"], tokenizer)


def test_a_bad_record_comes_back_as_its_rejection_naming_the_field(tiny_dataset):
    root, _, _ = tiny_dataset
    row = read_split(str(root), "val")[0]
    record = json.loads(row["record"])
    record["ocr_locs"][0] = "0.9_0.1_0.2_0.3"
    batch = {"image_id": np.array([row["image_id"], "gone"]), "record": np.array([json.dumps(record), ""])}
    out = CheckRecords(str(root / "images"), False)(batch)
    assert list(out["reason"]) == ["bad_box", "missing_record"]
    assert list(out["field"]) == ["ocr_locs[0]", "ref_captions.json"]
    totals = SplitTotals()
    rejections = [totals.add({key: out[key][i] for key in out}) for i in range(2)]
    assert [r.error().args[0] for r in rejections][0].startswith(f"image '{row['image_id']}', field 'ocr_locs[0]'")
    assert totals.images == 0 and len(totals.rejections) == 2


def test_a_vocabulary_from_checked_rows_equals_one_built_from_the_records(tiny_dataset):
    root, by_split, _ = tiny_dataset
    vocabulary = CheckedVocabulary(None, "train")  # as for a folder without word2int.json
    for row in checked_rows(root, "train", with_texts=True):
        vocabulary.add(row["texts"])
    records = read_release(root, "train").records
    texts = [c for r in records for c in r.captions] + [r.info for r in records]
    expected = Tokenizer.build(texts, mode=guess_mode(texts))
    assert vocabulary.tokenizer().word2int == expected.word2int and vocabulary.tokenizer().mode == "char"
    assert ensure_table(str(root)).splits["train"].rows == len(by_split["train"])
