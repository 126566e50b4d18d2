"""The online service's requests and answers without Ray: every bad field named, batches grouped by
their parameters and answered in order, the Serve config checked by Serve's own schema."""

import base64
import io
import json
from pathlib import Path

import numpy
import pandas as pd
import pytest
import yaml
from PIL import Image

from components.errors import ConfigError
from components.serving.api import BadRequest, answer, checked_query, query_from_form, query_from_json
from components.serving.follower import Loaded

ROOT = Path(__file__).resolve().parents[2]


def png(width=200, height=100) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 180, 160)).save(out, "PNG")
    return out.getvalue()


def body(**changes):
    request = {"image": base64.b64encode(png()).decode(), "info": "保温杯 316不锈钢", "boxes": ["10_10_100_40"]}
    return {**request, **changes}


def test_a_good_request_becomes_one_model_row_with_pixel_and_list_boxes():
    query = query_from_json(body(boxes=["10_10_100_40", [0.5, 0.5, 0.9, 0.9]], id="shoot-1/a"), {"candidates": 2})
    assert query.id == "shoot-1/a" and query.boxes[0] == "10_10_100_40" and len(query.boxes) == 2
    assert dict(query.params) == {"candidates": 2} and not query.render
    assert query.row()["image"] == png() and query.row()["mask_boxes"] == [] and "id" not in query.row()
    data_url = "data:image/png;base64," + base64.b64encode(png()).decode()  # as the page sends it
    assert query_from_json(body(image=data_url, params={"render": True})).render
    assert query_from_json(body()).id.startswith("request-")


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"image": "not base64!"}, "image", "not base64"),
        ({"image": base64.b64encode(b"GIF89a....").decode()}, "image", "corrupt_image"),
        ({"image": 7}, "image", "expected base64 text"),
        ({"info": None}, "info", "missing"),
        ({"info": 3}, "info", "bad_type"),
        ({"boxes": "10_10_100_40"}, "boxes", "expected a list of boxes"),
        ({"boxes": []}, "boxes", "no_captions"),
        ({"boxes": ["10_10_100_40", "50_50_20_90"]}, "boxes[1]", "bad_box"),
        ({"boxes": [[1, 2, 3]]}, "boxes[0]", "bad_box"),
        ({"mask_boxes": ["1_2_x_4"]}, "mask_boxes[0]", "bad_box"),
        ({"params": {"beam_size": 99}}, "params.beam_size", "must be from 1"),
        ({"params": {"checks": "spelling"}}, "params.checks", "unknown ['spelling']"),
        ({"params": {"temperature": 2}}, "params.temperature", "unknown parameter"),
        ({"params": []}, "params", "expected an object"),
        ({"id": "../../etc/passwd"}, "id", "unsafe_id"),
        ({"colour": "red"}, "colour", "unknown field"),
    ],
)
def test_each_bad_field_is_named(changes, field, message):
    with pytest.raises(BadRequest) as raised:
        query_from_json(body(**changes))
    assert raised.value.field == field and message in raised.value.message
    assert raised.value.body() == {"error": raised.value.message, "field": field}


def test_a_missing_image_and_a_body_that_is_not_an_object_are_named():
    with pytest.raises(BadRequest, match="image: missing"):
        query_from_json({"info": "x", "boxes": ["1_1_5_5"]})
    with pytest.raises(BadRequest, match="body: expected a JSON object, got list"):
        query_from_json([1, 2])


def test_a_form_takes_pasted_boxes_a_line_each_or_as_json():
    pasted = query_from_form({"info": "杯", "boxes": "10_10_100_40\n\n 20_50_150_90 \n"}, png())
    as_json = query_from_form({"info": "杯", "boxes": '["10_10_100_40", [20, 50, 150, 90]]'}, png())
    assert pasted.boxes == ("10_10_100_40", "20_50_150_90") and len(as_json.boxes) == 2
    with pytest.raises(BadRequest, match="params: not JSON"):
        query_from_form({"info": "杯", "boxes": "10_10_100_40", "params": "{beam: 2"}, png())
    with pytest.raises(BadRequest, match="image: 20971521 bytes"):
        checked_query(None, b"x" * (20 * 1024 * 1024 + 1), "杯", ["1_1_5_5"], [], {})


class RecordingModel:
    """Stands in for the pyfunc model: one caption per box naming the call, an error for one id."""

    def __init__(self):
        self.calls = []

    def predict(self, frame: pd.DataFrame, params=None) -> pd.DataFrame:
        self.calls.append((list(frame["info"]), params))
        call = len(self.calls)
        captions = [[f"call{call}-{i}" for i in range(len(b))] for b in frame["boxes"]]
        errors = ["row 1, field 'image': undecodable" if i == "bad" else "" for i in frame["info"]]
        rendered = [b"\x89PNG" for _ in captions]
        return pd.DataFrame(
            {"captions": captions, "error": errors, "verdicts": [[]] * len(captions), "rendered": rendered}
        )


def test_a_batch_is_one_predict_per_parameter_set_answered_in_order():
    from components.serving.online import caption_queries

    plain, rendered = {}, {"render": True}
    queries = [query_from_json(body(id=name, info=name, params=p)) for name, p in
               (("a", plain), ("b", rendered), ("c", plain), ("bad", rendered))]  # fmt: skip
    model = RecordingModel()
    results = caption_queries(Loaded("7", model, 0.0), "caponimage", queries)
    assert model.calls == [(["a", "c"], {}), (["b", "bad"], {"render": True})]
    assert [r["id"] for r in results[:3]] == ["a", "b", "c"] and results[0]["captions"] == ["call1-0"]
    assert results[1]["captions"] == ["call2-0"] and results[1]["model_version"] == "7"
    assert base64.b64decode(results[1]["rendered_png"]) == b"\x89PNG" and "rendered_png" not in results[0]
    assert isinstance(results[3], BadRequest) and "undecodable" in results[3].message


def test_an_answer_holds_each_boxs_verdict_as_json():
    query = query_from_json(body(boxes=["10_10_100_40", "20_50_150_90"]))
    verdict = {"caption": "大容量", "passed": False, "failed": ["fit"], "reasons": {"fit": "too_long"}}
    output = {"captions": ["大容量", "保温"], "verdicts": [json.dumps(verdict), json.dumps(verdict)], "rendered": b""}
    result = answer(query, output, "caponimage", "3")
    assert result["verdicts"][0]["reasons"] == {"fit": "too_long"} and result["model_version"] == "3"
    as_array = answer(query, {**output, "verdicts": numpy.array(output["verdicts"])}, "caponimage", "3")
    assert as_array["verdicts"] == result["verdicts"]  # a frame read back from Arrow holds arrays
    assert answer(query, {**output, "verdicts": []}, "caponimage", "3")["verdicts"] is None  # no checks ran


def test_the_serve_config_passes_serves_schema_and_the_applications_arguments():
    from ray.serve.schema import ServeDeploySchema

    from components.serving.online import ServeArgs

    config = yaml.safe_load((ROOT / "infra" / "serve" / "caponimage.yaml").read_text())
    ServeDeploySchema.model_validate(config)
    application = config["applications"][0]
    assert application["import_path"] == "components.serving.online:app_builder"
    args = ServeArgs.model_validate(application["args"])
    assert args.shadow_percent == 5 and args.params["candidates"] == 6
    deployment = application["deployments"][0]
    assert deployment["name"] == "Captioner" and deployment["autoscaling_config"]["max_replicas"] >= 2
    broken = {**config, "applications": [{**application, "deployments": [{**deployment, "max_ongoing_requests": "x"}]}]}
    with pytest.raises(Exception, match="max_ongoing_requests"):
        ServeDeploySchema.model_validate(broken)


@pytest.mark.parametrize(
    ("values", "key", "message"),
    [
        ({"shadow_percent": 10}, "shadow_percent", "needs shadow_model"),
        ({"shadow_percent": 120, "shadow_model": "models:/caponimage@challenger"}, "shadow_percent", "less than"),
        ({"model": "nowhere/at/all"}, "model", "not a model URI"),
        ({"params": {"beam_size": 0}}, "params", "params.beam_size"),
        ({"poll_s": 0}, "poll_s", "greater than 0"),
    ],
)
def test_bad_service_arguments_are_config_errors_naming_the_key(values, key, message):
    from components.serving.online import serve_args

    with pytest.raises(ConfigError) as raised:
        serve_args(**values)
    assert raised.value.key == key and message in str(raised.value)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--model", "nowhere"], "option '--model': nowhere is not a model URI"),
        (["--shadow-percent", "5"], "option '--shadow-percent': shadow_percent > 0 needs shadow_model"),
        (["--replicas", "0"], "option '--replicas': must be at least 1"),
    ],
)
def test_the_serve_flow_names_a_bad_flag_and_exits_2_before_ray_starts(flags, message, capsys, monkeypatch):
    from helpers import load_flow

    import components.cluster
    from components.cli import run

    started = []
    monkeypatch.setattr(components.cluster, "init_ray", lambda *args: started.append(args))
    assert run(load_flow("serve").main, flags) == 2
    assert capsys.readouterr().err.startswith(f"error: {message}") and started == []
