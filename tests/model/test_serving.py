"""Captioning without Ray: requests, the pyfunc model through MLflow, and flows/caption.py on one image."""

import io
import json
import runpy
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy
import pandas as pd
import pytest
import torch
from PIL import Image

from components.config import load_job_config
from components.data.prepare import with_vocabulary
from components.data.record.boxes import Box
from components.data.release.table import read_split
from components.data.transforms.masking import box_pixel_bounds
from components.data.transforms.requests import (
    RequestError,
    dataset_request,
    encode_requests,
    file_request,
    request_record,
)
from components.errors import ConfigError
from components.model import build_model
from components.model.checkpoint import load_checkpoint, save_checkpoint
from components.model.inference import Captioner
from components.serving.captioning import load_captioning_model
from components.tracking.pyfunc import CapOnImageModel, example_request, log_pyfunc
from components.tracking.runs import TrackedRun
from components.tracking.sources import ModelSource

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def checkpoint(tiny_dataset, tmp_path_factory):
    """A tiny untrained model saved as a training checkpoint (weights, config, vocabulary)."""
    root, _, tokenizer = tiny_dataset
    job = with_vocabulary(load_job_config("tiny"), tokenizer)
    torch.manual_seed(0)
    model = build_model(job.model)
    folder = tmp_path_factory.mktemp("checkpoint")
    save_checkpoint(folder, model.state_dict(), {"step": 0}, job.as_dict(), tokenizer)
    return folder


@pytest.fixture(scope="module")
def requests(tiny_dataset):
    root, _, _ = tiny_dataset
    return [dataset_request(str(root / "images"), r["image_id"], r["record"]) for r in read_split(str(root), "val", 3)]


def frame(requests):
    return pd.DataFrame({k: [r[k] for r in requests] for k in ("image", "info", "boxes", "mask_boxes")})


def test_request_record_normalises_pixels_and_names_bad_fields():
    record = request_record("r1", "info", ["10_20_110_60"], [[0, 0, 50, 10]], (200, 100))
    assert record.caption_boxes[0] == (0.05, 0.2, 0.55, 0.6) and record.captions == ("",)
    assert record.mask_boxes[0] == (0.0, 0.0, 0.25, 0.1) and len(record.mask_boxes) == 2  # caption box masked too
    with pytest.raises(RequestError, match="'boxes\\[1\\]': bad_box") as raised:
        request_record("r1", "info", ["0.1_0.1_0.2_0.2", "0.5_0.5_0.4_0.9"], [], (100, 100))
    assert raised.value.image_id == "r1"
    with pytest.raises(RequestError, match="no_captions"):
        request_record("r1", "info", [], [], (100, 100))
    with pytest.raises(RequestError, match="'info': bad_type"):
        request_record("r1", None, ["0.1_0.1_0.2_0.2"], [], (100, 100))


def test_encoded_requests_match_the_model_spec(requests, checkpoint):
    model = CapOnImageModel.from_checkpoint(checkpoint)
    rows, records = encode_requests(requests, model.captioner.tokenizer, model.captioner.spec)
    side = 32 * model.captioner.config.grid
    assert rows["image"].shape == (3, 3, side, side)
    assert rows["n_boxes"].tolist() == [len(r["boxes"]) for r in requests]
    assert [r.image_id for r in records] == [r["id"] for r in requests]


def use_store(folder: Path) -> str:
    """A fresh sqlite tracking store whose artifacts stay in ``folder`` (not ./mlruns)."""
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("serving-test", str(folder / "artifacts")))
    return uri


def test_pyfunc_model_round_trip_one_caption_per_box(requests, checkpoint, tmp_path):
    use_store(tmp_path)
    example = example_request(requests[0]["image"], requests[0]["info"], requests[0]["boxes"])
    with mlflow.start_run() as active:
        info = log_pyfunc(TrackedRun(mlflow.get_tracking_uri(), active.info.run_id), checkpoint, example)
    assert {"image", "info", "boxes", "mask_boxes"} == set(info.signature.inputs.input_names())
    assert info.signature.params.to_dict()[0]["name"] == "beam_size"
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    greedy = loaded.predict(frame(requests))
    beam = loaded.predict(frame(requests), params={"beam_size": 2})
    assert [len(c) for c in greedy["captions"]] == [len(r["boxes"]) for r in requests]
    assert [len(c) for c in beam["captions"]] == [len(r["boxes"]) for r in requests]
    local = CapOnImageModel.from_checkpoint(checkpoint).predict(None, frame(requests))
    assert [list(c) for c in local["captions"]] == [list(c) for c in greedy["captions"]]  # same decoding
    folder = Path(ModelSource.parse(info.model_uri).checkpoint_folder(mlflow.get_tracking_uri()))
    assert (folder / "model.pt").is_file() and not (folder / "training.pt").exists()
    mlflow.set_tracking_uri(None)


FRESH_PROCESS = """
import json, sys
import mlflow, pandas as pd
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(sys.argv[2])
import components
captions = model.predict(pd.read_pickle(sys.argv[3]))["captions"]
print(json.dumps({"code": components.__file__, "captions": [list(c) for c in captions]}))
"""


def test_a_logged_pyfunc_model_loads_in_a_fresh_process(requests, checkpoint, tmp_path):
    """What a serving host does: a new interpreter, no project code imported, the model from the store."""
    uri = use_store(tmp_path)
    example = example_request(requests[0]["image"], requests[0]["info"], requests[0]["boxes"])
    with mlflow.start_run() as active:
        info = log_pyfunc(TrackedRun(uri, active.info.run_id), checkpoint, example)
    mlflow.set_tracking_uri(None)
    frame(requests).to_pickle(tmp_path / "frame.pkl")  # our own test data, read back by the child
    (tmp_path / "serve.py").write_text(FRESH_PROCESS, "utf-8")
    done = subprocess.run(
        [sys.executable, "serve.py", uri, info.model_uri, "frame.pkl"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads(done.stdout.strip().splitlines()[-1])
    local = CapOnImageModel.from_checkpoint(checkpoint).predict(None, frame(requests))
    assert served["captions"] == [list(c) for c in local["captions"]]
    assert str(REPO) not in served["code"]  # the model's own copy of the code, not this checkout


def test_each_bad_row_is_answered_with_its_error_and_the_others_are_captioned(requests, checkpoint):
    """One frame: good rows between rows that cannot be captioned. Each bad row gets its field and
    reason in ``error`` and no captions; the good rows get what they get alone."""
    model = CapOnImageModel.from_checkpoint(checkpoint)
    good = frame(requests[:2])
    bad_rows = [
        ({"image": b"not an image"}, "'row 1', field 'image': corrupt_image"),
        ({"boxes": [["a", "b", "c", "d"]]}, "field 'boxes[0]': bad_box"),
        ({"boxes": "0.1_0.1_0.2_0.2"}, "field 'boxes': bad_type"),
        ({"boxes": ["0.1_0.1_0.2_0.2"] * 40}, "field 'boxes': too_many_boxes"),
        ({"id": "p\ud800"}, "field 'id': unsafe_id"),
        ({"image": None}, "field 'image': missing_key"),
    ]
    rows = [good.iloc[0].to_dict()]
    for change, _ in bad_rows:
        rows.append({**good.iloc[1].to_dict(), **change})
    rows.append(good.iloc[1].to_dict())
    answered = model.predict(None, pd.DataFrame(rows, dtype=object))  # object: pandas' strings refuse "\ud800"
    alone = model.predict(None, good)
    assert len(answered) == len(rows)
    assert [list(c) for c in answered["captions"].iloc[[0, -1]]] == [list(c) for c in alone["captions"]]
    assert list(answered["error"].iloc[[0, -1]]) == ["", ""]
    for number, (_, message) in enumerate(bad_rows, 1):
        assert message in answered["error"][number] and list(answered["captions"][number]) == []


def test_requests_file_lines_are_checked(tiny_dataset, tmp_path):
    root, _, _ = tiny_dataset
    image = next((root / "images").iterdir())
    (tmp_path / "a.png").write_bytes(image.read_bytes())
    good = file_request(str(tmp_path), 1, json.dumps({"image": "a.png", "boxes": [[0.1, 0.1, 0.3, 0.2]], "info": "x"}))
    assert good["boxes"] == ["0.1_0.1_0.3_0.2"] and good["id"] == "a.png"
    for line, reason in [
        ('{"image": "../a.png", "boxes": ["0.1_0.1_0.2_0.2"], "info": "x"}', "unsafe_path"),
        ('{"image": "b.png", "boxes": ["0.1_0.1_0.2_0.2"], "info": "x"}', "missing_image"),
        ('{"image": "a.png", "boxes": ["0.1_0.1"], "info": "x"}', "bad_box"),
        ('{"image": "a.png", "info": "x"}', "missing_key"),
        ("[1, 2]", "bad_type"),
        ('{"image": ".", "boxes": ["0.1_0.1_0.2_0.2"], "info": "x", "id": "sku-9"}', "missing_image"),  # a folder
        ('{"image": "a\\u0000.png", "boxes": ["0.1_0.1_0.2_0.2"], "info": "x"}', "unsafe_path"),
        (json.dumps({"image": "a.png", "boxes": ["0.1_0.1_0.2_0.2"] * 40, "info": "x"}), "too_many_boxes"),
    ]:
        with pytest.raises(Exception, match=reason):
            file_request(str(tmp_path), 2, line)
    with pytest.raises(Exception, match="request 'sku-9': .* is a folder"):  # named by the request
        file_request(str(tmp_path), 7, '{"image": ".", "boxes": ["0.1_0.1_0.2_0.2"], "info": "x", "id": "sku-9"}')


def test_unknown_model_sources_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="^option '--model': .* not a model URI"):
        load_captioning_model(str(tmp_path / "nowhere"), f"sqlite:///{tmp_path / 'm.db'}")


@pytest.mark.parametrize(("flow", "flag"), [("evaluate", "--model"), ("finetune", "--init-from")])
def test_a_bad_model_flag_is_named_as_typed(flow, flag, tmp_path, capsys):
    from components.cli import run

    main = runpy.run_path(str(REPO / "flows" / f"{flow}.py"))["main"]
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    assert run(main, [flag, "nonexistent", "--set", f"tracking.tracking_uri={uri}"]) == 2
    assert capsys.readouterr().err.startswith(f"error: option '{flag}': nonexistent is not a model URI")


def test_caption_flow_on_one_image_writes_png_and_json(tiny_dataset, checkpoint, tmp_path):
    root, _, _ = tiny_dataset
    first = read_split(str(root), "test", 1)[0]
    record = json.loads(first["record"])
    (tmp_path / "record.json").write_text(json.dumps(record, ensure_ascii=False), "utf-8")
    out = tmp_path / "out"
    command = [sys.executable, "flows/caption.py", "--model", str(checkpoint), "--out", str(out)]
    image = str(root / "images" / f"{first['image_id']}.png")
    done = subprocess.run(
        [*command, "--image", image, "--record", str(tmp_path / "record.json")],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    written = json.loads((out / "captions.json").read_text("utf-8"))
    assert len(written) == 1 and len(written[0]["captions"]) == len(record["ocr_locs"])
    verdicts = written[0]["verdicts"]
    assert [v["caption"] for v in verdicts] == written[0]["captions"]
    assert all(set(v) >= {"passed", "failed", "reasons", "rank", "fit", "read_back"} for v in verdicts)
    assert f"of {len(verdicts)} captions pass every check" in done.stdout
    published = Image.open(out / f"{first['image_id']}_captioned.png").convert("RGB")
    original = Image.open(image).convert("RGB")
    assert published.size == original.size
    for box in record["ocr_locs"]:  # the old text is gone from every caption box: the picture changed there
        x1, y1, x2, y2 = box_pixel_bounds(Box(*map(float, box.split("_"))), *original.size)
        assert published.crop((x1, y1, x2 + 1, y2 + 1)).tobytes() != original.crop((x1, y1, x2 + 1, y2 + 1)).tobytes()
    plain = subprocess.run(
        [*command, "--image", image, "--record", str(tmp_path / "record.json"), "--checks", "", "--candidates", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert "verdicts" not in json.loads((out / "captions.json").read_text("utf-8"))[0]
    missing = subprocess.run([*command, "--image", image], cwd=REPO, capture_output=True, text=True)
    assert missing.returncode == 2 and "config key 'boxes'" in missing.stderr


def test_batch_predictor_rows_agree_with_the_captioner(requests, checkpoint):
    from components.evaluation.predict import CaptionPredictor

    saved = load_checkpoint(checkpoint, with_training_state=False)
    predictor = CaptionPredictor(saved.job["model"], saved.model_state, saved.tokenizer, beam_size=1)
    rows, _ = encode_requests(requests, saved.tokenizer, predictor.captioner.spec)
    out = predictor(rows)
    counts = [len(r["boxes"]) for r in requests]
    assert len(out["prediction"]) == sum(counts) and set(out) == set(CaptionPredictor.COLUMNS)
    assert out["box"].tolist() == [b for n in counts for b in range(n)]
    assert out["image_id"].tolist() == [str(r["id"]) for r, n in zip(requests, counts, strict=True) for _ in range(n)]
    _, captions = predictor.captioner.caption(rows)
    assert out["prediction"].tolist() == [c for per_image in captions for c in per_image]
    assert set(out["reference"].tolist()) == {""}  # requests carry no reference captions
    empty = predictor({k: v[:0] for k, v in rows.items()})
    assert all(len(v) == 0 for v in empty.values())


def test_batch_predictor_chooses_as_the_pyfunc_model_does_from_either_image_source(tiny_dataset, requests, checkpoint):
    """One mechanism: the batch captioner's chosen captions and verdicts equal the pyfunc model's on the
    same requests, whether it reads the stored images from the dataset or from each request's source."""
    from components.config import PublishSection
    from components.evaluation.predict import CaptionPredictor

    root, _, _ = tiny_dataset
    saved = load_checkpoint(checkpoint, with_training_state=False)
    settings = PublishSection(checks=["compliance", "grounding", "fit"], candidates=3)
    by_root = CaptionPredictor(saved.job["model"], saved.model_state, saved.tokenizer, publish=settings,
                               images_root=str(root / "images"))  # fmt: skip
    rows, _ = encode_requests(requests, saved.tokenizer, by_root.captioner.spec)
    out = by_root(rows)
    assert set(out) == {*CaptionPredictor.COLUMNS, "first_prediction", "verdict"}
    verdicts = [json.loads(v) for v in out["verdict"]]
    assert [v["caption"] for v in verdicts] == out["prediction"].tolist()
    _, beam = by_root.captioner.caption(rows, beam_size=3)
    assert out["first_prediction"].tolist() == [c for per_image in beam for c in per_image]
    for verdict, first in zip(verdicts, out["first_prediction"].tolist(), strict=True):
        assert (verdict["caption"] == first) == (verdict["rank"] == 0)
        assert verdict["first_failed"] == verdict["failed"] or (verdict["rank"] > 0 and verdict["passed"])
    params = {"beam_size": 1, "candidates": 3, "checks": "compliance,grounding,fit"}
    pyfunc = CapOnImageModel.from_checkpoint(checkpoint).predict(None, frame(requests), params)
    assert out["prediction"].tolist() == [c for captions in pyfunc["captions"] for c in captions]
    assert out["verdict"].tolist() == [v for per_image in pyfunc["verdicts"] for v in per_image]
    by_source = CaptionPredictor(saved.job["model"], saved.model_state, saved.tokenizer, publish=settings)
    sourced = by_source({**rows, "request_source": numpy.array([r["source"] for r in requests], dtype=object)})
    assert sourced["verdict"].tolist() == out["verdict"].tolist()
    with pytest.raises(ValueError, match="give images_root or a request_source column"):
        by_source(rows)
    empty = by_root({k: v[:0] for k, v in rows.items()})
    assert set(empty) == set(out) and all(len(v) == 0 for v in empty.values())


def test_the_failure_picture_shows_each_failing_caption_as_published(tiny_dataset, requests, checkpoint):
    from components.config import PublishSection
    from components.evaluation.predict import CaptionPredictor
    from components.evaluation.tracked_evaluation import failure_label, publishing_failures

    root, _, _ = tiny_dataset
    saved = load_checkpoint(checkpoint, with_training_state=False)
    settings = PublishSection(checks=["fit"], candidates=1)
    predictor = CaptionPredictor(saved.job["model"], saved.model_state, saved.tokenizer, publish=settings,
                                 images_root=str(root / "images"))  # fmt: skip
    out = predictor(encode_requests(requests, saved.tokenizer, predictor.captioner.spec)[0])
    rows = [{k: out[k][n] for k in out} for n in range(len(out["box"]))]
    for n, row in enumerate(rows):  # two failures, named by hand
        failed = ["grounding"] if n in (0, 3) else []
        row["verdict"] = json.dumps({**json.loads(row["verdict"]), "failed": failed,
                                     "reasons": {"grounding": "not in the info: 500ml"} if failed else {}})  # fmt: skip
    index = read_split(str(root), "val", 3)
    sheet = publishing_failures(rows, index, str(root / "images"), "zh", 0.03)
    assert sheet.size == (720, 28 + 2 * (72 + 8))
    assert failure_label(rows[0]["image_id"], rows[0]).endswith("\ngrounding: not in the info: 500ml")
    assert publishing_failures(rows, index, str(root / "images"), "zh", 0.03, count=1).size == (720, 28 + 80)


def test_candidates_are_ranked_distinct_and_led_by_the_beam_caption(requests, checkpoint):
    captioner = Captioner.from_checkpoint(checkpoint)
    rows, _ = encode_requests(requests, captioner.tokenizer, captioner.spec)
    candidates = captioner.candidates(rows, count=3)
    _, beam = captioner.caption(rows, beam_size=3)
    assert [len(boxes) for boxes in candidates] == [len(r["boxes"]) for r in requests]
    for per_box, captions in zip(candidates, beam, strict=True):
        assert [options[0][0] for options in per_box] == captions
        for options in per_box:
            texts, scores = [t for t, _ in options], [s for _, s in options]
            assert 1 <= len(options) <= 3 and len(set(texts)) == len(texts)
            assert scores == sorted(scores, reverse=True) and all(s <= 0 for s in scores)


def test_pyfunc_chooses_among_candidates_and_returns_verdicts_and_the_published_image(requests, checkpoint):
    from PIL import Image

    model = CapOnImageModel.from_checkpoint(checkpoint)
    plain = model.predict(None, frame(requests), {"beam_size": 3})
    assert set(plain.columns) == {"captions", "error", "verdicts", "rendered"}
    assert all(len(v) == 0 for v in plain["verdicts"]) and set(plain["rendered"]) == {b""}
    params = {"beam_size": 3, "candidates": 3, "checks": "compliance,grounding,fit,read_back", "render": True}
    published = model.predict(None, frame(requests), params)
    for request, captions, verdicts, png, first in zip(
        requests, published["captions"], published["verdicts"], published["rendered"], plain["captions"], strict=True
    ):
        judged = [json.loads(v) for v in verdicts]
        assert len(judged) == len(captions) == len(request["boxes"])
        assert [j["caption"] for j in judged] == list(captions)
        for j, beam_caption in zip(judged, first, strict=True):
            assert set(j) >= {"caption", "log_prob", "rank", "passed", "failed", "reasons", "fit", "read_back"}
            assert j["passed"] == (not j["failed"]) and 0 <= j["rank"] < 3
            if j["rank"] == 0:
                assert j["caption"] == beam_caption  # the most likely, passing or with its failures named
            else:
                assert j["passed"]  # a lower candidate is chosen only when it passes every check
        image = Image.open(io.BytesIO(png))
        assert image.size == Image.open(io.BytesIO(request["image"])).size


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"candidates": 0}, "parameter candidates: must be from 1 to 16"),
        ({"checks": "fit,spelling"}, "parameter checks: unknown \\['spelling'\\]"),
        ({"checks": "read_back"}, "read_back needs fit"),
        ({"render": "yes"}, "parameter render: expected true or false"),
        ({"forbid_banned": 1}, "parameter forbid_banned: expected true or false"),
    ],
)
def test_bad_publishing_params_are_refused_naming_the_parameter(requests, checkpoint, params, message):
    with pytest.raises(ValueError, match=message):
        CapOnImageModel.from_checkpoint(checkpoint).predict(None, frame(requests), params)


def test_a_folder_that_is_not_a_checkpoint_or_a_pickled_one_is_refused_in_one_line(tiny_dataset, checkpoint, tmp_path):
    import shutil

    from components.errors import CheckpointRefused

    with pytest.raises(CheckpointRefused, match="holds no model.pt and no config.json: not a CapOnImage checkpoint"):
        load_checkpoint(tmp_path)
    evil = tmp_path / "evil"
    shutil.copytree(checkpoint, evil)
    marker = tmp_path / "was-unpickled"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))  # what an unpickled file could do: run anything

    torch.save({"weight": Payload()}, evil / "model.pt")
    with pytest.raises(CheckpointRefused, match="model.pt was refused: it holds more than tensors"):
        load_checkpoint(evil)
    assert not marker.exists()
    root, _, _ = tiny_dataset
    first = read_split(str(root), "test", 1)[0]
    (tmp_path / "record.json").write_text(first["record"], "utf-8")
    image = str(root / "images" / f"{first['image_id']}.png")
    for model, reason in ((tmp_path, "not a CapOnImage checkpoint"), (evil, "was refused")):
        done = subprocess.run(
            [
                sys.executable,
                "flows/caption.py",
                "--model",
                str(model),
                "--image",
                image,
                "--record",
                str(tmp_path / "record.json"),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith("error: ")
        assert reason in done.stderr and "Traceback" not in done.stderr
    assert not marker.exists()


def test_one_bad_image_request_is_one_error_line_and_an_exit_code(checkpoint, tmp_path, capsys):
    """Single-image mode: a folder, an unnameable path, more boxes than the model takes: one
    ``error:`` line and an exit code, checked before the model loads."""
    from PIL import Image

    from components.cli import run

    Image.new("RGB", (64, 48), "white").save(tmp_path / "a.png")
    one, many = tmp_path / "one.json", tmp_path / "many.json"
    one.write_text(json.dumps({"boxes": ["0.1_0.1_0.3_0.2"], "info": "x"}))
    many.write_text(json.dumps({"boxes": ["0.1_0.1_0.3_0.2"] * 40, "info": "x"}))
    main = runpy.run_path(str(REPO / "flows" / "caption.py"))["main"]
    for image, boxes, code, message in [
        (
            tmp_path / "a.png",
            many,
            3,
            "error: image 'a', field 'boxes': too_many_boxes: 40 boxes; the model takes at most 32",
        ),
        (tmp_path, one, 2, f"error: option '--image': {tmp_path} is a folder, not a file"),
        (f"{tmp_path}/a\x00.png", one, 2, "error: option '--image': "),
        (f"{tmp_path}/a\ud800.png", one, 2, "error: option '--image': "),
        (tmp_path / "a.png", tmp_path, 2, f"error: option '--boxes': {tmp_path} is a folder, not a file"),
    ]:
        argv = [
            "--model",
            str(checkpoint),
            "--image",
            str(image),
            "--boxes",
            str(boxes),
            "--out",
            str(tmp_path / "out"),
        ]
        assert run(main, argv) == code
        printed = capsys.readouterr().err.strip().splitlines()
        assert len(printed) == 1 and printed[0].startswith(message), printed
    assert not (tmp_path / "out").exists()  # nothing was captioned


@pytest.mark.parametrize(
    ("beam", "message"),
    [
        (-3, "from 1 (greedy) to 16 (got -3)"),
        (0, "got 0"),
        (17, "got 17"),
        (2.5, "whole number"),
        ("3", "whole number"),
    ],
)
def test_a_beam_size_out_of_range_is_refused_naming_the_parameter(requests, checkpoint, beam, message):
    model = CapOnImageModel.from_checkpoint(checkpoint)
    with pytest.raises(ValueError, match="parameter beam_size") as err:
        model.predict(None, frame(requests[:1]), params={"beam_size": beam})
    assert message in str(err.value)
    wide = model.predict(None, frame(requests[:1]), params={"beam_size": numpy.int64(2)})  # as MLflow may pass it
    assert len(wide["captions"][0]) == len(requests[0]["boxes"])


@pytest.mark.parametrize("seed", range(2))
def test_pyfunc_rows_fuzzed_each_bad_one_answered_every_good_one_captioned(requests, checkpoint, seed):
    """A seeded mix of good rows and broken ones (image, boxes, info, id): no exception escapes
    ``predict``, each broken row names its reason, each good row is captioned as it is alone."""
    import random

    rng = random.Random(seed)
    model = CapOnImageModel.from_checkpoint(checkpoint)
    good = frame(requests[:1]).iloc[0].to_dict()
    breaks = [
        ({"image": b"\x89PNG\r\n\x1a\n" + bytes(rng.randrange(256) for _ in range(64))}, "corrupt_image"),
        ({"image": "a.png"}, "bad_type"),
        ({"boxes": [rng.choice(["0.1_0.1", "x_y_z_w", [[1], 2, 3, 4], [0.5, 0.5, 0.1, 0.1]])]}, "bad_box"),
        ({"boxes": []}, "no_captions"),
        ({"boxes": ["0.1_0.1_0.2_0.2"] * rng.randrange(33, 100)}, "too_many_boxes"),
        ({"info": rng.choice([3, ["x"], {"a": 1}])}, "bad_type"),
        ({"id": rng.choice(["", "a\x00", "p\n", "../x", "x" * 300])}, "unsafe_id"),
        ({"mask_boxes": 5}, "bad_type"),
    ]
    rows, expected = [], []
    for _ in range(14):
        if rng.random() < 0.4:
            rows.append(dict(good))
            expected.append(None)
        else:
            change, reason = rng.choice(breaks)
            rows.append({**good, **change})
            expected.append(reason)
    answered = model.predict(None, pd.DataFrame(rows, dtype=object))
    alone = list(model.predict(None, frame(requests[:1]))["captions"][0])
    for number, reason in enumerate(expected):
        if reason is None:
            assert answered["error"][number] == "" and list(answered["captions"][number]) == alone
        else:
            assert reason in answered["error"][number] and list(answered["captions"][number]) == []
