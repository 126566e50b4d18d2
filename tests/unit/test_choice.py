"""Choice among candidates: the most likely that passes every check, else the most likely with its
failures named; the published image carries the chosen captions and nothing of the old text."""

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from components.data.ingest.ocr import RapidOcrEngine
from components.data.pictures.fonts import load_font
from components.publishing.choice import CHECKS, Publisher

BEIGE = (240, 220, 200)
INFO = "选莱格酸奶十二杯|原榨|清甜"
WIDE = (20, 20, 200, 45)


@pytest.fixture(scope="module")
def engine():
    return RapidOcrEngine(threads=1)


def page() -> Image.Image:
    return Image.new("RGB", (256, 256), BEIGE)


def test_the_most_likely_candidate_that_passes_is_chosen():
    candidates = [("全网最低价", -1.0), ("十杯装", -1.5), ("十二杯装", -2.0), ("原榨推荐", -2.5)]
    verdict = Publisher(checks=("compliance", "grounding", "fit")).choose(page(), WIDE, candidates, INFO, "zh")
    assert (verdict.caption, verdict.rank, verdict.passed) == ("十二杯装", 2, True)


def test_when_none_passes_the_most_likely_comes_back_with_its_failures_named():
    candidates = [("全网最低价十杯", -1.0), ("十杯装", -1.5)]
    verdict = Publisher(checks=("compliance", "grounding", "fit")).choose(page(), WIDE, candidates, INFO, "zh")
    assert (verdict.caption, verdict.rank) == ("全网最低价十杯", 0)
    assert verdict.failed == ("compliance", "grounding")
    assert "Art. 9(3)" in verdict.reasons["compliance"] and "十杯" in verdict.reasons["grounding"]


def test_a_box_too_small_for_any_candidate_is_named_not_raised():
    verdict = Publisher(checks=("fit",)).choose(page(), (10, 10, 14, 14), [("好", -0.1), ("好的", -0.2)], INFO, "zh")
    assert verdict.failed == ("fit",) and verdict.reasons["fit"] == "box_too_small" and verdict.rank == 0


def test_checks_are_validated():
    with pytest.raises(ValueError, match="unknown \\['spelling'\\]"):
        Publisher(checks=("fit", "spelling"))
    with pytest.raises(ValueError, match="read_back needs the fit check and an OCR reader"):
        Publisher(checks=("read_back", "fit"))
    assert Publisher(checks=("fit", "compliance")).checks == ("compliance", "fit")  # CHECKS order


def test_publish_removes_the_old_text_writes_the_chosen_and_reads_back(engine):
    image = page()
    ImageDraw.Draw(image).text((25, 22), "旧的文字旧的文字", font=load_font("zh", 18), fill=(0, 0, 0))
    tiny = (230, 230, 233, 233)
    candidates = [[("最好的酸奶", -0.5), ("选莱格官方旗舰", -0.9)], [("好", -0.1)]]
    verdicts, published = Publisher(checks=CHECKS, reader=engine).publish(image, [WIDE, tiny], candidates, INFO, "zh")
    first, second = verdicts
    assert (first.caption, first.rank, first.passed, first.read) == ("选莱格官方旗舰", 1, True, "选莱格官方旗舰")
    assert second.failed[-2:] == ("fit", "read_back") and second.reasons["fit"] == "box_too_small"
    assert second.read == ""  # nothing was drawn in the tiny box, so nothing reads back
    pixels = np.asarray(published)
    region = pixels[tiny[1] : tiny[3] + 1, tiny[0] : tiny[2] + 1].astype(int)
    assert np.abs(region - BEIGE).max() <= 2  # left clean (inpainted from a flat page)
    old_text_row = pixels[WIDE[1] : WIDE[3] + 1, WIDE[0] : WIDE[2] + 1]
    assert (old_text_row == first.fit.colour).all(axis=2).any()  # the chosen caption is written in
    json.dumps([v.as_dict() for v in verdicts], ensure_ascii=False)  # plain JSON


@pytest.mark.parametrize(
    "info, failed",
    [("選萊格酸奶十二杯", ()), ("", ("grounding",))],  # Traditional info grounds it; an empty one cannot
)
def test_traditional_or_empty_info_gets_a_verdict_not_an_exception(info, failed):
    verdict = Publisher(checks=("compliance", "grounding", "fit")).choose(
        page(), WIDE, [("十二杯装", -1.0)], info, "zh"
    )
    assert verdict.failed == failed
