import json
import shutil

import numpy as np
import pytest
from PIL import Image

from components.data.pipeline.stream import RejectionTally
from components.data.record.boxes import Box
from components.data.release.format import (
    ImageRecord,
    first_listings,
    read_names,
    read_release,
    save_image,
    write_names,
    write_release,
)
from components.errors import DatasetError, DatasetFormatError

WIDTH, HEIGHT = 200, 100

# A record exactly as the release writes it: fraction strings, ocr_colors present, unicode name files.
HAND_WRITTEN = {
    "1001": {
        "info": "润颜补水面霜官方正品 深层补水 持久保湿",
        "all_locs": ["0.1_0.1_0.4_0.3", "0.5_0.5_0.9_0.7", "0.05_0.8_0.25_0.95"],
        "ocr_locs": ["0.1_0.1_0.4_0.3", "0.5_0.5_0.9_0.7"],
        "ocr_txts": ["深层补水", "持久保湿"],
        "ocr_colors": [[20, 20, 20], [200, 30, 45]],
        "url": "https://example.invalid/1001.jpg",
    }
}
# Its twin with integer pixel boxes on a 200 x 100 image.
PIXEL_TWIN = {
    "1001": {
        **HAND_WRITTEN["1001"],
        "all_locs": ["20_10_80_30", "100_50_180_70", "10_80_50_95"],
        "ocr_locs": ["20_10_80_30", "100_50_180_70"],
    }
}


def write_folder(root, data, names=("1001",), image_size=(WIDTH, HEIGHT)):
    root.mkdir(parents=True, exist_ok=True)
    (root / "ref_captions.json").write_text(json.dumps(data), "utf-8")  # \u escapes: any id survives
    np.save(root / "trn_names.npy", np.array(list(names)))  # a plain unicode array, as released
    (root / "images").mkdir(exist_ok=True)
    for image_id in data:
        if "\x00" in image_id or "\ud800" in image_id:
            continue  # no file can have this name
        Image.new("RGB", image_size, (200, 200, 200)).save(root / "images" / f"{image_id}.png")
    return root


def test_hand_written_release_record_loads(tmp_path):
    result = read_release(write_folder(tmp_path / "ds", HAND_WRITTEN), "train", strict=True)
    (record,) = result.records
    assert record.image_id == "1001"
    assert record.caption_boxes == (Box(0.1, 0.1, 0.4, 0.3), Box(0.5, 0.5, 0.9, 0.7))
    assert record.all_boxes[2] == Box(0.05, 0.8, 0.25, 0.95)
    assert record.captions == ("深层补水", "持久保湿")
    assert record.colors == ((20, 20, 20), (200, 30, 45))
    assert record.url.endswith("1001.jpg")


def test_pixel_twin_loads_to_the_same_boxes(tmp_path):
    fractions = read_release(write_folder(tmp_path / "a", HAND_WRITTEN), "train", strict=True).records[0]
    pixels = read_release(write_folder(tmp_path / "b", PIXEL_TWIN), "train", strict=True).records[0]
    # Each pixel value divided by the size is the correctly rounded fraction: equal, not just close.
    assert pixels.all_boxes == fractions.all_boxes
    assert pixels.caption_boxes == fractions.caption_boxes


def test_write_then_read_is_exact(tmp_path):
    records = [
        ImageRecord(
            "a",
            "信息 一",
            (Box(0.1, 0.2, 0.3, 0.4), Box(1 / 3, 0.5, 0.7, 0.6)),
            (Box(1 / 3, 0.5, 0.7, 0.6),),
            ("补水",),
            colors=((1, 2, 3),),
        ),
        ImageRecord(
            "b", "info two", (Box(0.0, 0.0, 1.0, 1.0),), (Box(0.0, 0.0, 1.0, 1.0),), ("x y",), url="http://x.invalid/b"
        ),
    ]
    for record in records:
        save_image(tmp_path, record.image_id, Image.new("RGB", (64, 64)))
    write_release(tmp_path, records, {"train": ["a"], "val": ["b"], "test": []})
    assert read_release(tmp_path, strict=True).records == records
    assert read_release(tmp_path, "val", strict=True).records == [records[1]]
    assert read_release(tmp_path, "test", strict=True).records == []


def test_names_files_are_unicode_and_pickle_free(tmp_path):
    write_names(tmp_path / "n.npy", ["1001", "图片2"])
    array = np.load(tmp_path / "n.npy", allow_pickle=False)
    assert array.dtype.kind == "U" and read_names(tmp_path / "n.npy") == ["1001", "图片2"]
    np.save(tmp_path / "obj.npy", np.array(["1001", None], dtype=object), allow_pickle=True)
    with pytest.raises(DatasetFormatError, match="loads without pickle"):
        read_names(tmp_path / "obj.npy")


def good():
    return json.loads(json.dumps(HAND_WRITTEN["1001"]))


def bad_cases():
    """(name, record value, expected field, expected reason) for every rejection reason of one record."""
    cases = []
    v = good()
    del v["ocr_txts"]
    cases.append(("missing key", v, "ocr_txts", "missing_key"))  # noqa: E702
    v = good()
    v["info"] = 5
    cases.append(("info not str", v, "info", "bad_type"))  # noqa: E702
    v = good()
    v["ocr_txts"] = ["only one"]
    cases.append(("txts", v, "ocr_txts", "length_mismatch"))  # noqa: E702
    v = good()
    v["ocr_colors"] = [[0, 0, 0]]
    cases.append(("colors", v, "ocr_colors", "length_mismatch"))  # noqa: E702
    v = good()
    v["ocr_locs"][1] = "0.9_0.5_0.5_0.7"
    cases.append(("x2<x1", v, "ocr_locs[1]", "bad_box"))  # noqa: E702
    v = good()
    v["all_locs"][2] = "0.1_0.2"
    cases.append(("short box", v, "all_locs[2]", "bad_box"))  # noqa: E702
    v = good()
    v["ocr_txts"][0] = " "
    cases.append(("blank caption", v, "ocr_txts[0]", "bad_caption"))  # noqa: E702
    v = good()
    v.update(ocr_locs=[], ocr_txts=[], ocr_colors=[])
    cases.append(("empty", v, "ocr_locs", "no_captions"))  # noqa: E501,E702
    return cases


@pytest.mark.parametrize("name,value,field,reason", bad_cases(), ids=[c[0] for c in bad_cases()])
def test_each_record_rejection_names_field_and_reason(tmp_path, name, value, field, reason):
    data = {"1001": value, "1002": good()}
    root = write_folder(tmp_path / "ds", data, names=("1001", "1002"))
    result = read_release(root, "train")
    assert [r.image_id for r in result.records] == ["1002"]  # the good record is not lost
    (rejection,) = result.rejections
    assert (rejection.image_id, rejection.field, rejection.reason) == ("1001", field, reason)
    with pytest.raises(DatasetError) as err:
        read_release(root, "train", strict=True)
    assert str(err.value).startswith(f"image '1001', field '{field}': {reason}")


def test_image_rejections_missing_corrupt_unsafe_and_unlisted(tmp_path):
    data = {"ok": good(), "gone": good(), "broken": good(), "../escape": good(), "nul\x00id": good(), "x\ud800": good()}
    names = ("ok", "gone", "broken", "../escape", "not_there", "nul\x00id", "x\ud800")
    root = write_folder(tmp_path / "ds", data, names=names)
    (root / "images" / "gone.png").unlink()
    (root / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    Image.new("RGB", (10, 10)).save(tmp_path / "escape.png")  # exists, but outside the images root
    result = read_release(root, "train")
    assert [r.image_id for r in result.records] == ["ok"]
    reasons = {r.image_id: (r.field, r.reason) for r in result.rejections}
    assert reasons == {
        "gone": ("image", "missing_image"),
        "broken": ("image", "corrupt_image"),
        "../escape": ("image_id", "unsafe_id"),  # one id check, before any path is made of it
        "nul\x00id": ("image_id", "unsafe_id"),
        "x\ud800": ("image_id", "unsafe_id"),
        "not_there": ("ref_captions.json", "missing_record"),
    }
    assert result.rejection_counts() == {"corrupt_image": 1, "missing_image": 1, "missing_record": 1, "unsafe_id": 3}


def test_pixel_boxes_without_images_are_rejected_not_misread(tmp_path):
    root = write_folder(tmp_path / "ds", PIXEL_TWIN)
    (rejection,) = read_release(root, "train", check_images=False).rejections
    assert rejection.reason == "bad_box" and "pixels" in rejection.detail


def test_images_under_another_root(tmp_path):
    root = write_folder(tmp_path / "ds", HAND_WRITTEN)
    shutil.move(root / "images", tmp_path / "elsewhere")
    assert read_release(root, "train").rejections[0].reason == "missing_image"
    assert len(read_release(root, "train", images_root=tmp_path / "elsewhere").records) == 1


def test_folder_level_errors(tmp_path):
    with pytest.raises(DatasetFormatError, match="ref_captions.json is missing"):
        read_release(tmp_path)
    (tmp_path / "ref_captions.json").write_text("{not json", "utf-8")
    with pytest.raises(DatasetFormatError, match="not valid UTF-8 JSON"):
        read_release(tmp_path)
    (tmp_path / "ref_captions.json").write_text("{}", "utf-8")
    with pytest.raises(DatasetFormatError, match="no val_names.npy"):
        read_release(tmp_path, "val")


def test_an_id_listed_twice_is_read_once_and_flagged(tmp_path):
    root = write_folder(tmp_path / "ds", {"a": good(), "b": good()}, names=("a", "b", "a", "a"))
    result = read_release(root, "train")
    assert [r.image_id for r in result.records] == ["a", "b"]
    assert [(r.image_id, r.field, r.reason) for r in result.rejections] == [
        ("a", "split file", "duplicate_id"),
        ("a", "split file", "duplicate_id"),
    ]
    with pytest.raises(DatasetError, match="image 'a', field 'split file': duplicate_id"):
        read_release(root, "train", strict=True)
    assert first_listings(["x", "y", "x", "z", "y"]) == (["x", "y", "z"], ["x", "y"])


def test_a_bad_record_counts_once_however_many_epochs_read_it():
    tally = RejectionTally()
    for _ in range(3):  # three epochs over the same two bad records
        tally.add("missing_image", "image 'a', field 'image': missing_image")
        tally.add("corrupt_image", "image 'b', field 'image': corrupt_image")
    report = tally.report()
    assert report["counts"] == {"missing_image": 1, "corrupt_image": 1} and len(report["examples"]) == 2
