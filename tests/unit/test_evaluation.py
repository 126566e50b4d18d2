import json
import math

import numpy as np
import pytest
from PIL import Image

from components.data.record.boxes import Box
from components.evaluation.diversity import diversity, paragraph_diversity
from components.evaluation.fitness import CaptionTypes, length_aspect_correlation, length_by_aspect, type_agreement
from components.evaluation.rendering import qualitative_sheet, type_map
from components.evaluation.scores import caption_scores, cider, scoring_text

REFERENCES = {"a#0": "深层补水", "a#1": "持久保湿", "b#0": "品质保障", "b#1": "天然纯正", "c#0": "中国红"}
PREDICTIONS = {"a#0": "深层补水", "a#1": "持久", "b#0": "品质生活", "b#1": "纯正天然", "c#0": "天空蓝"}


def test_scores_equal_pycocoevalcap_on_character_split_strings():
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor

    gts = {k: [" ".join(v)] for k, v in REFERENCES.items()}
    res = {k: [" ".join(v)] for k, v in PREDICTIONS.items()}
    bleu = Bleu(4).compute_score(gts, res, verbose=0)[0]
    expected = {f"BLEU@{i + 1}": 100 * b for i, b in enumerate(bleu)}
    expected["METEOR"] = 100 * Meteor().compute_score(gts, res)[0]
    expected["CIDEr"] = 100 * Cider().compute_score(gts, res)[0]
    ours = caption_scores(REFERENCES, PREDICTIONS, "char")
    assert ours == pytest.approx(expected, rel=1e-9)
    assert ours["CIDEr"] == pytest.approx(cider(REFERENCES, PREDICTIONS, "char"))
    assert 0 < ours["BLEU@1"] < 100 and 0 < ours["METEOR"] < 100


def test_bleu1_by_hand():
    # "持久" against "持久保湿": unigram precision 1, brevity penalty exp(1 - 4/2)
    scores = caption_scores({"x": "持久保湿"}, {"x": "持久"}, "char", meteor=False)
    assert scores["BLEU@1"] == pytest.approx(100 * math.exp(-1), rel=1e-6)


def test_identical_predictions_score_bleu4_of_one():
    scores = caption_scores(REFERENCES, dict(REFERENCES), "char")
    assert scores["BLEU@4"] == pytest.approx(100.0, abs=1e-4) and scores["METEOR"] == pytest.approx(100.0, abs=0.5)


def test_words_in_english_mode():
    assert scoring_text("Deep hydration!", "word") == "deep hydration !"
    assert scoring_text("深层 补水", "char") == "深 层 补 水"
    assert caption_scores({"x": "deep hydration"}, {"x": "deep hydration"}, "word", meteor=False)["BLEU@2"] > 99.9


def test_mismatched_boxes_are_refused():
    with pytest.raises(ValueError, match="same boxes"):
        caption_scores({"x": "a"}, {"y": "a"}, meteor=False)


def test_div_n_by_hand():
    # tokens a b a | c a : 5 unigrams, 3 distinct; bigrams (a,b) (b,a) (c,a), none across the boundary
    assert paragraph_diversity([["a", "b", "a"], ["c", "a"]]) == (3 / 5, 3 / 5)
    # a repeated caption halves the distinct share
    assert paragraph_diversity([["x", "y"], ["x", "y"]]) == (2 / 4, 1 / 4)
    assert paragraph_diversity([]) == (0.0, 0.0)


def test_diversity_averages_over_images_and_gives_the_human_row():
    generated = {"i1": ["补水", "补水"], "i2": ["深层补水"]}
    human = {"i1": ["补水", "保湿"], "i2": ["深层补水"]}
    assert diversity(generated) == pytest.approx({"Div@1": 100 * (2 / 4 + 1) / 2, "Div@2": 100 * (1 / 4 + 3 / 4) / 2})
    assert diversity(human) == pytest.approx({"Div@1": 100 * (4 / 4 + 1) / 2, "Div@2": 100 * (2 / 4 + 3 / 4) / 2})


def test_length_by_aspect_bins_and_correlation():
    aspects = [1.5, 1.8, 3.2, 3.9, 7.0, 12.0]
    generated, references = [2, 2, 3, 4, 7, 10], [2, 3, 3, 3, 8, 10]
    bins = length_by_aspect(aspects, generated, references)
    assert [(b.label, b.boxes) for b in bins] == [("1-2", 2), ("3-4", 2), ("6-8", 1), ("10+", 1)]
    assert bins[1].generated_length == 3.5 and bins[1].reference_length == 3.0
    assert length_aspect_correlation(aspects, generated) > 0.95
    assert length_aspect_correlation([2.0, 2.0], [1, 5]) == 0.0


def test_caption_types_cluster_and_assign():
    groups = [
        ["深层补水", "补水保湿", "急救补水", "补水滋润"],  # hydration
        ["红色", "蓝色", "绿色", "粉色"],  # colours
        ["品质保障", "售后保障", "正品保障", "安全保障"],
    ]  # assurance
    captions = [c for group in groups for c in group]
    types = CaptionTypes("char", clusters=3, seed=0).fit(captions)
    labels = types.assign(captions).reshape(3, 4)
    assert all(len(set(row)) == 1 for row in labels) and len({row[0] for row in labels}) == 3
    assert types.assign(["夜间补水", "黄色"]).tolist() == [labels[0][0], labels[1][0]]
    assert type_agreement(labels.ravel(), labels.ravel()) == 1.0 and type_agreement([0, 1], [0, 0]) == 0.5


def test_pictures_have_two_panels():
    image = Image.new("RGB", (256, 256), (200, 220, 240))
    boxes = [Box(0.1, 0.1, 0.5, 0.2), Box(0.1, 0.5, 0.4, 0.6)]
    sheet = qualitative_sheet(image, boxes, boxes, ["深层补水", "中国红"], ["深层补水", "天空蓝"], "zh", "s0-1")
    assert sheet.width == 2 * 256 + 12 and sheet.height > 256
    left = np.asarray(sheet)[28 + 30 : 28 + 50, 30:120]  # inside the first box, left panel
    assert (left.sum(axis=2) == 0).any() and (left[..., 0] > 200).any()  # black mask with yellow text
    maps = type_map(image, boxes, boxes, [0, 1], [0, 2], "zh", ["0: 补水", "1: 颜色"])
    assert maps.size == sheet.size


def test_evaluate_rows_gives_every_number():
    from components.evaluation.report import evaluate_rows

    rows = []
    for image, captions in (("i1", ["深层补水", "持久保湿", "中国红"]), ("i2", ["品质保障", "深层补水"])):
        for box, caption in enumerate(captions):
            width = 0.1 * len(caption)
            rows.append(
                {
                    "image_id": image,
                    "box": box,
                    "reference": caption,
                    "prediction": caption[:2],
                    "x1": 0.1,
                    "y1": 0.1 * box,
                    "x2": 0.1 + width,
                    "y2": 0.1 * box + 0.05,
                    "width": 256,
                    "height": 256,
                }
            )
    report = evaluate_rows(rows, "char", meteor=False, clusters=2)
    assert (report.images, report.boxes) == (2, 5)
    assert report.human_diversity["Div@1"] > report.generated_diversity["Div@1"] - 1e-9
    assert report.human_length_aspect_r > 0.9  # references grow with their box, the 2-character predictions do not
    metrics = report.metrics()
    assert "BLEU-4" in metrics and "human_Div-2" in metrics and all("@" not in k for k in metrics)
    assert "| generated |" in report.table("val") and "| human |" in report.table("val")
    assert report.publishing == {} and "publishing" not in report.table("val")  # no checks ran
    for n, row in enumerate(rows):  # the third box's caption was chosen below its most likely, which overflowed
        failed = ["compliance"] if n == 4 else []
        first_failed = ["fit"] if n == 2 else failed
        row["verdict"] = json.dumps({"failed": failed, "first_failed": first_failed, "rank": int(n == 2)})
    judged = evaluate_rows(rows, "char", meteor=False, clusters=2, checks=("compliance", "grounding", "fit"))
    assert judged.metrics()["publish_fit_rate"] == 1.0 and judged.metrics()["publish_first_fit_rate"] == 0.8
    assert judged.publishing["publish_compliance_violation_rate"] == pytest.approx(0.2)
    table = judged.table("val")
    assert "| fit rate | 0.800 | 1.000 |" in table and "| compliance violation rate | 0.200 | 0.200 |" in table
    assert "a less likely candidate chosen for 20.0% of the boxes" in table
