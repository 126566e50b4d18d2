"""Read-back with the real OCR engine: a caption drawn legibly reads back; one drawn too small or a
different text does not."""

import pytest
from PIL import Image

from components.data.ingest.ocr import RapidOcrEngine
from components.publishing.fit import Fit, draw_fit, fit_caption
from components.publishing.readback import comparable, read_back


@pytest.fixture(scope="module")
def engine():
    return RapidOcrEngine(threads=1)


def drawn(text: str, bounds, size: int | None = None):
    canvas = Image.new("RGB", (256, 256), (240, 220, 200))
    fit = fit_caption(canvas, bounds, text, "zh")
    if size is not None:  # forced, to see what a silently shrunk caption would do
        fit = Fit(fit.lines, size, fit.min_px, fit.colour, fit.contrast, fit.verdict)
    return canvas, draw_fit(canvas, bounds, fit, "zh")


def test_comparable_drops_spaces_and_folds_width():
    assert comparable("Free ｓｈｉｐｐｉｎｇ 500ml") == "Freeshipping500ml"


@pytest.mark.parametrize(
    "text, bounds",
    [
        ("选莱格官方旗舰", (20, 20, 200, 45)),
        ("奢华零脂体验推荐", (20, 100, 110, 190)),
        ("十二杯装", (100, 200, 180, 225)),
    ],
)
def test_a_legible_caption_reads_back(engine, text, bounds):
    canvas, lines = drawn(text, bounds)
    result = read_back(engine, canvas, lines, text)
    assert result.passed, result
    assert result.score > 0.8


def test_a_caption_shrunk_below_legibility_does_not_read_back(engine):
    canvas, lines = drawn("奢华零脂体验推荐", (20, 60, 200, 80), size=3)
    assert not read_back(engine, canvas, lines, "奢华零脂体验推荐").passed


def test_another_text_does_not_pass_for_the_caption(engine):
    canvas, lines = drawn("原榨推荐", (20, 20, 120, 45))
    result = read_back(engine, canvas, lines, "清甜推荐")
    assert not result.passed and result.text == "原榨推荐"


def test_nothing_drawn_reads_nothing(engine):
    assert read_back(engine, Image.new("RGB", (64, 64)), [], "好").passed is False
