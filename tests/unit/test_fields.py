"""Field accuracy: each input's caption parts scored apart, over every box and over its diagnostic boxes."""

import pytest

from components.evaluation.fields import BoxFields, FieldSheet, diagnostic_sizes, field_accuracy, written_parts
from components.evaluation.report import evaluate_rows


def test_a_part_is_written_when_its_text_is_in_the_prediction():
    parts = (("深层", "image", "mod"), ("保湿", "info", "head"), ("推荐", "ctx", "join"))
    assert written_parts(parts, "深层保湿推荐", "zh") == [True, True, True]
    assert written_parts(parts, "保湿特价", "zh") == [False, True, False]
    assert written_parts(parts, "", "zh") == [False, False, False]


def test_each_occurrence_serves_one_part_and_longer_parts_claim_first():
    twice = (("保湿", "info", "head"), ("保湿", "info", "head"))
    assert written_parts(twice, "深层保湿", "zh") == [True, False]
    assert written_parts(twice, "保湿保湿", "zh") == [True, True]
    # "蓝" inside the written "天空蓝" is the colour's, not a second part's
    nested = (("蓝", "image", "colour"), ("天空蓝", "image", "colour"))
    assert written_parts(nested, "天空蓝", "zh") == [False, True]


def test_english_parts_are_whole_words():
    parts = (("mint", "image", "colour"), ("cream", "info", "noun"))
    assert written_parts(parts, "mint green cream", "en") == [True, True]
    assert written_parts(parts, "minty creams", "en") == [False, False]


def sheet() -> FieldSheet:
    boxes = {
        "a#0": BoxFields((("森语", "info", "brand"), ("旗舰", "loc", "suffix")), frozenset({"info"})),
        "a#1": BoxFields((("哑光", "image", "finish"), ("天空蓝", "image", "colour")), frozenset({"image"})),
        "b#0": BoxFields((("保湿", "info", "head"), ("推荐", "ctx", "join")), frozenset()),
        "b#1": BoxFields((("限时", "noise", "theme"),), frozenset()),
    }
    return FieldSheet("zh", boxes, {k: "" for k in boxes})


def test_field_accuracy_per_input_over_every_box_and_over_its_diagnostic_boxes():
    predictions = {"a#0": "星辰旗舰", "a#1": "哑光天空蓝", "b#0": "保湿推荐", "b#1": "随便"}
    scores = field_accuracy(sheet(), predictions)
    assert scores["field_accuracy_info"] == pytest.approx(0.5)  # the brand wrong, the head right
    assert scores["field_accuracy_info_diag"] == 0.0  # the brand's box is V_INFO's only one
    assert scores["field_accuracy_image"] == scores["field_accuracy_image_diag"] == 1.0
    assert scores["field_accuracy_loc"] == scores["field_accuracy_ctx"] == 1.0
    assert scores["field_accuracy_all"] == pytest.approx(5 / 6)  # six scored parts (noise is not): the brand wrong
    assert scores["role_accuracy_brand"] == 0.0 and scores["role_accuracy_colour"] == 1.0
    assert "field_accuracy_loc_diag" not in scores  # no box needs its place here
    assert not any("noise" in k or "theme" in k for k in scores)  # never written, never scored


def test_boxes_without_a_truth_are_left_out_and_none_gives_no_metric():
    assert field_accuracy(sheet(), {"ingested#0": "森语"}) == {}
    only = field_accuracy(sheet(), {"a#0": "森语旗舰", "ingested#0": "x"})
    assert only["field_accuracy_info"] == 1.0 and set(only) == {
        "field_accuracy_all",
        "field_accuracy_info",
        "field_accuracy_info_diag",
        "field_accuracy_loc",
        "role_accuracy_brand",
        "role_accuracy_suffix",
    }


def test_covering_keeps_only_the_keys_asked_for():
    covered = sheet().covering(["a#1", "b#0", "missing#0"])
    assert sorted(covered.boxes) == sorted(covered.ceiling) == ["a#1", "b#0"]
    assert diagnostic_sizes(covered) == {"info": 0, "image": 1, "loc": 0, "ctx": 0}


def _row(key: str, prediction: str, reference: str) -> dict:
    image_id, box = key.split("#")
    return dict(image_id=image_id, box=int(box), prediction=prediction, reference=reference,
                x1=0.1, y1=0.1, x2=0.5, y2=0.2, width=256, height=256)  # fmt: skip


def test_the_report_carries_field_accuracy_and_the_oracles_ceiling_on_the_same_boxes():
    references = {"a#0": "森语旗舰", "a#1": "哑光天空蓝", "b#0": "保湿推荐", "b#1": "限时"}
    rows = [_row(k, "星辰旗舰" if k == "a#0" else r, r) for k, r in references.items()]
    fields = FieldSheet("zh", sheet().boxes, dict(references))  # an oracle right everywhere
    report = evaluate_rows(rows, "char", meteor=False, fields=fields)
    assert report.ceiling["BLEU@1"] == pytest.approx(100.0)
    assert report.ceiling["BLEU@1"] > report.scores["BLEU@1"]
    metrics = report.metrics()
    assert metrics["field_accuracy_info"] == pytest.approx(0.5) and metrics["oracle_BLEU-1"] == pytest.approx(100.0)
    table = report.table("val")
    assert "| oracle (ceiling) | 100.00 |" in table and "| info | 0.500 | 0.000 | 1 |" in table
    assert "| brand | 0.000 |" in table


def test_a_report_without_a_sheet_has_no_field_metrics():
    rows = [_row("a#0", "森语", "森语"), _row("a#1", "蓝", "蓝")]
    report = evaluate_rows(rows, "char", meteor=False)
    assert report.fields == {} and report.ceiling == {}
    assert not any(k.startswith(("field_", "role_", "oracle_")) for k in report.metrics())
    assert "oracle" not in report.table("val")
