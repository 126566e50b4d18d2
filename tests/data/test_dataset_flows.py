"""The dataset flows as a user runs them: real processes, real exit codes and messages."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


def flow(name: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "flows" / name), *map(str, args)], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    out = tmp_path_factory.mktemp("made") / "ds"
    result = flow("make_dataset.py", "--out", out, "--images", 40, "--seed", 1, "--preview", "--workers", 2)
    assert result.returncode == 0, result.stderr
    return out, result.stdout


def test_make_dataset_writes_release_format_and_summary(made):
    out, stdout = made
    for name in (
        "ref_captions.json",
        "trn_names.npy",
        "val_names.npy",
        "tst_names.npy",
        "word2int.json",
        "int2word.json",
        "preview.png",
        "table/_delta_log/00000000000000000000.json",  # the table a flow reads, imported from them
    ):
        assert (out / name).is_file(), name
    assert len(list((out / "images").glob("*.png"))) == 40
    lines = {line.split()[0]: line.split() for line in stdout.splitlines() if line.split()}
    assert lines["train"][1] == "32" and lines["val"][1] == "4" and lines["test"][1] == "4"
    assert 4.0 <= float(lines["train"][3]) <= 7.0  # captions per image
    assert Image.open(out / "preview.png").size[0] >= 4 * 256


def test_make_dataset_refuses_to_overwrite(made):
    out, _ = made
    result = flow("make_dataset.py", "--out", out, "--images", 5)
    assert result.returncode == 2
    assert "config key 'out'" in result.stderr and "--overwrite" in result.stderr


def test_make_dataset_config_error_before_work(tmp_path):
    result = flow("make_dataset.py", "--out", tmp_path / "x", "--images", 0)
    assert result.returncode == 2 and "images must be at least 1" in result.stderr
    assert not (tmp_path / "x").exists()


def test_crawl_form_partition(tmp_path):
    result = flow(
        "make_dataset.py",
        "--out",
        tmp_path,
        "--images",
        6,
        "--crawl-form",
        "--crawl-date",
        "2026-11-20",
        "--workers",
        1,
    )
    assert result.returncode == 0, result.stderr
    part = tmp_path / "crawl_date=2026-11-20"
    rows = [json.loads(line) for line in (part / "products.jsonl").read_text("utf-8").splitlines()]
    assert len(rows) == 6 and set(rows[0]) == {"product_id", "title", "attributes", "image"}
    assert all((part / row["image"]).is_file() for row in rows)
    assert not (part / "ref_captions.json").exists()  # boxes come from OCR at ingest, not from the crawl
    assert (part / "_SUCCESS").is_file() and not list(part.glob(".*.tmp"))  # complete, nothing half-written
    for row in rows:  # crawled images are larger than the release's short side 256
        with Image.open(part / row["image"]) as image:
            assert min(image.size) in (512, 640, 768)


def test_check_dataset_clean(made):
    out, make_stdout = made
    result = flow("check_dataset.py", out)
    assert result.returncode == 0, result.stderr
    assert "rejected: 0" in result.stdout
    # the same Table 1 rows as make_dataset printed
    table = lambda text: [line for line in text.splitlines() if line.startswith(("train", "val", "test"))]  # noqa: E731
    assert table(result.stdout) == table(make_stdout)


@pytest.fixture
def damaged(made, tmp_path):
    out, _ = made
    copy = tmp_path / "damaged"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("table"))  # a release download: no table yet
    data = json.loads((copy / "ref_captions.json").read_text("utf-8"))
    first, second = list(data)[:2]
    data[first]["ocr_locs"][0] = "0.9_0.1_0.2_0.3"
    (copy / "images" / f"{second}.png").unlink()
    (copy / "ref_captions.json").write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    return copy, first, second


def test_check_dataset_counts_rejections_by_reason(damaged):
    copy, first, second = damaged
    result = flow("check_dataset.py", copy)
    assert result.returncode == 0, result.stderr
    assert "rejected: 2" in result.stdout
    assert "bad_box" in result.stdout and "missing_image" in result.stdout
    assert f"image '{first}', field 'ocr_locs[0]': bad_box" in result.stdout


def test_check_dataset_strict_names_image_and_field(damaged):
    copy, first, second = damaged
    result = flow("check_dataset.py", copy, "--strict")
    assert result.returncode == 3
    order = [str(n) for name in ("trn", "val", "tst") for n in np.load(copy / f"{name}_names.npy")]
    expected = {
        first: f"error: image '{first}', field 'ocr_locs[0]': bad_box",
        second: f"error: image '{second}', field 'image': missing_image",
    }[min((first, second), key=order.index)]
    assert result.stderr.strip().splitlines()[-1].startswith(expected), result.stderr  # after Ray's own lines


def test_check_dataset_nothing_usable(tmp_path):
    (tmp_path / "ref_captions.json").write_text(json.dumps({"a": {"info": "x"}}), "utf-8")
    result = flow("check_dataset.py", tmp_path)
    assert result.returncode == 1
    assert "missing_key" in result.stdout and "no usable record" in result.stderr


def test_check_dataset_not_a_dataset(tmp_path):
    result = flow("check_dataset.py", tmp_path)
    assert result.returncode == 3 and "no table and no ref_captions.json to import" in result.stderr


def test_overwrite_replaces_the_dataset_and_its_images(tmp_path):
    out = tmp_path / "ds"
    assert flow("make_dataset.py", "--out", out, "--images", 6, "--workers", 1).returncode == 0
    (out / "notes.txt").write_text("mine")
    result = flow("make_dataset.py", "--out", out, "--images", 3, "--seed", 2, "--overwrite", "--workers", 1)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (out / "images").iterdir()) == [f"s2-{i:07d}.png" for i in range(3)]
    assert len(json.loads((out / "ref_captions.json").read_text("utf-8"))) == 3
    assert (out / "notes.txt").read_text() == "mine"  # only the dataset's own files are replaced
